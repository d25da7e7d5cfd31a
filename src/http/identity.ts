import { createHmac, timingSafeEqual } from "node:crypto";
import { AGENT_CREDENTIAL_PREFIX, agentTokenVariable, loadTokens } from "../protocol/credentials.ts";
import { IDENTITY_META } from "../protocol/keys.ts";

/**
 * Who a call is for, as the mesh's edge (the gateway) established it: an OAuth user or client
 * (subject, client id, scopes, the claims agents act on), or a static-token client of the
 * gateway. It travels to agents signed (below); an agent never trusts it unsigned.
 */
export interface CallerIdentity {
  /** What owns what the call creates (tasks, sessions, idempotency keys): "oauth:<sub>" or "token:<digest>". */
  readonly principal: string;
  /** "oauth": a token from the authorization server; "token": one of the gateway's static client tokens. */
  readonly kind: "oauth" | "token";
  readonly subject?: string;
  readonly clientId?: string;
  readonly scopes: readonly string[];
  /** Selected string claims of the access token (MESH_OAUTH_CLAIMS, default employee_id), for agents to act on. */
  readonly claims: Readonly<Record<string, string>>;
}

/** How a signed identity assertion begins (versioned: a new scheme gets a new prefix). */
export const IDENTITY_ASSERTION_PREFIX = "tmi1.";
/** What the key of a kind's assertions is derived with, before the kind's name. */
const IDENTITY_KEY_LABEL = "toolmesh identity v1\0";
/** How long an assertion is good for after it is made (a call's onward calls re-sign theirs). @default 600000 (10 min) */
export const IDENTITY_ASSERTION_TTL_MS = 600_000;
/** Longest assertion accepted (characters), so a hostile one costs nothing to refuse. */
const MAX_ASSERTION_LENGTH = 8_192;

/**
 * The key that signs identities sent to agents of one kind: HMAC-SHA256(key = a mesh token,
 * "toolmesh identity v1\0" + kind), like the per-kind `tmk1.` credentials (auth.ts). Whoever
 * holds only a kind's credential (or the gateway's client token) cannot make one; an
 * assertion made for hr opens nothing at finance.
 */
export function identityKey(meshToken: string, agent: string): Buffer {
  return createHmac("sha256", meshToken)
    .update(IDENTITY_KEY_LABEL + agent, "utf8")
    .digest();
}

/** The signing key for an agent kind, or undefined when this process holds no mesh token for it. */
export type IdentityKeyFor = (agent: string) => Buffer | undefined;

/**
 * The keys a caller signs with: for agent X, derived from MESH_TOKEN_<X> when that is a mesh
 * token (per-agent tokens; not a `tmk1.` credential, from which nothing may be derived), else
 * from the first MESH_TOKEN. None configured: identities are not sent (an open mesh).
 */
export function identityKeys(env: NodeJS.ProcessEnv = process.env, shared?: readonly string[]): IdentityKeyFor {
  const mesh = shared ?? loadTokens({ value: env["MESH_TOKEN"], file: env["MESH_TOKEN_FILE"], what: "MESH_TOKEN" });
  return (agent) => {
    const own = env[agentTokenVariable(agent)]?.split(/[,\n]/)[0]?.trim();
    const root = own && !own.startsWith(AGENT_CREDENTIAL_PREFIX) ? own : mesh[0];
    return root === undefined ? undefined : identityKey(root, agent);
  };
}

interface AssertionBody {
  /** The kind it is for. */
  aud: string;
  /** Who signed it (the caller's name: gateway, orchestrator...). */
  iss: string;
  /** Expiry, epoch milliseconds. */
  exp: number;
  id: CallerIdentity;
}

const mac = (key: Buffer, text: string) => createHmac("sha256", key).update(text, "utf8").digest();

/** Signs an identity for one agent kind: `tmi1.` + base64url(JSON) + "." + base64url(HMAC-SHA256). */
export function signIdentity(key: Buffer, o: { agent: string; signer: string; identity: CallerIdentity; now?: number }): string {
  const body: AssertionBody = { aud: o.agent, iss: o.signer, exp: (o.now ?? Date.now()) + IDENTITY_ASSERTION_TTL_MS, id: o.identity };
  const payload = `${IDENTITY_ASSERTION_PREFIX}${Buffer.from(JSON.stringify(body), "utf8").toString("base64url")}`;
  return `${payload}.${mac(key, payload).toString("base64url")}`;
}

/** What an agent made of a call's identity assertion. */
export type IdentityCheck = { ok: true; identity: CallerIdentity; signer: string } | { ok: false; reason: string } | undefined;

/**
 * Checks identity assertions for one agent kind against the keys derived from each of its
 * mesh tokens (several during a rotation). Undefined: the call carries none. A present one
 * that is malformed, signed with another key, made for another kind or expired is refused
 * with the reason (never the key).
 */
export class IdentityVerifier {
  private readonly keys: Buffer[];
  readonly agent: string;

  constructor(agent: string, meshTokens: readonly string[]) {
    this.agent = agent;
    this.keys = meshTokens.map((t) => identityKey(t, agent));
  }

  /** Whether this agent can check assertions at all (it holds a mesh token). */
  get enabled(): boolean {
    return this.keys.length > 0;
  }

  check(meta: Record<string, unknown> | undefined, now = Date.now()): IdentityCheck {
    const value = meta?.[IDENTITY_META];
    if (value === undefined) return undefined;
    // An agent that holds no mesh token authenticates nobody: anyone may call it unsigned, so an
    // assertion it cannot check grants nothing and takes nothing away. It is ignored (the call runs
    // for no one in particular), not refused: a gateway that has a token can still use such agents.
    if (!this.enabled) return undefined;
    if (typeof value !== "string" || value.length > MAX_ASSERTION_LENGTH || !value.startsWith(IDENTITY_ASSERTION_PREFIX))
      return { ok: false, reason: `${IDENTITY_META} is not a ${IDENTITY_ASSERTION_PREFIX} assertion` };
    const cut = value.lastIndexOf(".");
    const payload = value.slice(0, cut);
    // The signature's text is compared, not its decoding: base64url ignores a last character's
    // spare bits and stray characters, so two texts could decode alike (a malleable assertion).
    const presented = Buffer.from(value.slice(cut + 1), "utf8");
    let signed = false;
    for (const key of this.keys) {
      const expected = Buffer.from(mac(key, payload).toString("base64url"), "utf8");
      signed = (presented.length === expected.length && timingSafeEqual(presented, expected)) || signed;
    }
    if (!signed) return { ok: false, reason: `the signature of ${IDENTITY_META} is not the mesh's for ${this.agent}` };
    let body: AssertionBody;
    try {
      body = JSON.parse(Buffer.from(payload.slice(IDENTITY_ASSERTION_PREFIX.length), "base64url").toString("utf8")) as AssertionBody;
    } catch {
      return { ok: false, reason: `${IDENTITY_META} does not decode` };
    }
    if (body.aud !== this.agent) return { ok: false, reason: `the identity was asserted for ${String(body.aud)}, not ${this.agent}` };
    if (typeof body.exp !== "number" || body.exp < now) return { ok: false, reason: "the identity assertion has expired" };
    const id = body.id;
    if (!id || typeof id.principal !== "string" || (id.kind !== "oauth" && id.kind !== "token") || !Array.isArray(id.scopes))
      return { ok: false, reason: `${IDENTITY_META} carries no identity` };
    return { ok: true, identity: { ...id, claims: id.claims ?? {} }, signer: String(body.iss) };
  }
}
