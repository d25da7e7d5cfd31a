import {
  auth,
  computeScopeUnion,
  extractWWWAuthenticateParams,
  isStrictScopeSuperset,
  UnauthorizedError,
  type FetchLike,
  type OAuthClientProvider,
} from "@modelcontextprotocol/client";

/**
 * An OAuth client for servers that require one (MCP authorization: protected-resource
 * metadata, authorization-server discovery, registration, PKCE, scopes, step-up), as the
 * SDK's `auth()` runs it. For the authorization-code grant without a person at a browser
 * (a service account's consent already given, a test authorization server), the provider
 * also says which code the authorization redirect produced.
 */
export interface MeshOAuthProvider extends OAuthClientProvider {
  /** The code (and RFC 9207 `iss`) the last `redirectToAuthorization` produced, if it could get one. */
  authorizationResult?(): Promise<{ code: string; iss?: string } | undefined> | { code: string; iss?: string } | undefined;
}

/**
 * A fetch that authorizes with `provider`: the access token on every request, and on a 401
 * (or a 403 insufficient_scope step-up) the OAuth flow, then the request once more. A 401
 * after a token was held drops the cached discovery first (the resource may have moved to
 * another authorization server); a step-up asks for the union of the granted and the
 * challenged scopes, re-authorizing when a refresh could not widen them. Still refused after
 * that: UnauthorizedError.
 */
export function withMeshOAuth(provider: MeshOAuthProvider, serverUrl: string | URL, next: FetchLike): FetchLike {
  const send = async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const tokens = await provider.tokens();
    if (tokens) headers.set("Authorization", `Bearer ${tokens.access_token}`);
    return next(input, { ...init, headers });
  };
  return async (input, init) => {
    const first = await send(input, init);
    if (first.status !== 401 && first.status !== 403) return first;
    await authorize(provider, serverUrl, first, next);
    const second = await send(input, init);
    if (second.status === 401 || second.status === 403) {
      await second.body?.cancel().catch(() => undefined);
      throw new UnauthorizedError(`The server still refuses the request after authorization (HTTP ${second.status}).`);
    }
    return second;
  };
}

async function authorize(provider: MeshOAuthProvider, serverUrl: string | URL, refused: Response, next: FetchLike): Promise<void> {
  const { resourceMetadataUrl, scope: challenged } = extractWWWAuthenticateParams(refused);
  await refused.body?.cancel().catch(() => undefined);
  const held = await provider.tokens();
  const stepUp = refused.status === 403;
  const scope = stepUp ? computeScopeUnion(held?.scope, challenged) : challenged;
  if (!stepUp) provider.invalidateCredentials?.("discovery");
  const options = { serverUrl, ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}), ...(scope ? { scope } : {}), fetchFn: next };
  let result = await auth(provider, { ...options, forceReauthorization: isStrictScopeSuperset(scope, held?.scope) });
  if (result === "REDIRECT") {
    const redirect = await provider.authorizationResult?.();
    if (!redirect) throw new UnauthorizedError("The server needs a user's authorization; complete it in a browser and try again.");
    result = await auth(provider, { ...options, authorizationCode: redirect.code, ...(redirect.iss ? { iss: redirect.iss } : {}) });
  }
  if (result !== "AUTHORIZED") throw new UnauthorizedError(`Authorization did not complete (${result}).`);
}
