import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { MeshError } from "./errors.ts";

/**
 * The mesh's shared secrets as both sides use them: tokens read from the environment or a file,
 * and the per-kind agent credential derived from the mesh token. Servers check them (http/auth.ts),
 * callers choose which to send (client/tokens.ts).
 */

/** Shortest bearer token accepted: guessable tokens are refused at start. @default 16 */
export const MIN_TOKEN_LENGTH = 16;

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
