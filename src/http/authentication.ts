import type { IncomingMessage } from "node:http";
import { challenge, type AuthOutcome, type TokenVerifier } from "./auth.ts";
import type { CallerIdentity, IdentityVerifier } from "./identity.ts";
import type { OAuthResourceServer } from "./oauth.ts";
import { principalOf, type RequestPrincipal } from "./principal.ts";

/**
 * The one scope a static-token client of the gateway holds (MESH_GATEWAY_TOKEN): policies
 * name it to say what such clients may call (they are machines of the organisation's own).
 */
export const STATIC_CLIENT_ROLE = "role:static-token";

/** How a server tells who sends a request (part of HttpServerOptions). */
export interface RequestAuthOptions {
  /** Bearer tokens the MCP endpoints require (401 without an accepted one). Default: open. */
  verifier?: TokenVerifier;
  /**
   * Which credential a client should send, said in the 401 for a missing token.
   * @default "toolmesh callers send the agent's credential, derived from MESH_TOKEN, or MESH_TOKEN_<AGENT>"
   */
  tokenHint?: string;
  /**
   * OAuth 2.1 access tokens accepted beside the static tokens (the gateway: MESH_OAUTH_*):
   * protected-resource metadata at /.well-known/oauth-protected-resource[/...], and 401/403
   * challenges pointing at it. A static token (verifier) is tried first.
   */
  oauth?: () => OAuthResourceServer | "starting" | undefined;
  /**
   * The gateway: each request's client becomes the identity its work is done for (signed onward
   * to agents). Agents leave it unset: their caller is an intermediary, not the user.
   */
  assertsIdentity?: boolean;
  /** An agent: how it checks the signed identities calls carry (identity.ts). */
  identityVerifier?: IdentityVerifier;
}

/** Who sent a request, or the HTTP refusal to answer it with. */
export type Authentication =
  { ok: true; principal: RequestPrincipal } | { ok: false; status: number; message: string; headers: Record<string, string> };

/**
 * Who sends a request to an endpoint: static tokens first (mesh members, the gateway's own
 * clients), then OAuth access tokens where configured. `isPublic`: the endpoint answers this
 * request without a token (a public description), as whoever sent it.
 */
export async function authenticate(req: IncomingMessage, isPublic: boolean, options: RequestAuthOptions): Promise<Authentication> {
  const authorization = req.headers.authorization;
  if (isPublic) return { ok: true, principal: staticPrincipal(authorization, options) };
  const staticAuth = options.verifier?.check(authorization) ?? "ok";
  if (options.oauth && options.verifier?.required && staticAuth === "ok")
    return { ok: true, principal: staticPrincipal(authorization, options) };
  const oauth = options.oauth?.();
  if (oauth === "starting")
    return {
      ok: false,
      status: 503,
      message:
        "OAuth access tokens cannot be checked yet: the gateway has not reached its authorization server's metadata; retry shortly (static tokens work).",
      headers: { "Retry-After": "1" },
    };
  if (!oauth) {
    if (staticAuth === "ok") return { ok: true, principal: staticPrincipal(authorization, options) };
    return staticRefusal(staticAuth, options.tokenHint);
  }
  const outcome = await oauth.authenticate(authorization);
  if (!outcome.ok) return outcome;
  return { ok: true, principal: { principal: outcome.identity.principal, identity: outcome.identity } };
}

/**
 * The sender of a request a static token (or an open endpoint) let in: its token's digest;
 * at the gateway, also the identity its work is done for, holding STATIC_CLIENT_ROLE.
 */
function staticPrincipal(authorization: string | undefined, options: RequestAuthOptions): RequestPrincipal {
  const principal = principalOf(authorization);
  const verifier = options.identityVerifier;
  const identity: CallerIdentity | undefined =
    options.assertsIdentity && principal !== "anonymous"
      ? { principal, kind: "token", scopes: [STATIC_CLIENT_ROLE], claims: {} }
      : undefined;
  return { principal, ...(identity ? { identity } : {}), ...(verifier ? { verifier } : {}) };
}

/** The 401 for a request without an accepted static token, saying which credential to send. */
function staticRefusal(outcome: Exclude<AuthOutcome, "ok">, tokenHint: string | undefined): Authentication {
  return {
    ok: false,
    status: 401,
    message:
      outcome === "missing"
        ? `Unauthorized: this endpoint requires a bearer token (Authorization: Bearer <token>; ${tokenHint ?? "toolmesh callers send the agent's credential, derived from MESH_TOKEN, or MESH_TOKEN_<AGENT>"}).`
        : "Unauthorized: the bearer token is not accepted here.",
    headers: { "WWW-Authenticate": challenge(outcome) },
  };
}
