import {
  Client,
  SdkHttpError,
  StreamableHTTPClientTransport,
  type CallToolResult,
  type ClientCapabilities,
  type InputRequiredResult,
  type DiscoverResult,
} from "@modelcontextprotocol/client";
import PQueue from "p-queue";
import { MeshError, describeError } from "../protocol/errors.ts";
import { meshFetch } from "./meshFetch.ts";
import { withMeshOAuth, type MeshOAuthProvider } from "./oauth.ts";
import { directToolCall, type DirectCall } from "./directCall.ts";
import { silentLogger, type Logger } from "../logger.ts";
import type { TokenFor } from "./tokens.ts";
import { isToolmesh } from "../discovery/catalog.ts";

/** Calls this caller sends one instance at once; more wait in its queue. @default 64 */
export const DEFAULT_MAX_CONCURRENT_PER_INSTANCE = 64;
/** Calls that may wait for one instance; beyond that they are refused at once. @default 256 */
export const DEFAULT_MAX_QUEUED_PER_INSTANCE = 256;
/** Longest wait for an MCP connection to be ready (a 2025-11-25 initialize, or a server/discover probe). @default 5000 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** The revision toolmesh's own hops speak. */
export const MODERN_REVISION = "2026-07-28";

/**
 * No MCP connection could be opened with an instance (refused, not MCP, no answer): the
 * request that needed it was never sent, so sending it to another instance is safe.
 */
export class ConnectError extends MeshError {
  constructor(target: PoolTarget, cause: unknown, timeoutMs: number) {
    super("AGENT_UNREACHABLE", `${target.id} (${target.url}) did not open an MCP connection: ${connectProblem(cause, timeoutMs)}`, {
      retryable: true,
      cause,
      details: { instance: target.id },
    });
  }
}

/** Why opening a connection failed, in words a user can act on. */
function connectProblem(e: unknown, timeoutMs: number): string {
  const message = describeError(e);
  if (/content type|Unexpected token|JSON|not valid|UNEXPECTED_CONTENT/i.test(message)) return `it does not speak MCP (${message})`;
  if (/timed out|timeout/i.test(message)) return `no answer within ${timeoutMs} ms`;
  return message;
}

/** What the pool needs to know of an instance. */
export interface PoolTarget {
  id: string;
  url: string;
  /** The agent (Consul service name): chooses the bearer token. */
  service?: string;
  /** Consul meta: a toolmesh agent publishes the revisions it serves and its capabilities. */
  meta?: Record<string, string>;
}

/** The lists a server may say changed. */
export type ListKind = "tools" | "prompts" | "resources";

export interface ClientPoolOptions {
  /** Name the pool's clients give (clientInfo). */
  clientName: string;
  logger?: Logger;
  /**
   * An instance said one of its lists changed (notifications/{tools,prompts,resources}/list_changed:
   * on a 2025-11-25 session, or on a 2026-07-28 listen stream opened on the connection).
   */
  onListChanged?: (instanceId: string, list: ListKind) => void;
  /** Capabilities the pool's clients declare (e.g. elicitation, when input requests are relayed). */
  capabilities?: ClientCapabilities;
  /** Installs handlers on each new client before it connects (server→client requests, notifications). */
  configure?: (client: Client) => void;
  /**
   * Hand a 2026-07-28 `input_required` result back to the caller instead of fulfilling it
   * here (the gateway relays it to its own client). @default false
   */
  relayInputRequests?: boolean;
  /** @default DEFAULT_MAX_CONCURRENT_PER_INSTANCE */
  maxConcurrentPerInstance?: number;
  /** @default DEFAULT_MAX_QUEUED_PER_INSTANCE */
  maxQueuedPerInstance?: number;
  /** The bearer token to send to an agent's instances, if any. */
  token?: TokenFor;
  /** Runs once each new client has connected (e.g. to pass on the session's log level). */
  onConnected?: (client: Client) => Promise<unknown>;
  /** @default DEFAULT_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
  /**
   * Speak 2025-11-25 (a session per instance) whatever the server offers: the gateway's
   * relay for a 2025-era client, whose agents' server requests and log messages must come
   * back on a session of their own. Default: 2026-07-28 where the server speaks it.
   */
  legacyOnly?: boolean;
  /** An OAuth client for the servers that require one (none for toolmesh agents, which take bearer tokens). */
  oauth?: (target: PoolTarget) => MeshOAuthProvider | undefined;
}

interface Entry {
  url: string;
  client: Promise<Client>;
  /** Notifications on their way to the instance (cancellations): closing waits for them. */
  sending: Set<Promise<unknown>>;
}

/** Least time a connection that runs an OAuth flow gets to open. @default 30000 */
export const OAUTH_CONNECT_TIMEOUT_MS = 30_000;

/** Longest a closing connection waits for its notifications (cancellations) to be delivered. @default 1000 */
export const NOTIFICATION_GRACE_MS = 1_000;

/**
 * What each server (by URL) turned out to speak: toolmesh agents say so in Consul meta
 * (never probed); another server is probed once (`server/discover`, falling back to
 * `initialize`) and the verdict is kept for this process, per instance, not per call.
 */
const verdicts = new Map<string, { kind: "modern"; discover: DiscoverResult } | { kind: "legacy" }>();

/** URLs whose registration claimed 2026-07-28 but whose connection failed with it: probed instead. */
const distrusted = new Set<string>();

/**
 * The revisions a server serves, and what its server/discover would answer, from its Consul
 * meta: a toolmesh agent publishes them; `mesh register` records what its probe found.
 */
function verdictFromMeta(target: PoolTarget): { kind: "modern"; discover: DiscoverResult } | undefined {
  const meta = target.meta;
  if (!meta) return undefined;
  if (!isToolmesh(meta) && distrusted.has(target.url)) return undefined;
  // Read once per registration (the catalog keeps the same meta object until it changes): this is on every call's path.
  let verdict = metaVerdicts.get(meta);
  if (verdict === undefined) {
    verdict = readVerdict(meta) ?? null;
    metaVerdicts.set(meta, verdict);
  }
  return verdict ?? undefined;
}

const metaVerdicts = new WeakMap<Record<string, string>, { kind: "modern"; discover: DiscoverResult } | null>();

function readVerdict(meta: Record<string, string>): { kind: "modern"; discover: DiscoverResult } | undefined {
  if (!meta["mcp_protocols"]?.split(",").includes(MODERN_REVISION)) return undefined;
  let capabilities: Record<string, unknown> = { tools: { listChanged: true } };
  try {
    capabilities = JSON.parse(meta["mcp_capabilities"] ?? "") as Record<string, unknown>;
  } catch {
    // older agents: tools only
  }
  return {
    kind: "modern",
    discover: { supportedVersions: meta["mcp_protocols"]!.split(","), capabilities } as unknown as DiscoverResult,
  };
}

/** Which revision a connection to this URL speaks, once known: "2026-07-28", "2025-11-25" (legacy), or undefined. */
export function knownEra(url: string): "modern" | "legacy" | undefined {
  return verdicts.get(url)?.kind;
}

/**
 * One MCP client per instance, opened on first use and reused for every call after it
 * (never one per call). On the 2026-07-28 revision a client holds no session: each call is
 * one POST. A client whose instance leaves the catalog, or that fails, is closed and
 * dropped; the next call opens a fresh one.
 */
export class ClientPool {
  private readonly entries = new Map<string, Entry>();
  /** Per instance: at most maxConcurrent calls running (pending), a bounded queue (size) behind them. */
  private readonly lanes = new Map<string, PQueue>();
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly o: ClientPoolOptions;
  private readonly logger: Logger;
  private readonly connectTimeoutMs: number;

  constructor(options: ClientPoolOptions) {
    this.o = options;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.maxConcurrent = options.maxConcurrentPerInstance ?? DEFAULT_MAX_CONCURRENT_PER_INSTANCE;
    this.maxQueued = options.maxQueuedPerInstance ?? DEFAULT_MAX_QUEUED_PER_INSTANCE;
    this.logger = (options.logger ?? silentLogger).child({ component: "client-pool" });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Calls in flight to an instance, and waiting for it (for least-in-flight selection). */
  inFlight(instanceId: string): number {
    const lane = this.lanes.get(instanceId);
    return lane ? lane.pending + lane.size : 0;
  }

  /**
   * Whether calls to this instance may go direct (directCall.ts): a toolmesh agent that says
   * in its meta that it serves 2026-07-28, reached with this pool's own credentials.
   */
  callsDirect(target: PoolTarget): boolean {
    return !this.o.legacyOnly && !this.o.oauth && isToolmesh(target.meta) && verdictFromMeta(target) !== undefined;
  }

  /**
   * One tools/call sent direct (no SDK client), counted in flight like `use` (same limits,
   * same queue, same OVERLOADED refusal).
   */
  callDirect(
    target: PoolTarget,
    params: DirectCall["params"],
    o: Pick<DirectCall, "signal" | "idleTimeoutMs" | "totalTimeoutMs" | "onProgress" | "onSent" | "allowInputRequired">,
  ): Promise<CallToolResult | InputRequiredResult> {
    const token = target.service ? this.o.token?.(target.service, true) : undefined;
    return this.lane(
      target,
      () =>
        directToolCall({
          url: target.url,
          params,
          clientInfo: { name: this.o.clientName, version: "1" },
          capabilities: this.o.capabilities ?? {},
          ...(token ? { token } : {}),
          ...o,
        }),
      o.signal,
    );
  }

  /** The instance's client, connecting on first use (or when its address changed). */
  client(target: PoolTarget): Promise<Client> {
    const existing = this.entries.get(target.id);
    if (existing && existing.url === target.url) return existing.client;
    if (existing) void this.drop(target.id);
    const sending = new Set<Promise<unknown>>();
    const client = this.connect(target, sending);
    const entry: Entry = { url: target.url, client, sending };
    this.entries.set(target.id, entry);
    client.catch(() => {
      if (this.entries.get(target.id) === entry) this.entries.delete(target.id);
    });
    return client;
  }

  /**
   * Runs `fn` with the instance's client, counting it in flight: at most
   * maxConcurrentPerInstance at once, the rest queued; with the queue full, refused at once
   * with OVERLOADED (nothing was sent). `signal` (the call's deadline) also ends the wait,
   * including the wait for a connection to open. A connection that cannot be opened throws
   * ConnectError (nothing was sent).
   */
  async use<T>(target: PoolTarget, fn: (client: Client) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.lane(target, async () => fn(await abortable(this.client(target), signal)), signal);
  }

  /** Runs `fn` in the instance's lane: its concurrency limit and bounded queue (OVERLOADED past it). */
  private lane<T>(target: PoolTarget, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let lane = this.lanes.get(target.id);
    if (!lane) {
      lane = new PQueue({ concurrency: this.maxConcurrent });
      this.lanes.set(target.id, lane);
    }
    if (lane.pending >= this.maxConcurrent && lane.size >= this.maxQueued) {
      throw new MeshError(
        "OVERLOADED",
        `This caller already has ${lane.pending} calls running on ${target.id} and ${lane.size} waiting (its per-instance limits, maxConcurrentPerInstance and maxQueuedPerInstance); the call was not sent. Retry shortly, or add replicas.`,
        { retryable: true, details: { instance: target.id } },
      );
    }
    return lane.add(fn, signal ? { signal } : {});
  }

  /** Closes and forgets an instance's connection (it left, or it failed). */
  async drop(instanceId: string): Promise<void> {
    const lane = this.lanes.get(instanceId);
    if (lane && lane.size === 0 && lane.pending === 0) this.lanes.delete(instanceId);
    const entry = this.entries.get(instanceId);
    if (!entry) return;
    this.entries.delete(instanceId);
    // A 2025-era cancellation is a POST of its own; closing the transport would abort it in
    // flight and leave the tool running at the agent.
    if (entry.sending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(entry.sending), new Promise((r) => (timer = setTimeout(r, NOTIFICATION_GRACE_MS)))]);
      clearTimeout(timer);
    }
    try {
      await (await entry.client).close();
    } catch {
      // it never connected, or is already closed
    }
  }

  /** Ids of instances with an open (or opening) connection. */
  connected(): string[] {
    return [...this.entries.keys()];
  }

  /** Runs `fn` on every connected client; a failure on one is logged, not thrown. */
  async each(fn: (client: Client) => Promise<unknown>): Promise<void> {
    await Promise.all(
      [...this.entries.entries()].map(async ([id, entry]) => {
        try {
          await fn(await entry.client);
        } catch (e) {
          this.logger.debug({ instance: id, err: String(e) }, "request to a pooled client failed");
        }
      }),
    );
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.entries.keys()].map((id) => this.drop(id)));
  }

  private async connect(target: PoolTarget, sending: Set<Promise<unknown>>): Promise<Client> {
    const fetch = trackingNotifications(sending);
    const provider = this.o.oauth?.(target);
    // An OAuth flow (metadata discovery, registration, authorization, token) is several round
    // trips on top of the handshake: it gets at least OAUTH_CONNECT_TIMEOUT_MS.
    const connectTimeoutMs = provider ? Math.max(this.connectTimeoutMs, OAUTH_CONNECT_TIMEOUT_MS) : this.connectTimeoutMs;
    const transportFetch = provider ? withMeshOAuth(provider, target.url, fetch) : fetch;
    const client = new Client(
      { name: this.o.clientName, version: "1" },
      {
        capabilities: this.o.capabilities ?? {},
        versionNegotiation: this.o.legacyOnly ? { mode: "legacy" } : { mode: "auto", probe: { timeoutMs: connectTimeoutMs } },
        ...(this.o.relayInputRequests ? { inputRequired: { autoFulfill: false } } : {}),
      },
    );
    this.o.configure?.(client);
    client.onclose = () => {
      const entry = this.entries.get(target.id);
      if (entry && entry.url === target.url) this.entries.delete(target.id);
    };
    for (const list of ["tools", "prompts", "resources"] as const)
      client.setNotificationHandler(`notifications/${list}/list_changed`, () => this.o.onListChanged?.(target.id, list));
    const token = target.service ? this.o.token?.(target.service, isToolmesh(target.meta)) : undefined;
    // Toolmesh agents say what they serve in Consul meta: no probe. Others are probed once.
    const fromMeta = this.o.legacyOnly ? undefined : verdictFromMeta(target);
    const prior = this.o.legacyOnly ? undefined : (fromMeta ?? verdicts.get(target.url));
    try {
      await client.connect(
        new StreamableHTTPClientTransport(new URL(target.url), {
          fetch: transportFetch,
          ...(token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {}),
        }),
        { timeout: connectTimeoutMs, ...(prior ? { prior } : {}) },
      );
    } catch (e) {
      verdicts.delete(target.url);
      if (fromMeta && !isToolmesh(target.meta)) distrusted.add(target.url);
      void client.close().catch(() => undefined);
      // 401 stays itself: the caller names the token to set.
      throw e instanceof SdkHttpError && e.status === 401 ? e : new ConnectError(target, e, connectTimeoutMs);
    }
    if (!prior && !this.o.legacyOnly) {
      const discover = client.getDiscoverResult();
      verdicts.set(target.url, discover ? { kind: "modern", discover } : { kind: "legacy" });
    }
    await this.o
      .onConnected?.(client)
      .catch((e: unknown) =>
        this.logger.debug({ instance: target.id, err: String(e) }, "post-connect step failed; the connection is kept"),
      );
    this.logger.debug({ instance: target.id, url: target.url, era: client.getProtocolEra() }, "connected");
    return client;
  }
}

/** meshFetch, with the notifications (no answer expected) kept in `sending` until delivered, so closing waits for them. */
function trackingNotifications(sending: Set<Promise<unknown>>): typeof meshFetch {
  return (input, init) => {
    const pending = meshFetch(input, init);
    if (typeof init?.body === "string" && init.body.includes('"method":"notifications/')) {
      const settled = pending.then(
        () => undefined,
        () => undefined,
      );
      sending.add(settled);
      void settled.finally(() => sending.delete(settled));
    }
    return pending;
  };
}

/** `promise`, or a rejection with the signal's reason once it aborts (the work itself goes on). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e as Error);
      },
    );
  });
}
