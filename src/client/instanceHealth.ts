import { breakerState } from "../telemetry/metrics.ts";
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll, type CircuitBreakerPolicy } from "cockatiel";
import { silentLogger, type Logger } from "../logger.ts";

/** How long an instance that failed stays out of rotation before a trial call. @default 5000 */
export const DEFAULT_EJECT_COOLDOWN_MS = 5_000;

export interface InstanceHealthOptions {
  /** @default DEFAULT_EJECT_COOLDOWN_MS */
  cooldownMs?: number;
  /** Consecutive faults that eject an instance. @default 1 (the first connection error or timeout) */
  faultsToEject?: number;
  logger?: Logger;
}

interface Breaker {
  policy: CircuitBreakerPolicy;
  openedAt: number | undefined;
  dispose: () => void;
}

/** Thrown (as a cause) when an instance is out of rotation; the call was never sent. */
export { BrokenCircuitError };

/**
 * Passive health, per instance, as a caller sees it: a connection error or a timeout ejects
 * the instance from this caller's rotation at once (long before Consul's check notices),
 * a circuit breaker (cockatiel) per instance lets one trial call through after a cool-down
 * and closes again when it succeeds, and an instance that Consul reports passing anew
 * (it left the healthy set and came back) is re-admitted immediately.
 */
export class InstanceHealth {
  private readonly breakers = new Map<string, Breaker>();
  private readonly cooldownMs: number;
  private readonly faultsToEject: number;
  private readonly logger: Logger;

  constructor(options: InstanceHealthOptions = {}) {
    this.cooldownMs = options.cooldownMs ?? DEFAULT_EJECT_COOLDOWN_MS;
    this.faultsToEject = options.faultsToEject ?? 1;
    this.logger = (options.logger ?? silentLogger).child({ component: "instance-health" });
  }

  /** Whether a call may go to the instance now: never failed, recovered, or due a trial call. */
  admits(id: string): boolean {
    const b = this.breakers.get(id);
    if (!b) return true;
    switch (b.policy.state) {
      case CircuitState.Closed:
        return true;
      case CircuitState.Open:
        return b.openedAt !== undefined && Date.now() - b.openedAt >= this.cooldownMs;
      default:
        return false; // half-open (a trial call is running) or isolated
    }
  }

  /** The breaker's state for an instance: closed (in rotation), half-open (a trial call running), open (ejected). */
  state(id: string): "closed" | "half-open" | "open" {
    const b = this.breakers.get(id);
    if (!b) return "closed";
    switch (b.policy.state) {
      case CircuitState.Closed:
        return "closed";
      case CircuitState.HalfOpen:
        return "half-open";
      default:
        return "open";
    }
  }

  /** Instances currently out of rotation. */
  ejected(): string[] {
    return [...this.breakers.keys()].filter((id) => !this.admits(id));
  }

  /**
   * Runs a call to the instance through its breaker. `isFault(e)` says whether a failure
   * counts against the instance (a connection error, a timeout) or is an answer (a JSON-RPC
   * error from the agent, the caller's own cancellation). An out-of-rotation instance
   * throws BrokenCircuitError without calling.
   */
  async run<T>(id: string, fn: () => Promise<T>, isFault: (e: unknown) => boolean): Promise<T> {
    const outcome = await this.breaker(id).policy.execute(async () => {
      try {
        return { value: await fn() };
      } catch (e) {
        if (isFault(e)) throw e;
        return { error: e };
      }
    });
    if ("error" in outcome) throw outcome.error;
    return outcome.value;
  }

  /** Consul reports the instance passing anew: back in rotation, history forgotten. */
  readmit(id: string): void {
    const b = this.breakers.get(id);
    if (!b) return;
    b.dispose();
    this.breakers.delete(id);
    if (b.openedAt !== undefined) this.logger.info({ instance: id }, "instance re-admitted: Consul reports it passing again");
  }

  /** Forgets instances no longer in the catalog. */
  retain(present: ReadonlySet<string>): void {
    for (const id of [...this.breakers.keys()]) {
      if (present.has(id)) continue;
      this.breakers.get(id)!.dispose();
      this.breakers.delete(id);
    }
  }

  private breaker(id: string): Breaker {
    const b = this.breakers.get(id);
    if (b) return b;
    const policy = circuitBreaker(handleAll, {
      halfOpenAfter: this.cooldownMs,
      breaker: new ConsecutiveBreaker(this.faultsToEject),
    });
    const entry: Breaker = { policy, openedAt: undefined, dispose: () => undefined };
    const subs = [
      policy.onBreak((reason) => {
        entry.openedAt = Date.now();
        breakerState.set({ instance: id }, 2);
        const err = "error" in reason ? String(reason.error) : "isolated";
        this.logger.warn({ instance: id, cooldownMs: this.cooldownMs, err }, "instance ejected from rotation");
      }),
      policy.onHalfOpen(() => breakerState.set({ instance: id }, 1)),
      policy.onReset(() => {
        entry.openedAt = undefined;
        breakerState.set({ instance: id }, 0);
        this.logger.info({ instance: id }, "instance back in rotation: its trial call succeeded");
      }),
    ];
    breakerState.set({ instance: id }, 0);
    entry.dispose = () => {
      subs.forEach((s) => s.dispose());
      breakerState.remove({ instance: id });
    };
    this.breakers.set(id, entry);
    return entry;
  }
}
