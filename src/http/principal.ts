import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";

/**
 * Who is asking: the bearer token a request presented, as a short digest (never the token),
 * or "anonymous" on an open endpoint. Set around each HTTP request the kit serves, so work
 * done for it (a task it creates) can be bound to it.
 */
const principals = new AsyncLocalStorage<string>();

/** The key in `_meta` through which a trusted intermediary (the gateway) names its own client. */
export const PRINCIPAL_META = "io.toolmesh/principal";

export function principalOf(authorization: string | undefined): string {
  const m = authorization ? /^Bearer[ \t]+(\S+)/i.exec(authorization) : null;
  return m ? `token:${createHash("sha256").update(m[1]!).digest("hex").slice(0, 16)}` : "anonymous";
}

export function withPrincipal<T>(principal: string, fn: () => T): T {
  return principals.run(principal, fn);
}

/** The principal of the request being served ("anonymous" outside one, e.g. stdio). */
export function currentPrincipal(): string {
  return principals.getStore() ?? "anonymous";
}

/**
 * Who owns what a request creates: the caller that authenticated here and, when that caller
 * passes on a request for its own client (the gateway does), that client as it names it.
 * An intermediary can only name clients under its own identity.
 */
export function ownerOf(meta: Record<string, unknown> | undefined): string {
  const onBehalf = meta?.[PRINCIPAL_META];
  return typeof onBehalf === "string" && onBehalf.length > 0 && onBehalf.length <= 200
    ? `${currentPrincipal()}>${onBehalf}`
    : currentPrincipal();
}
