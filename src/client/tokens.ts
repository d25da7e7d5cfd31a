import { agentCredential, agentTokenVariable, loadTokens } from "../protocol/credentials.ts";

/**
 * Who may receive a bearer token. A toolmesh agent (one that says so in its Consul meta) gets
 * the credential of the kind it registered as, derived from MESH_TOKEN: never MESH_TOKEN itself,
 * which opens every agent. A server added with `mesh register` gets only a token configured
 * for it by name (MESH_TOKEN_<NAME>), nothing derived from the mesh's.
 */
export type TokenFor = (agent: string, toolmesh: boolean) => string | undefined;

/**
 * The token a caller sends to an agent: MESH_TOKEN_<AGENT> (per-agent tokens), else, for
 * toolmesh agents only, the agent's credential derived from the first of MESH_TOKEN /
 * MESH_TOKEN_FILE (during a rotation the first is the new one). Undefined when none applies.
 * Every token is checked when this is built: a malformed one is a CONFIG_INVALID error naming
 * its variable.
 */
export function callerTokens(env: NodeJS.ProcessEnv = process.env, shared?: readonly string[]): TokenFor {
  const mesh = shared ?? loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" });
  const own = new Map<string, string>();
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith("MESH_TOKEN_") || variable === "MESH_TOKEN_FILE" || !value?.trim()) continue;
    const token = loadTokens({ value, what: variable })[0];
    if (token) own.set(variable, token);
  }
  const key = mesh[0];
  return (agent, toolmesh) =>
    own.get(agentTokenVariable(agent)) ?? (toolmesh && key !== undefined ? agentCredential(key, agent) : undefined);
}
