import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { MeshError } from "../protocol/errors.ts";

/** Shortest bearer token accepted: guessable tokens are refused at start. @default 16 */
export const MIN_TOKEN_LENGTH = 16;
/** The realm named in WWW-Authenticate. */
export const AUTH_REALM = "toolmesh";

export type AuthOutcome = "ok" | "missing" | "invalid";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * The bearer tokens an endpoint accepts. More than one during a rotation window (old and
 * new). Comparison is in constant time: SHA-256 digests (equal length whatever the input)
 * compared with timingSafeEqual against every accepted token, without stopping early.
 */
export class TokenVerifier {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  /** Whether a token is required at all (none configured: the endpoint is open). */
  get required(): boolean {
    return this.digests.length > 0;
  }

  check(authorization: string | undefined): AuthOutcome {
    if (!this.required) return "ok";
    if (!authorization) return "missing";
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!m) return "invalid";
    const presented = digest(m[1]!);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, presented) || ok;
    return ok ? "ok" : "invalid";
  }
}

/**
 * Tokens from a value (`MESH_TOKEN`: one, or several comma-separated during a rotation) and
 * from a file (`MESH_TOKEN_FILE`: one per line; # comments). Each must be at least
 * MIN_TOKEN_LENGTH visible ASCII characters. The error names the source, never the token.
 */
export function loadTokens(sources: { value?: string | undefined; file?: string | undefined; what: string }): string[] {
  const tokens: string[] = [];
  const add = (raw: string, from: string) => {
    for (const t of raw.split(/[,\n]/).map((s) => s.trim())) {
      if (!t || t.startsWith("#")) continue;
      if (!/^[\x21-\x7e]+$/.test(t) || t.length < MIN_TOKEN_LENGTH) {
        throw new MeshError(
          "CONFIG_INVALID",
          `${from}: each token must be at least ${MIN_TOKEN_LENGTH} visible ASCII characters without spaces (generate one with: openssl rand -hex 32).`,
        );
      }
      tokens.push(t);
    }
  };
  if (sources.value) add(sources.value, sources.what);
  if (sources.file) {
    let text: string;
    try {
      text = readFileSync(sources.file, "utf8");
    } catch (e) {
      throw new MeshError("CONFIG_INVALID", `${sources.what} file ${sources.file} cannot be read: ${(e as Error).message}`);
    }
    add(text, `${sources.what} file ${sources.file}`);
  }
  return tokens;
}

/** The environment variable holding the token for calls to one agent, e.g. MESH_TOKEN_HR. */
export function agentTokenVariable(agent: string): string {
  return `MESH_TOKEN_${agent.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/** How a credential for one agent kind begins: recognisable in a header, never mistaken for a mesh token. */
export const AGENT_CREDENTIAL_PREFIX = "tmk1.";
/** What the HMAC of a kind's credential covers before the kind's name (versioned: a new scheme gets a new label). */
const AGENT_CREDENTIAL_LABEL = "toolmesh agent credential v1\0";

/**
 * The credential callers send to the toolmesh agents of one kind (one Consul service name):
 * `tmk1.` + base64url(HMAC-SHA256(key = the mesh token, message = label + kind)). It opens that
 * kind only, and the mesh token cannot be recovered from it. So what a server receives by
 * registering as `ext-evil` opens no other member: the right to a kind's credential is the
 * right to register its service name, which Consul ACLs grant per name (service:write).
 */
export function agentCredential(meshToken: string, agent: string): string {
  const mac = createHmac("sha256", meshToken)
    .update(AGENT_CREDENTIAL_LABEL + agent, "utf8")
    .digest("base64url");
  return `${AGENT_CREDENTIAL_PREFIX}${mac}`;
}

/**
 * The bearer tokens an agent of one kind accepts: each of its mesh tokens (operators and the
 * metrics scraper hold them; no caller sends one to an agent any more) and the credential for
 * its own kind derived from each (several during a rotation).
 */
export function agentTokens(agent: string, meshTokens: readonly string[]): string[] {
  return [...meshTokens, ...meshTokens.map((t) => agentCredential(t, agent))];
}

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

/** The WWW-Authenticate header for a refused request (RFC 6750). */
export function challenge(outcome: Exclude<AuthOutcome, "ok">): string {
  return outcome === "missing"
    ? `Bearer realm="${AUTH_REALM}"`
    : `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="the bearer token is not accepted"`;
}
