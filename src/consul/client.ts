import { MeshError } from "../protocol/errors.ts";
import { parseConsulAddresses, type ConsulAddress } from "./address.ts";
import { ConsulHttp, TransportFailure, type ConsulTls, type HttpRequest, type HttpResponse } from "./http.ts";
import { consulKvSeconds } from "../telemetry/metrics.ts";
import { inChildSpan } from "../telemetry/tracing.ts";

export type { ConsulTls } from "./http.ts";

/** Every network call takes these (STYLE.md rule 8). */
export interface CallOptions {
  signal?: AbortSignal;
  /** Longest wait for one answer from Consul. @default DEFAULT_CONSUL_TIMEOUT_MS */
  timeoutMs?: number;
  /**
   * How long a request may be tried again while Consul cannot serve it (no leader during an
   * election, a server restarting, the agent briefly unreachable): 0 tries once.
   * @default the client's retryMs (DEFAULT_CONSUL_RETRY_MS)
   */
  retryMs?: number;
}

/** Timeout of a non-blocking Consul request. @default 5000 */
export const DEFAULT_CONSUL_TIMEOUT_MS = 5_000;
/**
 * How long a request that needs Consul's leader (KV reads and writes, transactions) is tried
 * again while there is none: longer than an election of a default Consul cluster (a few
 * seconds; raft_multiplier 5) plus Consul's own rpc_hold_timeout (7 s). Env MESH_CONSUL_RETRY_MS.
 * @default 20000
 */
export const DEFAULT_CONSUL_RETRY_MS = 20_000;
/**
 * Discovery reads (health, catalog) are answered by any Consul server (`?stale`), so they keep
 * working through an election; an answer from a server that has not heard from the leader for
 * longer than this is asked again of the leader (`max_stale`). Env MESH_CONSUL_MAX_STALE.
 * @default "30s"
 */
export const DEFAULT_MAX_STALE = "30s";
/** Pause between two tries of one request: doubles from the first to the last, with jitter. @default [100, 2000] */
export const CONSUL_RETRY_BACKOFF_MS: readonly [number, number] = [100, 2_000];

export interface ConsulClientOptions {
  /**
   * As CONSUL_HTTP_ADDR: `host:port` or `http(s)://host:port`; several comma-separated. The
   * first is the one used: the host's own Consul client agent, where services register and
   * callers read. The others are tried only when it cannot be reached.
   */
  address: string;
  /** ACL token, sent as X-Consul-Token (as CONSUL_HTTP_TOKEN). */
  token?: string;
  /** TLS of an https address (CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY, CONSUL_HTTP_SSL_VERIFY). */
  tls?: ConsulTls;
  /** @default DEFAULT_CONSUL_RETRY_MS */
  retryMs?: number;
  /** @default DEFAULT_MAX_STALE */
  maxStale?: string;
}

/** A service instance as the health API reports it. */
export interface ServiceEntry {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** Worst status of the node's and the service's checks. */
  status: "passing" | "warning" | "critical";
  /** The Consul node (host agent) the instance is registered with. */
  node?: string;
}

export interface ServiceRegistration {
  id: string;
  name: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  check?: {
    name: string;
    http?: string;
    /** host:port for a TCP connect check. */
    tcp?: string;
    ttl?: string;
    /** Initial status (Consul starts checks critical). */
    status?: "passing" | "warning" | "critical";
    interval?: string;
    timeout?: string;
    deregisterCriticalServiceAfter: string;
  };
}

export interface Blocking<T> {
  value: T;
  /** X-Consul-Index of the answer, for the next blocking query. */
  index: string;
}

export interface BlockingOptions extends CallOptions {
  /** Last X-Consul-Index seen; "0" or undefined for an immediate answer. */
  index?: string;
  /** Consul's max wait, e.g. "30s". @default "30s" */
  wait?: string;
  /** Ask another datacenter (Consul's `?dc=`, through the local agent and the WAN); unset: the local one. */
  dc?: string;
}

export interface KvEntry {
  value: string;
  modifyIndex: number;
}

/** One operation of a KV transaction (Consul's verbs, the few toolmesh uses). */
export type KvTxnOp =
  | { verb: "cas"; key: string; value: string; index: number }
  | { verb: "set"; key: string; value: string }
  | { verb: "check-index"; key: string; index: number }
  | { verb: "delete-cas"; key: string; index: number };

export type KvTxnResult =
  { ok: true; results: { key: string; modifyIndex: number }[] } | { ok: false; failed: { op: number; what: string }[] };

/**
 * How a request may be tried again. "idempotent": sending it twice does what sending it once
 * does (reads, registrations, plain sets and deletes). "conditional": a check-and-set; tried
 * again only when Consul cannot have applied it, otherwise `settle` reads back what happened.
 */
type Retry =
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
type Settled = { applied: true; value: unknown } | { applied: false } | undefined;

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
 * Consul's HTTP API, the few calls toolmesh uses, used as a cluster is meant to be used:
 * discovery reads answered by any server (`?stale` with a bounded `max_stale`), requests that
 * need the leader tried again with backoff while there is none (a check-and-set only when it
 * cannot have applied, else read back), several addresses with failover, TLS and ACL tokens by
 * Consul's own variables (see consulSettings). Every failure is a MeshError whose message names
 * the Consul address and what to do.
 */
export class ConsulClient {
  private readonly http: ConsulHttp;
  private readonly retryMs: number;
  private readonly maxStale: string;

  constructor(options: ConsulClientOptions) {
    this.http = new ConsulHttp(parseConsulAddresses(options.address), {
      ...(options.token ? { token: options.token } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
    });
    this.retryMs = options.retryMs ?? DEFAULT_CONSUL_RETRY_MS;
    this.maxStale = options.maxStale ?? DEFAULT_MAX_STALE;
    parseDurationMs(this.maxStale);
  }

  /** The address requests go to now (the first given, unless it could not be reached). */
  get address(): ConsulAddress {
    return this.http.active;
  }

  /** Every address given, in order. */
  get addresses(): readonly ConsulAddress[] {
    return this.http.addresses;
  }

  /** Address of the raft leader; empty while there is none. Asked once (a probe): no retries unless `retryMs` says. */
  async leader(options: CallOptions = {}): Promise<string> {
    const res = await this.call(
      "read the raft leader",
      { method: "GET", path: "/status/leader" },
      { kind: "idempotent" },
      {
        retryMs: 0,
        ...options,
      },
    );
    return typeof res.body === "string" ? res.body : "";
  }

  async registerService(reg: ServiceRegistration, options: CallOptions = {}): Promise<void> {
    const c = reg.check;
    const check = c
      ? {
          Name: c.name,
          ...(c.http ? { HTTP: c.http, Interval: c.interval, Timeout: c.timeout } : {}),
          ...(c.tcp ? { TCP: c.tcp, Interval: c.interval, Timeout: c.timeout } : {}),
          ...(c.ttl ? { TTL: c.ttl } : {}),
          ...(c.status ? { Status: c.status } : {}),
          DeregisterCriticalServiceAfter: c.deregisterCriticalServiceAfter,
        }
      : undefined;
    await this.call(
      `register service "${reg.name}" (id ${reg.id})`,
      {
        method: "PUT",
        path: "/agent/service/register",
        body: { ID: reg.id, Name: reg.name, Address: reg.address, Port: reg.port, Tags: reg.tags, Meta: reg.meta, Check: check },
      },
      { kind: "idempotent" },
      options,
    );
  }

  async deregisterService(id: string, options: CallOptions = {}): Promise<void> {
    await this.call(
      `deregister service id ${id}`,
      { method: "PUT", path: `/agent/service/deregister/${encodeURIComponent(id)}` },
      { kind: "idempotent" },
      options,
    );
  }

  /** Services registered with the local Consul agent, optionally filtered (Consul filter syntax). */
  async agentServices(
    filter?: string,
    options: CallOptions = {},
  ): Promise<{ id: string; service: string; address: string; port: number; tags: string[]; meta: Record<string, string> }[]> {
    const res = await this.call(
      "list agent services",
      { method: "GET", path: "/agent/services", query: { filter } },
      { kind: "idempotent" },
      options,
    );
    return Object.values(
      (res.body ?? {}) as Record<
        string,
        { ID: string; Service: string; Address: string; Port: number; Tags?: string[]; Meta?: Record<string, string> }
      >,
    ).map((x) => ({
      id: x.ID,
      service: x.Service,
      address: x.Address,
      port: x.Port,
      tags: x.Tags ?? [],
      meta: x.Meta ?? {},
    }));
  }

  /** Whether the local Consul agent currently knows a service with this id. */
  async hasAgentService(id: string, options: CallOptions = {}): Promise<boolean> {
    const res = await this.call(
      `look up service id ${id}`,
      { method: "GET", path: "/agent/services", query: { filter: `ID == ${JSON.stringify(id)}` } },
      { kind: "idempotent" },
      options,
    );
    return typeof res.body === "object" && res.body !== null && Object.keys(res.body).length > 0;
  }

  /**
   * Instances of a service with their aggregated health (`passing: true` keeps only healthy
   * ones). Answered by any Consul server, at most max_stale behind the leader: it works during
   * an election.
   */
  async healthService(name: string, options: BlockingOptions & { passing?: boolean } = {}): Promise<Blocking<ServiceEntry[]>> {
    const res = await this.call(
      `read health of service "${name}"`,
      {
        method: "GET",
        path: `/health/service/${encodeURIComponent(name)}`,
        query: { ...(options.passing ? { passing: true } : {}), ...this.discoveryQuery(options) },
      },
      blockingRetry(options),
      blockingCall(options),
    );
    return { value: (Array.isArray(res.body) ? res.body : []).map(toServiceEntry), index: consulIndex(res) };
  }

  /** All services in the catalog with their tags (answered by any server, like healthService). */
  async catalogServices(options: BlockingOptions = {}): Promise<Blocking<Record<string, string[]>>> {
    const res = await this.call(
      "list catalog services",
      { method: "GET", path: "/catalog/services", query: this.discoveryQuery(options) },
      blockingRetry(options),
      blockingCall(options),
    );
    return { value: (res.body ?? {}) as Record<string, string[]>, index: consulIndex(res) };
  }

  async kvGet(key: string, options: CallOptions & { consistent?: boolean } = {}): Promise<KvEntry | undefined> {
    const res = await this.kv("get", key, () =>
      this.call(
        `read key "${key}"`,
        { method: "GET", path: kvPath(key), query: options.consistent ? { consistent: true } : {} },
        { kind: "idempotent" },
        options,
        [404],
      ),
    );
    if (res.status === 404 || !Array.isArray(res.body) || !res.body[0]) return undefined;
    const item = res.body[0] as { Value?: string | null; ModifyIndex: number };
    return { value: item.Value ? Buffer.from(item.Value, "base64").toString("utf8") : "", modifyIndex: item.ModifyIndex };
  }

  /**
   * Reads a key as a blocking query (pass the last answer's index to wait for a change, up to
   * `wait`): the way to watch one small document (the gateway's tool policy). A missing key is
   * `value: undefined` with the index to wait on.
   */
  async kvGetBlocking(key: string, options: BlockingOptions = {}): Promise<Blocking<KvEntry | undefined>> {
    const res = await this.kv("get", key, () =>
      this.call(
        `watch key "${key}"`,
        // Stale like discovery: a hot-reloaded document may lag the leader by max_stale, never stop.
        { method: "GET", path: kvPath(key), query: this.discoveryQuery(options) },
        blockingRetry(options),
        blockingCall(options),
        [404],
      ),
    );
    const item =
      res.status !== 404 && Array.isArray(res.body)
        ? (res.body[0] as { Value?: string | null; ModifyIndex: number } | undefined)
        : undefined;
    const value = item
      ? { value: item.Value ? Buffer.from(item.Value, "base64").toString("utf8") : "", modifyIndex: item.ModifyIndex }
      : undefined;
    return { value, index: consulIndex(res) };
  }

  /**
   * Writes a key. With `cas`, the write happens only if the key's ModifyIndex is still
   * `cas` (0: only if the key does not exist); returns false when it lost that race.
   * Through an election it is tried again; when Consul may have applied a check-and-set
   * that failed to answer, the key is read back before anything is sent again.
   */
  async kvSet(key: string, value: string, options: CallOptions & { cas?: number } = {}): Promise<boolean> {
    const cas = options.cas;
    const retry: Retry =
      cas === undefined
        ? { kind: "idempotent" }
        : {
            kind: "conditional",
            settle: async () => {
              const now = await this.kvGet(key, { ...options, consistent: true });
              if ((now?.modifyIndex ?? 0) === cas) return { applied: false };
              if (now && now.value === value) return { applied: true, value: true };
              return undefined;
            },
            lost: (res) => res.body !== true,
          };
    const res = await this.kv("set", key, () =>
      this.call(
        `write key "${key}"`,
        { method: "PUT", path: kvPath(key), query: cas === undefined ? {} : { cas: String(cas) }, body: value },
        retry,
        options,
      ),
    );
    return res.body === true;
  }

  /** Keys under a prefix (none: an empty list; Consul answers 404). */
  async kvKeys(prefix: string, options: CallOptions = {}): Promise<string[]> {
    const res = await this.kv("keys", prefix, () =>
      this.call(
        `list keys under "${prefix}"`,
        { method: "GET", path: kvPath(prefix), query: { keys: true } },
        { kind: "idempotent" },
        options,
        [404],
      ),
    );
    return res.status === 200 && Array.isArray(res.body) ? (res.body as string[]) : [];
  }

  /** Deletes a key (or a prefix); with `cas`, only if unchanged since that index (false otherwise). */
  async kvDelete(key: string, options: CallOptions & { recurse?: boolean; cas?: number } = {}): Promise<boolean> {
    const cas = options.cas;
    const retry: Retry =
      cas === undefined
        ? { kind: "idempotent" }
        : {
            kind: "conditional",
            settle: async () => {
              const now = await this.kvGet(key, { ...options, consistent: true });
              if (!now) return { applied: true, value: true };
              return now.modifyIndex === cas ? { applied: false } : undefined;
            },
            lost: (res) => res.body === false,
          };
    const res = await this.kv("delete", key, () =>
      this.call(
        `delete key "${key}"`,
        {
          method: "DELETE",
          path: kvPath(key),
          query: { ...(options.recurse ? { recurse: true } : {}), ...(cas === undefined ? {} : { cas: String(cas) }) },
        },
        retry,
        options,
      ),
    );
    return res.body !== false;
  }

  /**
   * Applies KV operations atomically (`PUT /v1/txn`): all of them or none. `cas` writes only
   * if the key's ModifyIndex is still `index` (0: only if absent); `check-index` only checks.
   * Returns the new ModifyIndex of each written key, or, when a check failed, which
   * operations failed (their positions): nothing was written then. Through an election it
   * is tried again while Consul cannot have applied it; when it may have, the first written
   * key is read back (all or none applied) before anything is sent again.
   */
  async kvTxn(ops: readonly KvTxnOp[], options: CallOptions = {}): Promise<KvTxnResult> {
    const operations = ops.map((op) => ({
      KV: {
        Verb: op.verb,
        Key: op.key,
        ...("value" in op ? { Value: Buffer.from(op.value, "utf8").toString("base64") } : {}),
        ...("index" in op ? { Index: op.index } : {}),
      },
    }));
    const res = await this.kv("txn", ops[0]?.key ?? "", () =>
      this.call(
        `apply a transaction of ${ops.length} key operations`,
        { method: "PUT", path: "/txn", body: operations },
        { kind: "conditional", settle: () => this.settleTxn(ops, options), lost: (res) => res.status === 409 },
        options,
        [409],
      ),
    );
    if (res.status === 409) {
      const errors = ((res.body as { Errors?: { OpIndex?: number; What?: string }[] } | undefined)?.Errors ?? []).map((x) => ({
        op: x.OpIndex ?? -1,
        what: x.What ?? "",
      }));
      return { ok: false, failed: errors };
    }
    if ((res.body as { settled?: KvTxnResult } | undefined)?.settled) return (res.body as { settled: KvTxnResult }).settled;
    const results = ((res.body as { Results?: { KV?: { Key: string; ModifyIndex: number } }[] } | undefined)?.Results ?? []).map((r) => ({
      key: r.KV?.Key ?? "",
      modifyIndex: r.KV?.ModifyIndex ?? 0,
    }));
    return { ok: true, results };
  }

  /** Whether a transaction that got no answer applied: a transaction is all or nothing, so its first write tells. */
  private async settleTxn(ops: readonly KvTxnOp[], options: CallOptions): Promise<Settled> {
    const first = ops.find((op) => op.verb !== "check-index");
    if (!first) return { applied: false }; // only checks: nothing to apply twice
    const now = await this.kvGet(first.key, { ...options, consistent: true });
    if (first.verb === "delete-cas") {
      if (!now) return { applied: true, value: { settled: { ok: true, results: [] } } };
      return now.modifyIndex === first.index ? { applied: false } : undefined;
    }
    if (first.verb === "cas" && (now?.modifyIndex ?? 0) === first.index) return { applied: false };
    if (!now || now.value !== first.value) return undefined;
    const results: { key: string; modifyIndex: number }[] = [];
    for (const op of ops) {
      if (op.verb !== "cas" && op.verb !== "set") continue;
      const entry = op.key === first.key ? now : await this.kvGet(op.key, { ...options, consistent: true });
      results.push({ key: op.key, modifyIndex: entry?.modifyIndex ?? 0 });
    }
    return { applied: true, value: { settled: { ok: true, results } } };
  }

  /** One KV request: timed (toolmesh_consul_kv_duration_seconds) and, inside a traced call, a child span. */
  private async kv<T>(op: "get" | "set" | "keys" | "delete" | "txn", key: string, fn: () => Promise<T>): Promise<T> {
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

  /** Releases the HTTP connections so the process can exit. */
  destroy(): void {
    this.http.destroy();
  }

  private discoveryQuery(options: BlockingOptions): HttpRequest["query"] {
    return { stale: true, max_stale: this.maxStale, ...blockingParams(options) };
  }

  /**
   * Sends a request, and while Consul cannot serve it (and `retry` allows) sends it again
   * with backoff until the retry budget is spent. Statuses in `expected` are answers, not failures.
   * A conditional write that may have applied is never sent again blind: it is read back first,
   * and it is sent again only when it certainly did not apply. A write sent again after such a
   * doubt that then loses its check-and-set is read back once more (the first one may have been
   * applied late, after the read-back): if it was ours, it is reported as applied.
   */
  private async call(
    what: string,
    req: Omit<HttpRequest, "timeoutMs" | "signal">,
    retry: Retry,
    options: CallOptions,
    expected: readonly number[] = [],
  ): Promise<HttpResponse> {
    options.signal?.throwIfAborted();
    const budget = retry.kind === "once" ? 0 : (options.retryMs ?? this.retryMs);
    const giveUpAt = Date.now() + budget;
    let doubt = false;
    for (let attempt = 1; ; attempt++) {
      const a = await this.attempt(what, req, options, expected);
      if (a.res) {
        if (doubt && retry.kind === "conditional" && retry.lost(a.res)) {
          const settled = await retry.settle().catch(() => undefined);
          if (settled?.applied) return { ...placeholder(this.address), body: settled.value };
        }
        return a.res;
      }
      const error = a.error!;
      if (retry.kind === "conditional" && !a.notApplied) {
        doubt = true;
        const settled = await this.settleWithin(retry, giveUpAt, options.signal);
        if (settled?.applied) return { ...placeholder(this.address), body: settled.value };
        if (!settled) {
          throw new MeshError(
            "CONSUL_WRITE_UNKNOWN",
            `Consul at ${this.address.url} did not answer whether it did ${what} (${error.message}), and reading it back could not tell. It was not sent again. Check the state before repeating it.`,
            { cause: error, retryable: false, details: { consul: this.address.url } },
          );
        }
        // It certainly did not apply: sending it again is safe.
      }
      if (!error.retryable || Date.now() >= giveUpAt) throw error;
      await pause(attempt, options.signal);
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

  private async attempt(
    what: string,
    req: Omit<HttpRequest, "timeoutMs" | "signal">,
    options: CallOptions,
    expected: readonly number[],
  ): Promise<Attempt> {
    let res: HttpResponse;
    try {
      res = await this.http.send({
        ...req,
        timeoutMs: options.timeoutMs ?? DEFAULT_CONSUL_TIMEOUT_MS,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (e) {
      if (!(e instanceof TransportFailure)) throw e; // the caller's abort
      return { error: this.unreachable(what, e), notApplied: e.kind === "not-sent" };
    }
    if ((res.status >= 200 && res.status < 300) || expected.includes(res.status)) return { res };
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

  private unreachable(what: string, e: TransportFailure): MeshError {
    const all = this.http.addresses.length > 1 ? ` (and ${this.http.addresses.length - 1} other address(es) given)` : "";
    return new MeshError(
      "CONSUL_UNREACHABLE",
      `Consul at ${e.address.url}${all} is unreachable (${e.code}) while trying to ${what}. Start one with "mesh up" or set CONSUL_HTTP_ADDR.`,
      { cause: e, retryable: true, details: { consul: e.address.url } },
    );
  }
}

function placeholder(address: ConsulAddress): HttpResponse {
  return { status: 200, headers: {}, body: undefined, text: "", address };
}

/** A blocking query is not retried here: its watcher retries with its own backoff and keeps its last view meanwhile. */
function blockingRetry(options: BlockingOptions): Retry {
  return !options.index || options.index === "0" ? { kind: "idempotent" } : { kind: "once" };
}

function kvPath(key: string): string {
  return `/kv/${key.split("/").map(encodeURIComponent).join("/")}`;
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

function blockingParams(options: BlockingOptions): Record<string, string> {
  const dc: Record<string, string> = options.dc ? { dc: options.dc } : {};
  if (!options.index || options.index === "0") return dc;
  return { ...dc, index: options.index, wait: options.wait ?? "30s" };
}

/** A blocking query may legitimately take `wait` (+ Consul's jitter of wait/16) to answer. */
function blockingCall(options: BlockingOptions): CallOptions {
  if (!options.index || options.index === "0") return options;
  const waitMs = parseDurationMs(options.wait ?? "30s");
  return { ...options, timeoutMs: Math.ceil(waitMs * 1.1) + 2_000 };
}

export function parseDurationMs(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d.trim());
  if (!m) throw new MeshError("CONFIG_INVALID", `"${d}" is not a duration; expected e.g. 500ms, 1s, 2m, 1h.`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

function consulIndex(res: HttpResponse): string {
  return res.headers["x-consul-index"] ?? "0";
}

type RawHealth = {
  Node?: { Node?: string; Address?: string };
  Service: { ID: string; Service: string; Address?: string; Port: number; Tags?: string[] | null; Meta?: Record<string, string> | null };
  Checks?: { Status: "passing" | "warning" | "critical" }[];
};

function toServiceEntry(raw: unknown): ServiceEntry {
  const r = raw as RawHealth;
  const statuses = (r.Checks ?? []).map((c) => c.Status);
  const status = statuses.includes("critical") ? "critical" : statuses.includes("warning") ? "warning" : "passing";
  return {
    id: r.Service.ID,
    service: r.Service.Service,
    address: r.Service.Address || r.Node?.Address || "127.0.0.1",
    port: r.Service.Port,
    tags: r.Service.Tags ?? [],
    meta: r.Service.Meta ?? {},
    status,
    ...(r.Node?.Node ? { node: r.Node.Node } : {}),
  };
}
