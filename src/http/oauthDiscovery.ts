import { MeshError } from "../protocol/errors.ts";

/**
 * The issuer's `jwks_uri`: RFC 8414 metadata (path inserted after the well-known prefix),
 * then OpenID Connect discovery (appended), as MCP clients look for it. The metadata's
 * `issuer` must be the configured one, exactly (a mix-up defence: RFC 8414 §3.3). Each
 * request waits at most `timeoutMs`.
 */
export async function discoverJwks(issuer: string, fetchFn: typeof fetch, timeoutMs: number): Promise<string> {
  const u = new URL(issuer);
  const path = u.pathname === "/" ? "" : u.pathname.replace(/\/$/, "");
  const candidates = [
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
    `${u.origin}${path}/.well-known/openid-configuration`,
    `${u.origin}/.well-known/openid-configuration${path}`,
  ];
  const tried: string[] = [];
  for (const url of candidates) {
    let meta: Record<string, unknown>;
    try {
      const res = await fetchFn(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) {
        await res.body?.cancel();
        tried.push(`${url}: HTTP ${res.status}`);
        continue;
      }
      meta = (await res.json()) as Record<string, unknown>;
    } catch (e) {
      tried.push(`${url}: ${(e as Error).message}`);
      continue;
    }
    if (meta["issuer"] !== issuer)
      throw new MeshError(
        "CONFIG_INVALID",
        `The authorization server's metadata at ${url} names issuer ${JSON.stringify(meta["issuer"])}, not MESH_OAUTH_ISSUER=${issuer}; set MESH_OAUTH_ISSUER to its exact issuer.`,
      );
    if (typeof meta["jwks_uri"] !== "string")
      throw new MeshError("CONFIG_INVALID", `The authorization server's metadata at ${url} has no jwks_uri; set MESH_OAUTH_JWKS_URL.`);
    return meta["jwks_uri"];
  }
  throw new MeshError(
    "CONFIG_INVALID",
    `No authorization-server metadata found for MESH_OAUTH_ISSUER=${issuer} (${tried.join("; ")}); set MESH_OAUTH_JWKS_URL, or check the issuer.`,
    { retryable: true },
  );
}
