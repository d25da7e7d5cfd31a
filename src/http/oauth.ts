import {
  bearerAuthChallengeResponse,
  getOAuthProtectedResourceMetadataUrl,
  OAuthError,
  OAuthErrorCode,
  verifyBearerToken,
  type AuthInfo,
  type OAuthProtectedResourceMetadata,
  type OAuthTokenVerifier,
} from "@modelcontextprotocol/server";
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import * as z from "zod";
import { MeshError } from "../protocol/errors.ts";
import { AUTH_REALM } from "./auth.ts";
import type { CallerIdentity } from "./identity.ts";
import { discoverJwks } from "./oauthDiscovery.ts";

/** Claims of an access token carried to agents by default (hr books leave for `employee_id`). */
export const DEFAULT_OAUTH_CLAIMS = ["employee_id"] as const;
/** Clock skew allowed on exp/nbf/iat. @default 30 (seconds) */
export const DEFAULT_OAUTH_CLOCK_TOLERANCE_S = 30;
/** Longest wait for the authorization server (metadata, JWKS, introspection). @default 5000 */
export const OAUTH_FETCH_TIMEOUT_MS = 5_000;
/** Signature algorithms accepted on JWT access tokens: asymmetric only (a shared secret would let the resource mint tokens). */
const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

const Url = z.string().url();

/** The gateway's OAuth 2.1 resource-server settings (MESH_OAUTH_*), validated once. */
export const OAuthResourceConfigSchema = z
  .object({
    /** The authorization server's issuer identifier, compared exactly (RFC 8414 / RFC 9207). */
    issuer: Url,
    /** This resource's canonical URI (RFC 8707 / RFC 9728): tokens must name it as their audience. */
    resource: Url,
    /** Where the AS publishes its signing keys. Default: `jwks_uri` of the issuer's metadata. */
    jwksUrl: Url.optional(),
    /** RFC 7662 introspection for opaque tokens, with the resource's own client credentials. */
    introspection: z.object({ url: Url, clientId: z.string().min(1), clientSecret: z.string().min(1) }).optional(),
    /** Scopes every request needs (403 insufficient_scope without them). */
    requiredScopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default([]),
    /** Scopes advertised in the protected-resource metadata. */
    scopesSupported: z.array(z.string()).default([]),
    /** String claims of a token passed on to agents in the signed identity. */
    claims: z.array(z.string().min(1)).default([...DEFAULT_OAUTH_CLAIMS]),
    clockToleranceSec: z.number().int().min(0).max(600).default(DEFAULT_OAUTH_CLOCK_TOLERANCE_S),
  })
  .readonly();
export type OAuthResourceConfig = z.input<typeof OAuthResourceConfigSchema>;

/** The gateway's settings from MESH_OAUTH_* (undefined when MESH_OAUTH_ISSUER is unset: no OAuth). */
export function oauthConfigFromEnv(env: NodeJS.ProcessEnv, defaultResource: () => string): OAuthResourceConfig | undefined {
  const issuer = env["MESH_OAUTH_ISSUER"]?.trim();
  if (!issuer) return undefined;
  const list = (v: string | undefined) => (v ?? "").split(/[\s,]+/).filter(Boolean);
  const introspectionUrl = env["MESH_OAUTH_INTROSPECTION_URL"]?.trim();
  return {
    issuer,
    resource: env["MESH_OAUTH_RESOURCE"]?.trim() || defaultResource(),
    ...(env["MESH_OAUTH_JWKS_URL"]?.trim() ? { jwksUrl: env["MESH_OAUTH_JWKS_URL"].trim() } : {}),
    ...(introspectionUrl
      ? {
          introspection: {
            url: introspectionUrl,
            clientId: env["MESH_OAUTH_CLIENT_ID"] ?? "",
            clientSecret: env["MESH_OAUTH_CLIENT_SECRET"] ?? "",
          },
        }
      : {}),
    requiredScopes: list(env["MESH_OAUTH_REQUIRED_SCOPES"]),
    scopesSupported: list(env["MESH_OAUTH_SCOPES_SUPPORTED"]),
    ...(env["MESH_OAUTH_CLAIMS"] !== undefined ? { claims: list(env["MESH_OAUTH_CLAIMS"]) } : {}),
  };
}

/** What authenticating one request came to: the caller, or the HTTP refusal to send. */
export type OAuthOutcome =
  { ok: true; identity: CallerIdentity } | { ok: false; status: number; headers: Record<string, string>; message: string; error: string };

/**
 * The gateway as an OAuth 2.1 resource server (MCP authorization): JWT access tokens checked
 * against the authorization server's JWKS with jose (signature, issuer exactly, audience =
 * this resource, exp/nbf), opaque tokens through RFC 7662 introspection when configured, then
 * the SDK's bearer check (resource, required scopes, expiry) and its RFC 6750 challenges
 * pointing at the RFC 9728 protected-resource metadata.
 */
export class OAuthResourceServer implements OAuthTokenVerifier {
  readonly config: z.output<typeof OAuthResourceConfigSchema>;
  /** The resource identifier as published (URL-normalised). */
  readonly resource: string;
  /** Where the protected-resource metadata of `resource` is (the URL in every challenge). */
  readonly metadataUrl: string;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  private constructor(config: z.output<typeof OAuthResourceConfigSchema>, jwksUrl: string | undefined) {
    this.config = config;
    this.resource = new URL(config.resource).href;
    this.metadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(this.resource));
    this.jwks = jwksUrl ? createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: OAUTH_FETCH_TIMEOUT_MS }) : undefined;
  }

  /**
   * Validates the settings and, without MESH_OAUTH_JWKS_URL or introspection, finds the JWKS
   * in the issuer's metadata (RFC 8414, then OpenID discovery), whose `issuer` must equal the
   * configured one exactly. Errors are CONFIG_INVALID naming the setting.
   */
  static async create(input: OAuthResourceConfig, o: { fetch?: typeof fetch } = {}): Promise<OAuthResourceServer> {
    const parsed = OAuthResourceConfigSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new MeshError("CONFIG_INVALID", `MESH_OAUTH_* settings: ${issue.path.join(".") || "value"}: ${issue.message}.`);
    }
    const config = parsed.data;
    for (const [name, url] of [
      ["MESH_OAUTH_ISSUER", config.issuer],
      ["MESH_OAUTH_RESOURCE", config.resource],
    ] as const) {
      const u = new URL(url);
      if (u.protocol !== "https:" && !isLoopback(u.hostname))
        throw new MeshError("CONFIG_INVALID", `${name} must be an https URL (http only on a loopback address); got ${url}.`);
      if (u.hash || (name === "MESH_OAUTH_ISSUER" && u.search))
        throw new MeshError(
          "CONFIG_INVALID",
          `${name} must have no fragment${name === "MESH_OAUTH_ISSUER" ? " or query" : ""}; got ${url}.`,
        );
    }
    // With introspection configured, a JWKS that cannot be discovered only means every token is introspected.
    const jwksUrl =
      config.jwksUrl ??
      (await discoverJwks(config.issuer, o.fetch ?? fetch, OAUTH_FETCH_TIMEOUT_MS).catch((e: unknown) => {
        if (config.introspection) return undefined;
        throw e;
      }));
    return new OAuthResourceServer(config, jwksUrl);
  }

  /** The RFC 9728 document, the same at every well-known path this gateway answers. */
  metadata(): OAuthProtectedResourceMetadata {
    return {
      resource: this.resource,
      authorization_servers: [this.config.issuer],
      bearer_methods_supported: ["header"],
      resource_name: "toolmesh gateway",
      ...(this.config.scopesSupported.length ? { scopes_supported: [...this.config.scopesSupported] } : {}),
    };
  }

  /** Whether a request path is one of the well-known paths of the metadata (bare, or suffixed with an MCP path). */
  isMetadataPath(path: string): boolean {
    return path === "/.well-known/oauth-protected-resource" || path.startsWith("/.well-known/oauth-protected-resource/");
  }

  /** Authenticates a request's Authorization header (the SDK's bearer check over this verifier). */
  async authenticate(authorization: string | undefined): Promise<OAuthOutcome> {
    const options = {
      verifier: this,
      requiredScopes: [...this.config.requiredScopes],
      resourceMetadataUrl: this.metadataUrl,
      expectedResource: new URL(this.resource),
    };
    if (!authorization) {
      // RFC 6750 §3.1: no error code when the request carried no credentials. With scopes_supported
      // published, no scope either: an MCP client then asks for those (the user consents to some).
      const scope =
        options.requiredScopes.length && !this.config.scopesSupported.length ? `, scope="${options.requiredScopes.join(" ")}"` : "";
      return {
        ok: false,
        status: 401,
        error: "invalid_request",
        headers: { "WWW-Authenticate": `Bearer realm="${AUTH_REALM}", resource_metadata="${this.metadataUrl}"${scope}` },
        message: `Unauthorized: this endpoint requires an OAuth access token for ${this.resource} from ${this.config.issuer} (Authorization: Bearer <token>); its protected-resource metadata is at ${this.metadataUrl}.`,
      };
    }
    try {
      const info = await verifyBearerToken(authorization, options);
      return { ok: true, identity: this.identityOf(info) };
    } catch (e) {
      const answer = bearerAuthChallengeResponse(e, options);
      const code = e instanceof OAuthError ? e.code : "server_error";
      const why = e instanceof OAuthError ? e.message : "the token could not be checked";
      return {
        ok: false,
        status: answer.status,
        error: String(code),
        headers: { "WWW-Authenticate": answer.headers.get("www-authenticate") ?? `Bearer realm="${AUTH_REALM}"` },
        message:
          code === OAuthErrorCode.InsufficientScope
            ? `Forbidden: the access token lacks the scope this endpoint requires (${options.requiredScopes.join(" ")}).`
            : answer.status === 401
              ? `Unauthorized: ${why}.`
              : `The gateway could not check the access token: ${why}. Try again shortly.`,
      };
    }
  }

  /** OAuthTokenVerifier: a JWT checked locally, an opaque token introspected. */
  async verifyAccessToken(token: string): Promise<AuthInfo> {
    const jwt = looksLikeJwt(token);
    if (jwt && this.jwks) return this.verifyJwt(token);
    if (this.config.introspection) return this.introspect(token);
    throw new OAuthError(
      OAuthErrorCode.InvalidToken,
      jwt ? "the token cannot be checked (no JWKS configured)" : "the token is not a JWT and no introspection endpoint is configured",
    );
  }

  private async verifyJwt(token: string): Promise<AuthInfo> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks!, {
        issuer: this.config.issuer,
        audience: audiences(this.resource),
        algorithms: JWT_ALGORITHMS,
        clockTolerance: this.config.clockToleranceSec,
        requiredClaims: ["exp"],
      }));
    } catch (e) {
      // The keys could not be fetched: the resource's failure (500), not the token's.
      if (e instanceof joseErrors.JWKSTimeout || !(e instanceof joseErrors.JOSEError))
        throw new OAuthError(OAuthErrorCode.ServerError, `the authorization server's keys could not be fetched (${(e as Error).message})`);
      throw new OAuthError(OAuthErrorCode.InvalidToken, this.jwtProblem(e));
    }
    return this.authInfo(token, payload);
  }

  private jwtProblem(e: unknown): string {
    if (e instanceof joseErrors.JWTExpired) return "the access token has expired";
    if (e instanceof joseErrors.JWTClaimValidationFailed) {
      const p = e.payload;
      if (e.claim === "iss") return `the token was issued by ${String(p["iss"] ?? "nobody")}, not by ${this.config.issuer}`;
      if (e.claim === "aud") return `the token is for ${JSON.stringify(p["aud"] ?? null)}, not for this resource (${this.resource})`;
      if (e.claim === "nbf") return "the access token is not valid yet";
      return `the token's ${e.claim} claim is not accepted (${e.reason})`;
    }
    if (e instanceof joseErrors.JWKSNoMatchingKey) return "the token is signed with a key the authorization server does not publish";
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
    if (e instanceof joseErrors.JOSEAlgNotAllowed) return "the token's signature algorithm is not accepted";
    return `the token is not valid (${(e as Error).message})`;
  }

  private async introspect(token: string): Promise<AuthInfo> {
    const c = this.config.introspection!;
    let answer: Record<string, unknown>;
    try {
      const res = await fetch(c.url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token, token_type_hint: "access_token" }),
        signal: AbortSignal.timeout(OAUTH_FETCH_TIMEOUT_MS),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      answer = (await res.json()) as Record<string, unknown>;
    } catch (e) {
      throw new OAuthError(OAuthErrorCode.ServerError, `token introspection at ${c.url} failed (${(e as Error).message})`);
    }
    if (answer["active"] !== true) throw new OAuthError(OAuthErrorCode.InvalidToken, "the token is not active (introspection)");
    if (answer["iss"] !== undefined && answer["iss"] !== this.config.issuer)
      throw new OAuthError(OAuthErrorCode.InvalidToken, `the token was issued by ${String(answer["iss"])}, not by ${this.config.issuer}`);
    const aud = answer["aud"];
    const auds = Array.isArray(aud) ? aud : aud === undefined ? [] : [aud];
    if (!auds.some((a) => audiences(this.resource).includes(String(a))))
      throw new OAuthError(
        OAuthErrorCode.InvalidToken,
        `the token is for ${JSON.stringify(aud ?? null)}, not for this resource (${this.resource})`,
      );
    return this.authInfo(token, answer as JWTPayload);
  }

  private authInfo(token: string, claims: JWTPayload): AuthInfo {
    const scope = claims["scope"] ?? claims["scp"];
    const scopes = typeof scope === "string" ? scope.split(" ").filter(Boolean) : Array.isArray(scope) ? scope.map(String) : [];
    const clientId = String(claims["client_id"] ?? claims["azp"] ?? "");
    return {
      token,
      clientId,
      scopes,
      ...(typeof claims.exp === "number" ? { expiresAt: claims.exp } : {}),
      resource: new URL(this.resource),
      extra: { claims },
    };
  }

  private identityOf(info: AuthInfo): CallerIdentity {
    const claims = (info.extra?.["claims"] ?? {}) as Record<string, unknown>;
    const subject = typeof claims["sub"] === "string" ? claims["sub"] : undefined;
    const carried: Record<string, string> = {};
    for (const name of this.config.claims) {
      const v = claims[name];
      if (typeof v === "string" && v.length <= 256) carried[name] = v;
    }
    const roles = claims["roles"];
    return {
      principal: subject ? `oauth:${subject}` : `oauth:client:${info.clientId}`,
      kind: "oauth",
      ...(subject ? { subject } : {}),
      ...(info.clientId ? { clientId: info.clientId } : {}),
      scopes: [
        ...info.scopes,
        ...(Array.isArray(roles) ? roles.filter((r): r is string => typeof r === "string").map((r) => `role:${r}`) : []),
      ],
      claims: carried,
    };
  }
}

/** The audience values that name this resource: its URL as published and without the trailing slash. */
function audiences(resource: string): string[] {
  return resource.endsWith("/") ? [resource, resource.slice(0, -1)] : [resource];
}

function looksLikeJwt(token: string): boolean {
  if (token.split(".").length !== 3) return false;
  try {
    return typeof decodeProtectedHeader(token).alg === "string";
  } catch {
    return false;
  }
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}
