import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import type { CallerIdentity, IdentityVerifier } from "./identity.ts";
import { PRINCIPAL_META } from "../protocol/keys.ts";

/**
 * Who is asking, per HTTP request the kit serves (and per call the pipeline runs):
 * - `principal`: the bearer token a request presented, as a short digest (never the token),
 *   or "anonymous" on an open endpoint; at the gateway, the client's identity's principal;
 * - `identity`: the caller the work is for, when known and trusted: at the gateway, its
 *   authenticated client; at an agent, the identity a call's signed assertion carries
 *   (identity.ts), once the pipeline has checked it;
 * - `verifier`: how this agent checks assertions (none: an open mesh, or the gateway).
 */
export interface RequestPrincipal {
  readonly principal: string;
  readonly identity?: CallerIdentity;
  readonly verifier?: IdentityVerifier;
}

const principals = new AsyncLocalStorage<RequestPrincipal>();

export function principalOf(authorization: string | undefined): string {
  const m = authorization ? /^Bearer[ \t]+(\S+)/i.exec(authorization) : null;
  return m ? `token:${createHash("sha256").update(m[1]!).digest("hex").slice(0, 16)}` : "anonymous";
}

export function withPrincipal<T>(principal: string | RequestPrincipal, fn: () => T): T {
  return principals.run(typeof principal === "string" ? { principal } : principal, fn);
}

/** Runs `fn` with `identity` as the caller the work is for (the pipeline, after checking its assertion). */
export function withIdentity<T>(identity: CallerIdentity, fn: () => T): T {
  const store = principals.getStore();
  return principals.run({ principal: store?.principal ?? "anonymous", ...store, identity }, fn);
}

/** The principal of the request being served ("anonymous" outside one, e.g. stdio). */
export function currentPrincipal(): string {
  return principals.getStore()?.principal ?? "anonymous";
}

/** The trusted identity of the caller the current work is for, if any. */
export function currentIdentity(): CallerIdentity | undefined {
  return principals.getStore()?.identity;
}

/** How the agent serving this request checks identity assertions, if it does. */
export function currentVerifier(): IdentityVerifier | undefined {
  return principals.getStore()?.verifier;
}

/** A call's identity assertion did not check out: the call is refused, never run as someone else. */
export class ForgedIdentityError extends Error {
  override readonly name = "ForgedIdentityError";
}

/**
 * Who owns what a request creates: the identity its signed assertion carries (the gateway's
 * client: an OAuth subject, or a static-token client), else the caller that authenticated
 * here. In an open mesh (no mesh token to check with) the client an intermediary names in
 * PRINCIPAL_META is taken under the intermediary's own identity, as nothing is authenticated
 * there anyway. A forged assertion throws ForgedIdentityError.
 */
export function ownerOf(meta: Record<string, unknown> | undefined): string {
  const store = principals.getStore();
  if (store?.identity) return store.identity.principal;
  const checked = store?.verifier?.check(meta);
  if (checked?.ok === false) throw new ForgedIdentityError(`Refused: ${checked.reason}.`);
  if (checked?.ok) return checked.identity.principal;
  if (store?.verifier?.enabled) return currentPrincipal();
  const onBehalf = meta?.[PRINCIPAL_META];
  return typeof onBehalf === "string" && onBehalf.length > 0 && onBehalf.length <= 200
    ? `${currentPrincipal()}>${onBehalf}`
    : currentPrincipal();
}
