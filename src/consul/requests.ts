import { MeshError } from "../protocol/errors.ts";
import { consulKvSeconds } from "../telemetry/metrics.ts";
import { inChildSpan } from "../telemetry/tracing.ts";
import type { ConsulAddress } from "./address.ts";
import { TransportFailure, type ConsulHttp, type HttpRequest, type HttpResponse } from "./http.ts";

/** Pause between two tries of one request: doubles from the first to the last, with jitter. @default [100, 2000] */
export const CONSUL_RETRY_BACKOFF_MS: readonly [number, number] = [100, 2_000];

/** A request as the client builds it; the limits of the try are added when it is sent. */
export type ConsulRequest = Omit<HttpRequest, "timeoutMs" | "signal">;

/** What one request may spend: the client's defaults already applied to the caller's options. */
export interface RequestLimits {
  /** Longest wait for one answer. */
  timeoutMs: number;
  /** How long the request may be tried again while Consul cannot serve it (0: once). */
  retryMs: number;
  signal?: AbortSignal;
}

/**
 * How a request may be tried again. "idempotent": sending it twice does what sending it once
 * does (reads, registrations, plain sets and deletes). "conditional": a check-and-set; tried
 * again only when Consul cannot have applied it, otherwise `settle` reads back what happened.
 */
export type Retry =
  | { kind: "idempotent" }
  | { kind: "once" }
  | {
      kind: "conditional";
      /** Reads back whether the write applied. */
      settle: () => Promise<Settled>;
      /** Whether an answer says the write lost its check-and-set. */
      lost: (res: HttpResponse) => boolean;
    };
/** What reading back a conditional write found: it applied (with what it returned), it did not, or cannot be told. */
export type Settled = { applied: true; value: unknown } | { applied: false } | undefined;

/** A failure that says Consul did not act on the request (no leader to send it to, no server reachable). */
const NOT_APPLIED =
  /No cluster leader|failed to get conn|connection refused|no route to host|timed out enqueuing operation|rate limit|Not ready to serve consistent reads|leader not found|No known Consul servers|no servers available/i;

/** The agent asked reaches no server at all (rather than the servers having no leader). */
const NO_SERVER = /No known Consul servers|no servers available|failed to get conn|connection refused|no route to host/i;

interface Attempt {
  res?: HttpResponse;
  error?: MeshError;
  /** The request certainly had no effect (nothing was sent, or Consul said it did not act). */
  notApplied?: boolean;
}

/**
 * How one request reaches Consul: sent, and while Consul cannot serve it tried again with
 * backoff within its retry budget; a conditional write is sent again only when it certainly
 * did not apply (else read back). Every failure is a MeshError naming the address and what to do.
 */
export class ConsulRequests {
  private readonly http: ConsulHttp;

  constructor(http: ConsulHttp) {
    this.http = http;
  }

  /**
   * Sends a request, and while Consul cannot serve it (and `retry` allows) sends it again
   * with backoff until the retry budget is spent. Statuses in `expected` are answers, not failures.
   * A conditional write that may have applied is never sent again blind: it is read back first,
   * and it is sent again only when it certainly did not apply. A write sent again after such a
   * doubt that then loses its check-and-set is read back once more (the first one may have been
   * applied late, after the read-back): if it was ours, it is reported as applied.
   */
  async send(
    what: string,
    req: ConsulRequest,
    retry: Retry,
    limits: RequestLimits,
    expected: readonly number[] = [],
  ): Promise<HttpResponse> {
    limits.signal?.throwIfAborted();
    const budget = retry.kind === "once" ? 0 : limits.retryMs;
    const giveUpAt = Date.now() + budget;
    let doubt = false;
    for (let attempt = 1; ; attempt++) {
      const a = await this.attempt(what, req, limits, expected);
      if (a.res) {
        if (doubt && retry.kind === "conditional" && retry.lost(a.res)) {
          const settled = await retry.settle().catch(() => undefined);
          if (settled?.applied) return { ...placeholder(this.http.active), body: settled.value };
        }
        return a.res;
      }
      const error = a.error!;
      if (retry.kind === "conditional" && !a.notApplied) {
        doubt = true;
        const settled = await this.settleWithin(retry, giveUpAt, limits.signal);
        if (settled?.applied) return { ...placeholder(this.http.active), body: settled.value };
        if (!settled) throw this.writeUnknown(what, error);
        // It certainly did not apply: sending it again is safe.
      }
      if (!error.retryable || Date.now() >= giveUpAt) throw error;
      await pause(attempt, limits.signal);
    }
  }

  /** Reads back a conditional write until it can tell whether it applied (bounded by the retry budget, one try at least). */
  private async settleWithin(retry: Retry & { kind: "conditional" }, giveUpAt: number, signal?: AbortSignal): Promise<Settled> {
    for (let attempt = 1; ; attempt++) {
      const settled = await retry.settle().catch(() => undefined);
      if (settled || Date.now() >= giveUpAt) return settled;
      await pause(attempt, signal);
    }
  }

  /** One try: the answer, or the failure with whether Consul certainly did not act on it. */
  private async attempt(what: string, req: ConsulRequest, limits: RequestLimits, expected: readonly number[]): Promise<Attempt> {
    let res: HttpResponse;
    try {
      res = await this.http.send({ ...req, timeoutMs: limits.timeoutMs, ...(limits.signal ? { signal: limits.signal } : {}) });
    } catch (e) {
      if (!(e instanceof TransportFailure)) throw e; // the caller's abort
      return { error: this.unreachable(what, e), notApplied: e.kind === "not-sent" };
    }
    if ((res.status >= 200 && res.status < 300) || expected.includes(res.status)) return { res };
    return refusal(what, res);
  }

  private unreachable(what: string, e: TransportFailure): MeshError {
    const all = this.http.addresses.length > 1 ? ` (and ${this.http.addresses.length - 1} other address(es) given)` : "";
    return new MeshError(
      "CONSUL_UNREACHABLE",
      `Consul at ${e.address.url}${all} is unreachable (${e.code}) while trying to ${what}. Start one with "mesh up" or set CONSUL_HTTP_ADDR.`,
      { cause: e, retryable: true, details: { consul: e.address.url } },
    );
  }

  /** A conditional write got no answer, and reading it back could not tell whether it applied. */
  private writeUnknown(what: string, error: MeshError): MeshError {
    const url = this.http.active.url;
    return new MeshError(
      "CONSUL_WRITE_UNKNOWN",
      `Consul at ${url} did not answer whether it did ${what} (${error.message}), and reading it back could not tell. It was not sent again. Check the state before repeating it.`,
      { cause: error, retryable: false, details: { consul: url } },
    );
  }
}

/**
 * How a write to one key is tried again: plainly without `cas`; with it, as a conditional
 * write that is read back (`read`: the key as the leader has it) when Consul may have applied
 * it without answering. It did not apply while the key still has the index it was
 * conditioned on (or, for a create-only write, is still absent); it did when the key is as
 * the write leaves it (`applied`); anything else cannot be told.
 */
export function casRetry<K extends { modifyIndex: number }>(
  cas: number | undefined,
  read: () => Promise<K | undefined>,
  write: { applied: (now: K | undefined) => boolean; lost: (res: HttpResponse) => boolean },
): Retry {
  if (cas === undefined) return { kind: "idempotent" };
  const settle = async (): Promise<Settled> => {
    const now = await read();
    if (now !== undefined && now.modifyIndex === cas) return { applied: false };
    if (write.applied(now)) return { applied: true, value: true };
    return now === undefined && cas === 0 ? { applied: false } : undefined;
  };
  return { kind: "conditional", settle, lost: write.lost };
}

/** A blocking query is not retried here: its watcher retries with its own backoff and keeps its last view meanwhile. */
export function blockingRetry(index: string | undefined): Retry {
  return !index || index === "0" ? { kind: "idempotent" } : { kind: "once" };
}

/** One KV request: timed (toolmesh_consul_kv_duration_seconds) and, inside a traced call, a child span. */
export async function timedKv<T>(op: "get" | "set" | "keys" | "delete" | "txn", key: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await inChildSpan(
      `consul kv.${op}`,
      { "db.system.name": "consul", "db.operation.name": `kv.${op}`, "toolmesh.kv.key": key },
      fn,
    );
  } finally {
    consulKvSeconds.observe({ op }, (performance.now() - started) / 1_000);
  }
}

/** An HTTP answer that is not a success: forbidden (never retried), or refused, with whether Consul acted on it. */
function refusal(what: string, res: HttpResponse): Attempt {
  const text = res.text.trim();
  const url = res.address.url;
  if (res.status === 403) {
    return {
      notApplied: true,
      error: new MeshError(
        "CONSUL_FORBIDDEN",
        `Consul at ${url} refused to ${what}: ${text || "permission denied"}. Give the token (CONSUL_HTTP_TOKEN) the permission named here.`,
        { details: { consul: url, status: 403 } },
      ),
    };
  }
  const leaderless = res.status >= 500 && NOT_APPLIED.test(text);
  const serverless = leaderless && NO_SERVER.test(text);
  const retryable = res.status >= 500 || res.status === 429;
  return {
    notApplied: leaderless || res.status === 429 || res.status < 500,
    error: new MeshError(
      "CONSUL_REJECTED",
      `Consul at ${url} refused to ${what}: HTTP ${res.status}${text ? ` ${text}` : ""}${serverless ? ". This Consul agent reaches no Consul server (cut off from them, or they are down)" : leaderless ? ". The Consul cluster has no leader (an election, or too few servers up)" : ""}.`,
      { retryable, details: { consul: url, status: res.status, ...(leaderless ? { noLeader: true } : {}) } },
    ),
  };
}

/** The answer given for a conditional write whose read-back showed it applied. */
function placeholder(address: ConsulAddress): HttpResponse {
  return { status: 200, headers: {}, body: undefined, text: "", address };
}

function pause(attempt: number, signal?: AbortSignal): Promise<void> {
  const [min, max] = CONSUL_RETRY_BACKOFF_MS;
  const ms = Math.min(max, min * 2 ** Math.min(attempt - 1, 10)) * (0.5 + Math.random() / 2);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal!.reason as Error);
    };
    const t = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
