import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider, { type Configuration } from "oidc-provider";
import { randomLoopback } from "./consul.ts";

/** An account of the test's authorization server: its claims (employee_id for hr) and the scopes it may be granted. */
export interface TestAccount {
  employeeId?: string;
  roles?: string[];
}

export interface TestClient {
  clientId: string;
  clientSecret: string;
  /** Scopes it may ask for with client credentials. */
  scope: string;
  /** Access-token lifetime for this client, seconds. @default 300 */
  ttl?: number;
  /** Opaque access tokens (checked by introspection) instead of JWTs. */
  opaque?: boolean;
}

export interface TestAuthServer {
  readonly issuer: string;
  readonly provider: Provider;
  /** Who logs in at the next authorization request (the test plays the user). */
  loginAs: string;
  /** What the user consents to at the next authorization request (default: everything asked). */
  consent?: string[];
  /** A client-credentials access token for `resource`. */
  clientCredentials(client: TestClient, o: { resource: string; scope: string }): Promise<string>;
  close(): Promise<void>;
}

/** Every resource scope the test AS knows (getResourceServerInfo grants any of them to any resource). */
export const RESOURCE_SCOPES = "mesh hr:read hr:book hr:admin finance:read knowledge:read orchestrator:ask";

/**
 * oidc-provider (a certified OpenID Provider, not written here) on a random 127.x loopback
 * address: client credentials, dynamic registration, authorization code with PKCE (the test
 * answers its login and consent interactions in code), resource indicators (RFC 8707) with
 * JWT access tokens (RFC 9068) whose audience is the resource asked for, introspection.
 */
export async function startAuthServer(o: {
  /** @default a random 127.x loopback address */
  host?: string;
  /** @default any free port */
  port?: number;
  accounts: Record<string, TestAccount>;
  clients: TestClient[];
  /** The same signing key for two servers: a token of one verifies against the other's JWKS (a wrong-issuer test). */
  key?: JWK;
  /** Introspection clients (the gateway's own credentials). */
  resourceServers?: { clientId: string; clientSecret: string }[];
}): Promise<TestAuthServer & { key: JWK }> {
  const host = o.host ?? randomLoopback();
  const http: Server = createServer();
  await new Promise<void>((resolve) => http.listen(o.port ?? 0, host, resolve));
  const issuer = `http://${host}:${(http.address() as AddressInfo).port}`;
  const key = o.key ?? {
    ...(await exportJWK((await generateKeyPair("RS256", { extractable: true })).privateKey)),
    alg: "RS256",
    use: "sig",
    kid: "k1",
  };
  const ttlOf = new Map(o.clients.map((c) => [c.clientId, c.ttl ?? 300]));
  const opaque = new Set(o.clients.filter((c) => c.opaque).map((c) => c.clientId));
  const config: Configuration = {
    clients: [
      ...o.clients.map((c) => ({
        client_id: c.clientId,
        client_secret: c.clientSecret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: c.scope,
      })),
      ...(o.resourceServers ?? []).map((r) => ({
        client_id: r.clientId,
        client_secret: r.clientSecret,
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      })),
    ],
    jwks: { keys: [key] },
    findAccount: (_ctx, id) =>
      o.accounts[id]
        ? { accountId: id, claims: () => ({ sub: id, ...(o.accounts[id]!.employeeId ? { employee_id: o.accounts[id]!.employeeId } : {}) }) }
        : undefined,
    // The claims an RFC 9068 access token carries beside sub, client_id and scope.
    extraTokenClaims: (_ctx, token) => {
      const account = "accountId" in token && token.accountId ? o.accounts[token.accountId as string] : undefined;
      return account
        ? { ...(account.employeeId ? { employee_id: account.employeeId } : {}), ...(account.roles ? { roles: account.roles } : {}) }
        : undefined;
    },
    // Every lifetime set (the provider's defaults are fine, but it asks for them to be chosen).
    ttl: {
      ClientCredentials: (_ctx: unknown, token: { clientId?: string }) => ttlOf.get(token.clientId ?? "") ?? 300,
      AccessToken: 300,
      Grant: 3_600,
      Interaction: 600,
      Session: 3_600,
      IdToken: 300,
      AuthorizationCode: 60,
      RefreshToken: 3_600,
    },
    scopes: ["openid", "offline_access", ...RESOURCE_SCOPES.split(" ")],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      // Any authenticated client may introspect (the gateway, with its own credentials).
      introspection: { enabled: true, allowedPolicy: () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator, client) => ({
          scope: RESOURCE_SCOPES,
          audience: resourceIndicator,
          accessTokenTTL: ttlOf.get(client.clientId) ?? 300,
          accessTokenFormat: opaque.has(client.clientId) ? "opaque" : "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    pkce: { required: () => true },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // Loopback http in the test; the provider would otherwise refuse to set its cookies over http.
    cookies: { keys: ["test-cookie-key-0123456789"] },
    clientBasedCORS: () => true,
  };
  const provider = new Provider(issuer, config);
  const self: TestAuthServer & { key: JWK } = {
    issuer,
    provider,
    key,
    loginAs: Object.keys(o.accounts)[0] ?? "nobody",
    async clientCredentials(client, { resource, scope }) {
      const res = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource, scope }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!body.access_token) throw new Error(`client credentials refused: ${body.error} ${body.error_description ?? ""}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
  const callback = provider.callback();
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith("/interaction/")) {
      void interact(provider, self, req, res).catch((e: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
      });
      return;
    }
    callback(req, res);
  });
  return self;
}

/** The user's side of the authorization: logs in as `loginAs`, then grants what the client asked for. */
async function interact(provider: Provider, as: TestAuthServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === "login") {
    await provider.interactionFinished(req, res, { login: { accountId: as.loginAs } }, { mergeWithLastSubmission: false });
    return;
  }
  const params = details.params as Record<string, string | undefined>;
  const grant = details.grantId
    ? ((await provider.Grant.find(details.grantId)) ??
      new provider.Grant({ accountId: details.session!.accountId, clientId: params["client_id"]! }))
    : new provider.Grant({ accountId: details.session!.accountId, clientId: params["client_id"]! });
  // What the provider says is missing, as far as the user consents to it.
  const missing = (details.prompt.details ?? {}) as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
  const allowed = (scopes: string[]) => (as.consent ? scopes.filter((x) => as.consent!.includes(x)) : scopes);
  const refused = (scopes: string[]) => scopes.filter((x) => !allowed(scopes).includes(x));
  if (missing.missingOIDCScope?.length) {
    grant.addOIDCScope(allowed(missing.missingOIDCScope).join(" "));
    grant.rejectOIDCScope(refused(missing.missingOIDCScope).join(" "));
  }
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, allowed(scopes).join(" "));
    grant.rejectResourceScope(resource, refused(scopes).join(" "));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

/**
 * Follows an authorization request the way a browser would (cookies kept, redirects followed)
 * until the authorization server redirects to `redirectUri`: the URL it sent the user back to.
 */
export async function authorizeInBrowser(authorizationUrl: URL, redirectUri: string): Promise<URL> {
  const cookies = new Map<string, string>();
  let url = authorizationUrl.toString();
  for (let hop = 0; hop < 20; hop++) {
    if (url.startsWith(redirectUri)) return new URL(url);
    const res = await fetch(url, {
      redirect: "manual",
      headers: cookies.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") } : {},
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const eq = pair!.indexOf("=");
      cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1));
    }
    const location = res.headers.get("location");
    const text = await res.text();
    if (!location) throw new Error(`the authorization server stopped at ${url} (HTTP ${res.status}): ${text.slice(0, 300)}`);
    url = new URL(location, url).toString();
  }
  throw new Error("too many redirects during authorization");
}
