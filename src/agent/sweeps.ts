import type { ConsulClient } from "../consul/client.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { TASK_SWEEP_INTERVAL_MS } from "../protocol/tasks.ts";
import { DEFAULT_IDEMPOTENCY_WINDOW_MS, sweepIdempotencyRecords } from "./idempotency.ts";
import { sweepTaskRecords } from "./tasks.ts";

/**
 * Starts forgetting, in Consul KV, the idempotency records no repeat can use any more and
 * (an agent with tasks) the task records past their TTL. Every replica sweeps, with CAS, at a
 * randomly staggered interval; a failed sweep is tried again at the next. Returns the stop.
 */
export function startSweeps(consul: ConsulClient, prefixes: { idempotency: string; tasks?: string }, log: Logger): () => void {
  const tasksPrefix = prefixes.tasks;
  const taskSweeper =
    tasksPrefix === undefined
      ? undefined
      : sweepEvery(TASK_SWEEP_INTERVAL_MS, () => sweepTaskRecords(consul, tasksPrefix), log, "expired task records", "task");
  const sweeper = sweepEvery(
    DEFAULT_IDEMPOTENCY_WINDOW_MS / 2,
    () => sweepIdempotencyRecords(consul, prefixes.idempotency, DEFAULT_IDEMPOTENCY_WINDOW_MS),
    log,
    "idempotency records",
    "idempotency",
  );
  return () => {
    clearInterval(sweeper);
    clearInterval(taskSweeper);
  };
}

/** Runs `sweep` every `ms` plus up to 30 s (replicas spread out), not keeping the process alive; its outcome goes to the debug log. */
function sweepEvery(ms: number, sweep: () => Promise<number>, log: Logger, records: string, kind: string): NodeJS.Timeout {
  return setInterval(
    () =>
      void sweep()
        .then((n) => n > 0 && log.debug({ deleted: n }, `${records} swept`))
        .catch((e: unknown) => log.debug({ err: describeError(e) }, `${kind} sweep failed; trying again later`)),
    ms + Math.random() * 30_000,
  ).unref();
}
