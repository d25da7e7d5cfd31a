import { EventEmitter } from "node:events";
import Consul from "consul";
import { MeshError, describeError } from "../protocol/errors.ts";
import { parseConsulAddress, type ConsulAddress } from "./address.ts";
import { consulKvSeconds } from "../telemetry/metrics.ts";
import { inChildSpan } from "../telemetry/tracing.ts";

/** Every network call takes these (STYLE.md rule 8). */
export interface CallOptions {
  signal?: AbortSignal;
  /** @default DEFAULT_CONSUL_TIMEOUT_MS */
  timeoutMs?: number;
}

/** Timeout of a non-blocking Consul request. @default 5000 */
export const DEFAULT_CONSUL_TIMEOUT_MS = 5_000;

export interface ConsulClientOptions {
  /** As CONSUL_HTTP_ADDR: `host:port` or `http(s)://host:port`. */
  address: string;
  /** ACL token, sent as X-Consul-Token (as CONSUL_HTTP_TOKEN). */
  token?: string;
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

type Res = { statusCode: number; headers: Record<string, string | string[] | undefined>; body: unknown };
type Call = (opts: Record<string, unknown>) => Promise<unknown>;
// The client's option types omit ctx/index/wait/timeout; this is the one cast for all calls.
const loose = (fn: (opts: never) => Promise<unknown>): Call => fn as unknown as Call;

/**
 * A typed wrapper around the few calls of the npm `consul` client toolmesh uses. It keeps
 * the casts in one place (the client's option types omit `index`, `wait`, `ctx`), bridges
 * AbortSignal to the client's cancel context, and turns every failure into a MeshError
 * whose message names the Consul address and what to do.
 */
export class ConsulClient {
  readonly address: ConsulAddress;
  private readonly consul: Consul;

  constructor(options: ConsulClientOptions) {
    this.address = parseConsulAddress(options.address);
    this.consul = new Consul({
      host: this.address.host,
      port: this.address.port,
      secure: this.address.secure,
      defaults: options.token ? { token: options.token } : {},
    });
  }

  /** Address of the raft leader; empty while there is none. */
  async leader(options: CallOptions = {}): Promise<string> {
    const [, body] = await this.call(
      "read the raft leader",
      loose((o) => this.consul.status.leader(o)),
      {},
      options,
    );
    return typeof body === "string" ? body : "";
  }

  async registerService(reg: ServiceRegistration, options: CallOptions = {}): Promise<void> {
    const check = reg.check
      ? {
          name: reg.check.name,
          ...(reg.check.http ? { http: reg.check.http, interval: reg.check.interval, timeout: reg.check.timeout } : {}),
          ...(reg.check.tcp ? { tcp: reg.check.tcp, interval: reg.check.interval, timeout: reg.check.timeout } : {}),
          ...(reg.check.ttl ? { ttl: reg.check.ttl } : {}),
          ...(reg.check.status ? { status: reg.check.status } : {}),
          deregistercriticalserviceafter: reg.check.deregisterCriticalServiceAfter,
        }
      : undefined;
    await this.call(
      `register service "${reg.name}" (id ${reg.id})`,
      loose((o) => this.consul.agent.service.register(o)),
      { id: reg.id, name: reg.name, address: reg.address, port: reg.port, tags: reg.tags, meta: reg.meta, check },
      options,
    );
  }

  async deregisterService(id: string, options: CallOptions = {}): Promise<void> {
    await this.call(
      `deregister service id ${id}`,
      loose((o) => this.consul.agent.service.deregister(o)),
      { id },
      options,
    );
  }

  /** Services registered with the local Consul agent, optionally filtered (Consul filter syntax). */
  async agentServices(
    filter?: string,
    options: CallOptions = {},
  ): Promise<{ id: string; service: string; address: string; port: number; tags: string[]; meta: Record<string, string> }[]> {
    const [, body] = await this.call(
      "list agent services",
      loose((o) => this.consul.agent.service.list(o)),
      filter ? { filter } : {},
      options,
    );
    return Object.values(
      (body ?? {}) as Record<
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
    const [, body] = await this.call(
      `look up service id ${id}`,
      loose((o) => this.consul.agent.service.list(o)),
      { filter: `ID == ${JSON.stringify(id)}` },
      options,
    );
    return typeof body === "object" && body !== null && Object.keys(body).length > 0;
  }

  /** Instances of a service with their aggregated health (`passing: true` keeps only healthy ones). */
  async healthService(name: string, options: BlockingOptions & { passing?: boolean } = {}): Promise<Blocking<ServiceEntry[]>> {
    const [res, body] = await this.call(
      `read health of service "${name}"`,
      loose((o) => this.consul.health.service(o)),
      { service: name, passing: options.passing ?? false, ...blockingParams(options) },
      blockingCall(options),
    );
    return { value: (Array.isArray(body) ? body : []).map(toServiceEntry), index: consulIndex(res) };
  }

  /** All services in the catalog with their tags. */
  async catalogServices(options: BlockingOptions = {}): Promise<Blocking<Record<string, string[]>>> {
    const [res, body] = await this.call(
      "list catalog services",
      loose((o) => this.consul.catalog.service.list(o)),
      blockingParams(options),
      blockingCall(options),
    );
    return { value: (body ?? {}) as Record<string, string[]>, index: consulIndex(res) };
  }

  async kvGet(key: string, options: CallOptions = {}): Promise<KvEntry | undefined> {
    const [, body] = await this.kv("get", key, () =>
      this.call(
        `read key "${key}"`,
        loose((o) => this.consul.kv.get(o)),
        { key },
        options,
      ),
    );
    if (!body || typeof body !== "object") return undefined;
    const item = body as { Value?: string | null; ModifyIndex: number };
    return { value: item.Value ?? "", modifyIndex: item.ModifyIndex };
  }

  /**
   * Writes a key. With `cas`, the write happens only if the key's ModifyIndex is still
   * `cas` (0: only if the key does not exist); returns false when it lost that race.
   */
  async kvSet(key: string, value: string, options: CallOptions & { cas?: number } = {}): Promise<boolean> {
    const [, body] = await this.kv("set", key, () =>
      this.call(
        `write key "${key}"`,
        loose((o) => this.consul.kv.set(o)),
        { key, value, ...(options.cas === undefined ? {} : { cas: options.cas }) },
        options,
      ),
    );
    return body === true;
  }

  /** Keys under a prefix (none: an empty list; Consul answers 404). */
  async kvKeys(prefix: string, options: CallOptions = {}): Promise<string[]> {
    let body: unknown;
    try {
      [, body] = await this.kv("keys", prefix, () =>
        this.call(
          `list keys under "${prefix}"`,
          loose((o) => this.consul.kv.keys(o)),
          { key: prefix },
          options,
        ),
      );
    } catch (e) {
      if (e instanceof MeshError && e.details["status"] === 404) return [];
      throw e;
    }
    return Array.isArray(body) ? (body as string[]) : [];
  }

  /** Deletes a key (or a prefix); with `cas`, only if unchanged since that index (false otherwise). */
  async kvDelete(key: string, options: CallOptions & { recurse?: boolean; cas?: number } = {}): Promise<boolean> {
    const [, body] = await this.kv("delete", key, () =>
      this.call(
        `delete key "${key}"`,
        loose((o) => this.consul.kv.del(o)),
        { key, recurse: options.recurse ?? false, ...(options.cas === undefined ? {} : { cas: options.cas }) },
        options,
      ),
    );
    return body !== false;
  }

  /**
   * Applies KV operations atomically (`PUT /v1/txn`): all of them or none. `cas` writes only
   * if the key's ModifyIndex is still `index` (0: only if absent); `check-index` only checks.
   * Returns the new ModifyIndex of each written key, or, when a check failed, which
   * operations failed (their positions): nothing was written then.
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
    let body: unknown;
    try {
      [, body] = await this.kv("txn", ops[0]?.key ?? "", () =>
        this.call(
          `apply a transaction of ${ops.length} key operations`,
          loose((o: { operations: unknown[] }) => this.consul.transaction.create(o.operations as never, o as never)),
          { operations },
          options,
        ),
      );
    } catch (e) {
      // 409: a check failed and nothing was written; Consul says which operations.
      if (e instanceof MeshError && e.details["status"] === 409) {
        const raw = (e.cause as { response?: Res } | undefined)?.response?.body;
        const parsed = typeof raw === "string" || Buffer.isBuffer(raw) ? safeJson(raw.toString()) : raw;
        const errors = ((parsed as { Errors?: { OpIndex?: number; What?: string }[] } | undefined)?.Errors ?? []).map((x) => ({
          op: x.OpIndex ?? -1,
          what: x.What ?? "",
        }));
        return { ok: false, failed: errors };
      }
      throw e;
    }
    const results = ((body as { Results?: { KV?: { Key: string; ModifyIndex: number } }[] } | undefined)?.Results ?? []).map((r) => ({
      key: r.KV?.Key ?? "",
      modifyIndex: r.KV?.ModifyIndex ?? 0,
    }));
    return { ok: true, results };
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

  /** Releases the HTTP agent's sockets so the process can exit. */
  destroy(): void {
    this.consul.destroy();
  }

  private async call(what: string, fn: Call, params: Record<string, unknown>, options: CallOptions): Promise<[Res | undefined, unknown]> {
    options.signal?.throwIfAborted();
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const onAbort = () => ctx.emit("cancel");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const out = (await fn({ ...params, ctx, timeout: options.timeoutMs ?? DEFAULT_CONSUL_TIMEOUT_MS })) as [Res, unknown];
      return [out[0], out[1]];
    } catch (e) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw this.translate(what, e);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  private translate(what: string, e: unknown): MeshError {
    const err = e as { code?: string; message?: string; response?: Res; isPapi?: boolean };
    const url = this.address.url;
    const status = err.response?.statusCode;
    if (status === 403) {
      const body = bodyText(err.response);
      return new MeshError(
        "CONSUL_FORBIDDEN",
        `Consul at ${url} refused to ${what}: ${body || "permission denied"}. Give the token (CONSUL_HTTP_TOKEN) the permission named here.`,
        { cause: e, details: { consul: url, status } },
      );
    }
    if (status !== undefined) {
      const body = bodyText(err.response);
      return new MeshError("CONSUL_REJECTED", `Consul at ${url} refused to ${what}: HTTP ${status}${body ? ` ${body}` : ""}.`, {
        cause: e,
        retryable: status >= 500,
        details: { consul: url, status },
      });
    }
    const code = err.code ?? (/timeout|timed out/i.test(err.message ?? "") ? "ETIMEDOUT" : undefined);
    return new MeshError(
      "CONSUL_UNREACHABLE",
      `Consul at ${url} is unreachable (${code ?? describeError(e)}) while trying to ${what}. Start one with "mesh up" or set CONSUL_HTTP_ADDR.`,
      { cause: e, retryable: true, details: { consul: url } },
    );
  }
}

function blockingParams(options: BlockingOptions): Record<string, unknown> {
  const dc = options.dc ? { dc: options.dc } : {};
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

function consulIndex(res: Res | undefined): string {
  const raw = res?.headers["x-consul-index"];
  return (Array.isArray(raw) ? raw[0] : raw) ?? "0";
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function bodyText(res: Res | undefined): string {
  const b = res?.body;
  if (typeof b === "string") return b.trim();
  if (Buffer.isBuffer(b)) return b.toString("utf8").trim();
  return "";
}

type RawHealth = {
  Node?: { Address?: string };
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
  };
}
