import { createHash, timingSafeEqual } from "node:crypto";
import { agentCredential } from "../protocol/credentials.ts";

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
 * The bearer tokens an agent of one kind accepts: each of its mesh tokens (operators and the
 * metrics scraper hold them; no caller sends one to an agent any more) and the credential for
 * its own kind derived from each (several during a rotation).
 */
export function agentTokens(agent: string, meshTokens: readonly string[]): string[] {
  return [...meshTokens, ...meshTokens.map((t) => agentCredential(t, agent))];
}

/** The WWW-Authenticate header for a refused request (RFC 6750). */
export function challenge(outcome: Exclude<AuthOutcome, "ok">): string {
  return outcome === "missing"
    ? `Bearer realm="${AUTH_REALM}"`
    : `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="the bearer token is not accepted"`;
}
