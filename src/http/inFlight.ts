import type { ServerResponse } from "node:http";

/**
 * The requests a server is handling (tool calls and their streamed answers, listen streams),
 * counted from admission until their response closes: what draining waits for.
 */
export class InFlightRequests {
  private count = 0;
  private readonly idleWaiters = new Set<() => void>();

  get size(): number {
    return this.count;
  }

  /** Counts the request until `res` closes. */
  track(res: ServerResponse): void {
    this.count++;
    res.once("close", () => {
      this.count--;
      if (this.count === 0) for (const wake of this.idleWaiters) wake();
    });
  }

  /** Resolves true once no request is in flight, false if `timeoutMs` passed first. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(wake);
        resolve(idle);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.idleWaiters.add(wake);
    });
  }
}
