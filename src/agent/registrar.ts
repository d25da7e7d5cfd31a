import type { ConsulClient, ServiceRegistration } from "../consul/client.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { silentLogger, type Logger } from "../logger.ts";

export interface RegistrarOptions {
  consul: ConsulClient;
  registration: ServiceRegistration;
  /** How often to confirm that Consul still knows this instance. */
  reconcileIntervalMs: number;
  logger?: Logger;
  /**
   * A Consul KV key this instance keeps while it is registered. When Consul forgets the
   * instance and this key is gone too, Consul lost its data (a restarted -dev agent keeps
   * nothing), not just the registration: the registrar says so once, loudly. False: no key.
   * @default presenceKey(service, id)
   */
  presenceKey?: string | false;
}

/** Where an instance notes in Consul KV that it is registered (under its agent's state prefix, which its ACL policy may write). */
export function presenceKey(service: string, id: string): string {
  return `toolmesh/state/${service}/_instances/${id}`;
}

export type RegistrarEvent = "registered" | "reregistered" | "consul-data-lost" | "consul-unreachable" | "deregistered";

/**
 * Keeps one service instance registered. Consul is a cache of who is alive, not the
 * source of truth: a dev agent restart (or a lost catalog) forgets every service, so the
 * registrar checks periodically and registers again. While Consul is unreachable the
 * agent keeps serving and the registrar keeps trying, logging once per outage.
 */
export class Registrar {
  private readonly consul: ConsulClient;
  private readonly reg: ServiceRegistration;
  private readonly intervalMs: number;
  private readonly logger: Logger;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private everRegistered = false;
  private outage = false;
  private readonly presence: string | undefined;
  private readonly listeners = new Set<(e: RegistrarEvent) => void>();

  constructor(options: RegistrarOptions) {
    this.consul = options.consul;
    this.reg = options.registration;
    this.intervalMs = options.reconcileIntervalMs;
    this.presence = options.presenceKey === false ? undefined : (options.presenceKey ?? presenceKey(this.reg.name, this.reg.id));
    this.logger = (options.logger ?? silentLogger).child({ component: "registrar", serviceId: this.reg.id });
  }

  /** Observe registrations (tests, metrics); returns an unsubscribe function. */
  on(listener: (e: RegistrarEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Registers now (one attempt) and keeps the registration alive in the background. */
  async start(): Promise<boolean> {
    const ok = await this.reconcile();
    this.loop = this.run();
    return ok;
  }

  /**
   * Changes the registration's meta (a new tools hash) and registers it again at once
   * (re-registering the same id replaces it). Never throws: the reconcile loop retries.
   */
  async updateMeta(meta: Record<string, string>): Promise<void> {
    Object.assign(this.reg.meta, meta);
    if (!this.everRegistered || this.stopped.signal.aborted) return;
    try {
      await this.consul.registerService(this.reg, { signal: this.stopped.signal });
      this.logger.info({ meta }, "registration updated");
    } catch (e) {
      this.logger.warn({ err: describeError(e) }, "could not update the registration; retrying with the next reconcile");
      this.everRegistered = false;
    }
  }

  /** Stops reconciling and deregisters (bounded by timeoutMs). Never throws. */
  async stop(timeoutMs = 3_000): Promise<void> {
    this.stopped.abort();
    await this.loop;
    if (this.presence) await this.consul.kvDelete(this.presence, { timeoutMs, retryMs: 0 }).catch(() => undefined);
    try {
      await this.consul.deregisterService(this.reg.id, { timeoutMs, retryMs: 0 });
      this.logger.info("deregistered from Consul");
      this.emit("deregistered");
    } catch (e) {
      this.logger.warn(
        { err: describeError(e) },
        "could not deregister; Consul's deregister_critical_service_after will remove the instance",
      );
    }
  }

  private async run(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      await sleep(this.intervalMs, signal);
      if (signal.aborted) return;
      await this.reconcile();
    }
  }

  /** One pass: make sure Consul knows this instance. Returns whether it does afterwards. */
  private async reconcile(): Promise<boolean> {
    const signal = this.stopped.signal;
    try {
      const known = this.everRegistered && (await this.consul.hasAgentService(this.reg.id, { signal, retryMs: 0 }));
      if (!known) {
        // Forgotten: did Consul lose only the registration, or its data (the presence key too)?
        const lost = this.everRegistered && this.presence !== undefined && (await this.presenceGone(signal));
        await this.consul.registerService(this.reg, { signal, retryMs: 0 });
        if (lost) {
          this.logger.warn(
            { consul: this.consul.address.url, presenceKey: this.presence },
            "Consul lost its data: it had forgotten this instance and the key this instance keeps in its KV store is gone too. " +
              "Everything toolmesh kept in that Consul is lost: bookings, expenses, payrolls, task records, sessions, and idempotency records (a repeat of an earlier keyed call may run again). " +
              "A Consul agent started with -dev keeps everything in memory, so a restart empties it; run Consul with a data directory (mesh up does, under .mesh/consul) or as a server cluster",
          );
          this.emit("consul-data-lost");
        }
        if (this.everRegistered) {
          this.logger.warn("Consul had forgotten this instance (agent restarted?); registered it again");
          this.emit("reregistered");
        } else {
          this.logger.info({ consul: this.consul.address.url, tags: this.reg.tags }, "registered in Consul");
          this.emit("registered");
        }
        this.everRegistered = true;
        await this.markPresent(signal);
      }
      if (this.outage) this.logger.info("Consul is reachable again");
      this.outage = false;
      return true;
    } catch (e) {
      if (signal.aborted) return false;
      if (!this.outage) {
        this.logger.warn(
          { err: describeError(e), code: isMeshError(e) ? e.code : undefined },
          "cannot register in Consul; serving anyway and retrying",
        );
        this.emit("consul-unreachable");
      }
      this.outage = true;
      return false;
    }
  }

  /** Whether the presence key is gone (false when it cannot be read: nothing is claimed then). */
  private async presenceGone(signal: AbortSignal): Promise<boolean> {
    try {
      return (await this.consul.kvGet(this.presence!, { signal, retryMs: 0 })) === undefined;
    } catch (e) {
      this.logger.debug({ err: describeError(e) }, "cannot read this instance's presence key");
      return false;
    }
  }

  /** Writes the presence key (best effort: without it, a lost Consul is reported only as a re-registration). */
  private async markPresent(signal: AbortSignal): Promise<void> {
    if (!this.presence) return;
    await this.consul
      .kvSet(this.presence, JSON.stringify({ id: this.reg.id, registeredAt: new Date().toISOString() }), { signal, retryMs: 0 })
      .catch((e: unknown) => this.logger.debug({ err: describeError(e) }, "cannot write this instance's presence key"));
  }

  private emit(e: RegistrarEvent): void {
    for (const l of this.listeners) l(e);
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
