import { MeshError } from "../protocol/errors.ts";
import { parseConsulAddresses, type ConsulAddress } from "./address.ts";
import { ConsulHttp, type ConsulTls, type HttpRequest, type HttpResponse } from "./http.ts";
import { blockingRetry, casRetry, ConsulRequests, timedKv, type ConsulRequest, type Retry } from "./requests.ts";
import { agentServiceList, checkBody, consulIndex, kvPath, type AgentService, type ServiceCheck } from "./wire.ts";
import { settleTxn, txnBody, txnResult, type KvTxnOp, type KvTxnResult } from "./txn.ts";

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
export interface ServiceEntry extends AgentService {
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
  check?: ServiceCheck;
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
  private readonly requests: ConsulRequests;
  private readonly retryMs: number;
  private readonly maxStale: string;

  constructor(options: ConsulClientOptions) {
    this.http = new ConsulHttp(parseConsulAddresses(options.address), {
      ...(options.token ? { token: options.token } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
    });
    this.requests = new ConsulRequests(this.http);
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
      { retryMs: 0, ...options },
    );
    return typeof res.body === "string" ? res.body : "";
  }

  async registerService(reg: ServiceRegistration, options: CallOptions = {}): Promise<void> {
    await this.call(
      `register service "${reg.name}" (id ${reg.id})`,
      {
        method: "PUT",
        path: "/agent/service/register",
        body: {
          ID: reg.id,
          Name: reg.name,
          Address: reg.address,
          Port: reg.port,
          Tags: reg.tags,
          Meta: reg.meta,
          Check: checkBody(reg.check),
        },
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
  async agentServices(filter?: string, options: CallOptions = {}): Promise<AgentService[]> {
    const res = await this.call(
      "list agent services",
      { method: "GET", path: "/agent/services", query: { filter } },
      { kind: "idempotent" },
      options,
    );
    return agentServiceList(res.body);
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
      blockingRetry(options.index),
      blockingCall(options),
    );
    return { value: (Array.isArray(res.body) ? res.body : []).map(toServiceEntry), index: consulIndex(res) };
  }

  /** All services in the catalog with their tags (answered by any server, like healthService). */
  async catalogServices(options: BlockingOptions = {}): Promise<Blocking<Record<string, string[]>>> {
    const res = await this.call(
      "list catalog services",
      { method: "GET", path: "/catalog/services", query: this.discoveryQuery(options) },
      blockingRetry(options.index),
      blockingCall(options),
    );
    return { value: (res.body ?? {}) as Record<string, string[]>, index: consulIndex(res) };
  }

  async kvGet(key: string, options: CallOptions & { consistent?: boolean } = {}): Promise<KvEntry | undefined> {
    const res = await timedKv("get", key, () =>
      this.call(
        `read key "${key}"`,
        { method: "GET", path: kvPath(key), query: options.consistent ? { consistent: true } : {} },
        { kind: "idempotent" },
        options,
        [404],
      ),
    );
    return kvEntry(res);
  }

  /**
   * Reads a key as a blocking query (pass the last answer's index to wait for a change, up to
   * `wait`): the way to watch one small document (the gateway's tool policy). A missing key is
   * `value: undefined` with the index to wait on.
   */
  async kvGetBlocking(key: string, options: BlockingOptions = {}): Promise<Blocking<KvEntry | undefined>> {
    const res = await timedKv("get", key, () =>
      this.call(
        `watch key "${key}"`,
        // Stale like discovery: a hot-reloaded document may lag the leader by max_stale, never stop.
        { method: "GET", path: kvPath(key), query: this.discoveryQuery(options) },
        blockingRetry(options.index),
        blockingCall(options),
        [404],
      ),
    );
    return { value: kvEntry(res), index: consulIndex(res) };
  }

  /**
   * Writes a key. With `cas`, the write happens only if the key's ModifyIndex is still
   * `cas` (0: only if the key does not exist); returns false when it lost that race.
   * Through an election it is tried again; when Consul may have applied a check-and-set
   * that failed to answer, the key is read back before anything is sent again.
   */
  async kvSet(key: string, value: string, options: CallOptions & { cas?: number } = {}): Promise<boolean> {
    const cas = options.cas;
    const res = await timedKv("set", key, () =>
      this.call(
        `write key "${key}"`,
        { method: "PUT", path: kvPath(key), query: cas === undefined ? {} : { cas: String(cas) }, body: value },
        casRetry(cas, () => this.kvGet(key, { ...options, consistent: true }), {
          applied: (now) => now !== undefined && now.value === value,
          lost: (res) => res.body !== true,
        }),
        options,
      ),
    );
    return res.body === true;
  }

  /** Keys under a prefix (none: an empty list; Consul answers 404). */
  async kvKeys(prefix: string, options: CallOptions = {}): Promise<string[]> {
    const res = await timedKv("keys", prefix, () =>
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
    const res = await timedKv("delete", key, () =>
      this.call(
        `delete key "${key}"`,
        {
          method: "DELETE",
          path: kvPath(key),
          query: { ...(options.recurse ? { recurse: true } : {}), ...(cas === undefined ? {} : { cas: String(cas) }) },
        },
        casRetry(cas, () => this.kvGet(key, { ...options, consistent: true }), {
          applied: (now) => now === undefined,
          lost: (res) => res.body === false,
        }),
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
    const read = (key: string) => this.kvGet(key, { ...options, consistent: true });
    const res = await timedKv("txn", ops[0]?.key ?? "", () =>
      this.call(
        `apply a transaction of ${ops.length} key operations`,
        { method: "PUT", path: "/txn", body: txnBody(ops) },
        { kind: "conditional", settle: () => settleTxn(ops, read), lost: (res) => res.status === 409 },
        options,
        [409],
      ),
    );
    return txnResult(res);
  }

  /** Releases the HTTP connections so the process can exit. */
  destroy(): void {
    this.http.destroy();
  }

  private discoveryQuery(options: BlockingOptions): HttpRequest["query"] {
    return { stale: true, max_stale: this.maxStale, ...blockingParams(options) };
  }

  /** Sends a request (requests.ts), the caller's options completed with this client's defaults. */
  private call(
    what: string,
    req: ConsulRequest,
    retry: Retry,
    options: CallOptions,
    expected: readonly number[] = [],
  ): Promise<HttpResponse> {
    const limits = {
      timeoutMs: options.timeoutMs ?? DEFAULT_CONSUL_TIMEOUT_MS,
      retryMs: options.retryMs ?? this.retryMs,
      ...(options.signal ? { signal: options.signal } : {}),
    };
    return this.requests.send(what, req, retry, limits, expected);
  }
}

/** The entry a KV read answered (its value decoded), or undefined for a missing key. */
function kvEntry(res: HttpResponse): KvEntry | undefined {
  const item =
    res.status !== 404 && Array.isArray(res.body) ? (res.body[0] as { Value?: string | null; ModifyIndex: number } | undefined) : undefined;
  return item ? { value: item.Value ? Buffer.from(item.Value, "base64").toString("utf8") : "", modifyIndex: item.ModifyIndex } : undefined;
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
