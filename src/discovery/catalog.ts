import { EventEmitter } from "node:events";
import type { Tool } from "@modelcontextprotocol/client";
import { discoveryChanges, discoveryWatchErrors } from "../telemetry/metrics.ts";
import type { ConsulClient, ServiceEntry } from "../consul/client.ts";
import { instanceUrl } from "./instanceUrl.ts";
import { describeError } from "../protocol/errors.ts";
import { silentLogger, type Logger } from "../logger.ts";

/** Tag that marks a Consul service as an MCP mesh member. */
export const MCP_TAG = "mcp";
/** Longest wait of one blocking query. @default "30s" */
export const WATCH_WAIT = "30s";
/** Backoff after a failed watch: doubles from the first to the last. @default [100, 5000] */
export const WATCH_BACKOFF_MS: readonly [number, number] = [100, 5_000];

/** Longest wait for one instance's tool list (which also proves it speaks MCP). @default 5000 */
export const DEFAULT_TOOLS_TIMEOUT_MS = 5_000;
/** How long a foreign instance that failed its check stays out before it is checked again. @default 30000 */
export const REVERIFY_AFTER_MS = 30_000;

export interface CatalogInstance extends ServiceEntry {
  /** The instance's MCP endpoint. */
  url: string;
}

/** A passing instance (per Consul) that this caller cannot use, and why. */
export interface UnusableInstance {
  id: string;
  url: string;
  reason: string;
}

export interface CatalogAgent {
  name: string;
  tags: string[];
  /** Passing instances this caller can use (toolmesh agents, and other servers that answered MCP). */
  instances: CatalogInstance[];
  /**
   * Passing instances kept out of rotation: servers registered with `mesh register` that
   * did not answer an MCP tools/list (not MCP, stalled, refusing). Checked again later.
   */
  unusable: UnusableInstance[];
  tools: Tool[];
  /** The tools hash the tool list was fetched for (toolmesh agents publish it in meta). */
  toolsHash: string | undefined;
  description: string | undefined;
  /** Last error fetching the tool list, if the last attempt failed. */
  toolsError: string | undefined;
}

/** Fetches an instance's tool list; the caller owns the connection. Must honour `signal`. */
export type FetchTools = (instance: CatalogInstance, signal: AbortSignal) => Promise<Tool[]>;

export interface CatalogOptions {
  consul: ConsulClient;
  /** How tool lists are fetched (over MCP, by the caller that owns the connections). */
  fetchTools: FetchTools;
  /** @default DEFAULT_TOOLS_TIMEOUT_MS */
  toolsTimeoutMs?: number;
  logger?: Logger;
  /**
   * "all": watch every service tagged mcp (orchestrator, gateway, CLI).
   * "on-demand": watch a service from the first time it is asked for (agents calling agents).
   */
  mode: "all" | "on-demand";
}

export type CatalogEvent = {
  type: "agents" | "instances" | "tools";
  agent?: string;
  /** Instances that left the agent's usable set (their connections can go). */
  left?: string[];
};

/** What checking a foreign instance found. */
type Verdict = { ok: true; tools: Tool[] } | { ok: false; reason: string; retryAt: number };

/**
 * The live, in-memory view of the mesh: agent → passing instances → tools. Kept current
 * with Consul blocking queries (a change reaches it as soon as Consul answers, typically
 * in milliseconds). While Consul is unreachable it keeps the last-known view, says so
 * once in the log, and retries with backoff. Emits "change" with a CatalogEvent.
 *
 * Toolmesh agents (meta toolmesh_version) are trusted by their registration. Any other
 * server (added with `mesh register`) is checked once per instance: it must answer an MCP
 * tools/list within the tools timeout, or it is kept out of `instances` (listed in
 * `unusable` with the reason) and checked again after REVERIFY_AFTER_MS. One bad member
 * never takes a caller down, and every tool list has a deadline.
 */
export class Catalog extends EventEmitter<{ change: [CatalogEvent] }> {
  private readonly consul: ConsulClient;
  private readonly fetchTools: FetchTools;
  private readonly toolsTimeoutMs: number;
  private readonly logger: Logger;
  /** Foreign instances checked, by id@url. */
  private readonly verdicts = new Map<string, Verdict>();
  /** The last Consul entries per agent (to apply again when a re-check is due). */
  private readonly entries = new Map<string, ServiceEntry[]>();
  private readonly recheck = new Map<string, NodeJS.Timeout>();
  /** Foreign instances being checked now. */
  private readonly checking = new Set<string>();
  private readonly mode: "all" | "on-demand";
  private readonly agentsByName = new Map<string, CatalogAgent>();
  private readonly watchers = new Map<string, { stop: AbortController; ready: Promise<void> }>();
  private readonly stopped = new AbortController();
  private servicesReady: Promise<void> | undefined;
  private consulError: string | undefined;
  private lastContact = 0;

  constructor(options: CatalogOptions) {
    super();
    this.consul = options.consul;
    this.fetchTools = options.fetchTools;
    this.toolsTimeoutMs = options.toolsTimeoutMs ?? DEFAULT_TOOLS_TIMEOUT_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "catalog" });
    this.mode = options.mode;
  }

  /** In "all" mode: resolves once the first view of the mesh (with tool lists) is loaded. */
  async start(): Promise<void> {
    if (this.mode !== "all") return;
    this.servicesReady ??= new Promise<void>((resolve) => void this.watchServices(resolve));
    await this.servicesReady;
    await Promise.all([...this.watchers.values()].map((w) => w.ready));
  }

  stop(): void {
    this.stopped.abort();
    for (const w of this.watchers.values()) w.stop.abort();
    for (const t of this.recheck.values()) clearTimeout(t);
  }

  agents(): CatalogAgent[] {
    return [...this.agentsByName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  agent(name: string): CatalogAgent | undefined {
    return this.agentsByName.get(name);
  }

  /** Passing instances of an agent; in on-demand mode the first ask starts its watch. */
  async instances(name: string): Promise<CatalogInstance[]> {
    await this.ensureWatched(name);
    return this.agentsByName.get(name)?.instances ?? [];
  }

  /** The Consul error of the last failed watch, while it keeps failing. */
  get lastError(): string | undefined {
    return this.consulError;
  }

  /** When the catalog last heard from Consul (epoch ms; 0 never). */
  get lastContactAt(): number {
    return this.lastContact;
  }

  /** Fetches an agent's tool list again (an instance sent tools/list_changed). */
  async refreshTools(name: string): Promise<void> {
    const agent = this.agentsByName.get(name);
    if (agent) await this.loadTools(agent, true);
  }

  /** The agent an instance id belongs to. */
  agentOf(instanceId: string): string | undefined {
    for (const a of this.agentsByName.values()) if (a.instances.some((i) => i.id === instanceId)) return a.name;
    return undefined;
  }

  private ensureWatched(name: string): Promise<void> {
    const existing = this.watchers.get(name);
    if (existing) return existing.ready;
    const stop = new AbortController();
    const ready = new Promise<void>((resolve) => void this.watchService(name, stop.signal, resolve));
    this.watchers.set(name, { stop, ready });
    return ready;
  }

  private async watchServices(ready: () => void): Promise<void> {
    let index = "0";
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      try {
        const r = await this.consul.catalogServices({ index, wait: WATCH_WAIT, signal: this.stopped.signal, retryMs: 0 });
        index = Number(r.index) < Number(index) ? "0" : r.index;
        this.contact();
        failures = 0;
        const mesh = Object.entries(r.value).filter(([, tags]) => tags.includes(MCP_TAG));
        const names = new Set(mesh.map(([n]) => n));
        for (const [name, tags] of mesh) {
          const a = this.agentsByName.get(name);
          if (a) a.tags = tags;
          void this.ensureWatched(name);
        }
        for (const [name, w] of this.watchers) {
          if (!names.has(name)) {
            w.stop.abort();
            this.watchers.delete(name);
            this.removeAgent(name);
          }
        }
        await Promise.all(mesh.map(([n]) => this.watchers.get(n)?.ready));
        ready();
      } catch (e) {
        if (this.stopped.signal.aborted) return;
        failures = this.failed(e, failures);
        ready(); // start() must not hang while Consul is down: the view is simply empty
        await backoff(failures, this.stopped.signal);
      }
    }
  }

  private async watchService(name: string, signal: AbortSignal, ready: () => void): Promise<void> {
    let index = "0";
    let failures = 0;
    while (!signal.aborted && !this.stopped.signal.aborted) {
      try {
        const r = await this.consul.healthService(name, {
          passing: true,
          index,
          wait: WATCH_WAIT,
          retryMs: 0, // this loop retries with its own backoff, serving its last view meanwhile
          signal: AbortSignal.any([signal, this.stopped.signal]),
        });
        index = Number(r.index) < Number(index) ? "0" : r.index;
        this.contact();
        failures = 0;
        // Consul matches service names without regard to case: "HR" is not "hr", and gets none of its calls.
        await this.applyInstances(
          name,
          r.value.filter((e) => e.service === name),
        );
        ready();
      } catch (e) {
        if (signal.aborted || this.stopped.signal.aborted) return;
        failures = this.failed(e, failures);
        ready();
        await backoff(failures, AbortSignal.any([signal, this.stopped.signal]));
      }
    }
  }

  /** Compares contents (a blocking query's return does not mean a change). */
  private async applyInstances(name: string, entries: ServiceEntry[]): Promise<void> {
    this.entries.set(name, entries);
    const all = entries.map((e) => ({ ...e, url: instanceUrl(e) })).sort((a, b) => a.id.localeCompare(b.id));
    const checking = this.verify(
      name,
      all.filter((i) => !isToolmesh(i.meta)),
    );
    // Toolmesh instances serve meanwhile: a slow check of a foreign member runs in the
    // background (the member joins when it passes). An agent made only of foreign servers
    // waits for its check, bounded by the tools timeout.
    if (all.some((i) => isToolmesh(i.meta))) void checking.then((checked) => (checked ? this.reapply(name) : undefined));
    else await checking;
    const instances = all.filter((i) => isToolmesh(i.meta) || this.verdicts.get(verdictKey(i))?.ok);
    const unusable = all.flatMap((i) => {
      const v = this.verdicts.get(verdictKey(i));
      return isToolmesh(i.meta) || !v || v.ok ? [] : [{ id: i.id, url: i.url, reason: v.reason }];
    });
    let agent = this.agentsByName.get(name);
    const isNew = !agent;
    if (!agent) {
      agent = {
        name,
        tags: entries[0]?.tags ?? [],
        instances: [],
        unusable: [],
        tools: [],
        toolsHash: undefined,
        description: undefined,
        toolsError: undefined,
      };
      this.agentsByName.set(name, agent);
    }
    const before = listing(agent.instances, agent.unusable);
    const left = agent.instances.filter((i) => !instances.some((n) => n.id === i.id && n.url === i.url)).map((i) => i.id);
    agent.instances = instances;
    agent.unusable = unusable;
    agent.description = instances[0]?.meta["description"] ?? all[0]?.meta["description"] ?? agent.description;
    if (all[0]) agent.tags = all[0].tags;
    const changed = before !== listing(instances, unusable);
    if (changed) {
      this.logger.info(
        { agent: name, instances: instances.map((i) => i.id), ...(unusable.length ? { unusable } : {}) },
        "instances changed",
      );
      this.changed({ type: isNew ? "agents" : "instances", agent: name, ...(left.length ? { left } : {}) });
    }
    // toolmesh agents publish a tools hash: refetch when it moves. Other MCP servers do not:
    // refetch when their instances change. Either way, retry after a failed fetch.
    const hash = majorityHash(instances);
    const stale = hash === undefined ? changed || agent.tools.length === 0 : hash !== agent.toolsHash;
    if (instances.length > 0 && (stale || agent.toolsError !== undefined)) await this.loadTools(agent, false);
  }

  /**
   * Checks foreign instances not checked yet (or due a re-check): each must answer an MCP
   * tools/list within the deadline. Failures are kept with their reason and checked again
   * after REVERIFY_AFTER_MS while the instance stays registered.
   */
  private async verify(agent: string, foreign: readonly CatalogInstance[]): Promise<boolean> {
    const now = Date.now();
    const due = foreign.filter((i) => {
      const v = this.verdicts.get(verdictKey(i));
      return !this.checking.has(verdictKey(i)) && (!v || (!v.ok && v.retryAt <= now));
    });
    for (const i of due) this.checking.add(verdictKey(i));
    const present = new Set(foreign.map(verdictKey));
    for (const key of [...this.verdicts.keys()]) if (key.startsWith(`${agent}/`) && !present.has(key)) this.verdicts.delete(key);
    await Promise.all(
      due.map(async (i) => {
        try {
          this.verdicts.set(verdictKey(i), { ok: true, tools: await this.withDeadline((signal) => this.fetchTools(i, signal)) });
        } catch (e) {
          const reason = describeError(e);
          this.verdicts.set(verdictKey(i), { ok: false, reason, retryAt: Date.now() + REVERIFY_AFTER_MS });
          this.logger.warn(
            { agent, instance: i.id, url: i.url, err: reason, recheckInMs: REVERIFY_AFTER_MS },
            "registered server does not answer MCP; kept out of rotation",
          );
        } finally {
          this.checking.delete(verdictKey(i));
        }
      }),
    );
    if (foreign.some((i) => this.verdicts.get(verdictKey(i))?.ok === false)) this.scheduleRecheck(agent);
    return due.length > 0;
  }

  /** Applies an agent's last Consul entries again (a check finished or is due). */
  private async reapply(agent: string): Promise<void> {
    const entries = this.entries.get(agent);
    if (entries && this.watchers.has(agent) && !this.stopped.signal.aborted) await this.applyInstances(agent, entries);
  }

  private scheduleRecheck(agent: string): void {
    if (this.recheck.has(agent) || this.stopped.signal.aborted) return;
    const timer = setTimeout(() => {
      this.recheck.delete(agent);
      void this.reapply(agent);
    }, REVERIFY_AFTER_MS);
    timer.unref();
    this.recheck.set(agent, timer);
  }

  /** Runs a fetch with the tools deadline (and the catalog's own stop). */
  private async withDeadline<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = AbortSignal.timeout(this.toolsTimeoutMs);
    const signal = AbortSignal.any([deadline, this.stopped.signal]);
    try {
      return await fn(signal);
    } catch (e) {
      if (deadline.aborted) throw new Error(`no answer to tools/list within ${this.toolsTimeoutMs} ms`, { cause: e });
      throw e;
    }
  }

  /**
   * Fetches the agent's tools from an instance that publishes the majority tools hash (a
   * foreign instance's list is known from its check), trying the next instance when one
   * fails; keeps the last list when all fail.
   */
  private async loadTools(agent: CatalogAgent, force: boolean): Promise<void> {
    const hash = majorityHash(agent.instances);
    const sources = [...agent.instances].sort(
      (a, b) => Number(b.meta["tools_hash"] === hash) - Number(a.meta["tools_hash"] === hash) || a.id.localeCompare(b.id),
    );
    if (sources.length === 0) return;
    const errors: string[] = [];
    for (const source of sources) {
      const verdict = this.verdicts.get(verdictKey(source));
      try {
        const tools = !force && verdict?.ok ? verdict.tools : await this.withDeadline((signal) => this.fetchTools(source, signal));
        const changed = force || JSON.stringify(tools) !== JSON.stringify(agent.tools);
        agent.tools = tools;
        agent.toolsHash = hash;
        agent.toolsError = undefined;
        if (changed) {
          this.logger.info({ agent: agent.name, tools: tools.length, toolsHash: hash, from: source.id }, "tools loaded");
          this.changed({ type: "tools", agent: agent.name });
        }
        return;
      } catch (e) {
        errors.push(`${source.id}: ${describeError(e)}`);
      }
    }
    agent.toolsError = errors.join("; ");
    this.logger.warn({ agent: agent.name, err: agent.toolsError }, "cannot list tools; keeping the last list");
  }

  private removeAgent(name: string): void {
    const a = this.agentsByName.get(name);
    if (!a) return;
    this.agentsByName.delete(name);
    this.entries.delete(name);
    clearTimeout(this.recheck.get(name));
    this.recheck.delete(name);
    this.logger.info({ agent: name }, "agent left the mesh");
    this.changed({ type: "agents", agent: name, left: a.instances.map((i) => i.id) });
  }

  private contact(): void {
    this.lastContact = Date.now();
    if (this.consulError) {
      this.logger.info({ consul: this.consul.address.url }, "Consul is reachable again; catalog is live");
      this.consulError = undefined;
    }
  }

  private changed(event: { type: "agents" | "instances" | "tools"; agent: string; left?: string[] }): void {
    discoveryChanges.inc({ kind: event.type });
    this.emit("change", event);
  }

  private failed(e: unknown, failures: number): number {
    const message = describeError(e);
    discoveryWatchErrors.inc();
    if (!this.consulError) {
      this.logger.warn(
        { err: message, agents: this.agentsByName.size },
        "Consul watch failed; serving from the last-known catalog and retrying",
      );
    }
    this.consulError = message;
    return failures + 1;
  }
}

/** Whether an instance is a toolmesh agent (trusted by its registration; publishes its tools hash). */
export function isToolmesh(meta: Readonly<Record<string, string>> | undefined): boolean {
  return meta?.["toolmesh_version"] !== undefined;
}

function verdictKey(i: CatalogInstance): string {
  return `${i.service}/${i.id}@${i.url}`;
}

/** What callers see of an agent's instances, to tell when it changed. */
function listing(instances: readonly CatalogInstance[], unusable: readonly UnusableInstance[]): string {
  return `${signature(instances)}|${unusable.map((u) => `${u.id}:${u.reason}`).join(",")}`;
}

function signature(instances: readonly CatalogInstance[]): string {
  return instances.map((i) => `${i.id}@${i.url}#${i.meta["tools_hash"] ?? ""}`).join(",");
}

/** The tools hash most instances publish (during a rolling upgrade they may differ). */
function majorityHash(instances: readonly CatalogInstance[]): string | undefined {
  const counts = new Map<string, number>();
  for (const i of instances) {
    const h = i.meta["tools_hash"];
    if (h) counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function backoff(failures: number, signal: AbortSignal): Promise<void> {
  const [min, max] = WATCH_BACKOFF_MS;
  const ms = Math.min(max, min * 2 ** Math.min(failures - 1, 10)) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
