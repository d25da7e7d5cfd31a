import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { TASK_HEARTBEAT_MS } from "../protocol/tasks.ts";
import type { TaskStore } from "./taskStore.ts";
import { TERMINAL } from "./tasks.ts";

/**
 * A task this replica runs: how it is aborted (tasks/cancel, shutdown), how it wakes when its
 * input arrives, and its heartbeat. Every TASK_HEARTBEAT_MS the record shows this replica is
 * alive and carries the handler's latest progress; a cancel or input delivered to another
 * replica is seen here.
 */
export class RunningTask {
  readonly abort = new AbortController();
  private readonly taskId: string;
  private readonly store: TaskStore;
  private readonly logger: Logger;
  private readonly beat: NodeJS.Timeout;
  private waiting: () => void = () => undefined;
  private progress: string | undefined;

  constructor(taskId: string, store: TaskStore, logger: Logger) {
    this.taskId = taskId;
    this.store = store;
    this.logger = logger;
    this.beat = setInterval(() => this.heartbeat(), TASK_HEARTBEAT_MS);
    this.beat.unref();
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The handler's progress (TaskRun's `report`): the task's status message at the next heartbeat. */
  readonly report = (message: string): void => void (this.progress = message.slice(0, 500));

  /** Ends the wait for input, if the task waits. */
  wake(): void {
    this.waiting();
  }

  /** Resolves at the next wake(); rejects with the reason if the task is aborted first. */
  inputArrived(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting = resolve;
      this.abort.signal.addEventListener("abort", () => reject(this.abort.signal.reason as Error), { once: true });
    });
  }

  /** The handler ended: no more heartbeats. */
  stop(): void {
    clearInterval(this.beat);
  }

  private heartbeat(): void {
    const message = this.progress;
    void this.store
      .write(this.taskId, (r) =>
        TERMINAL.has(r.status)
          ? r
          : {
              ...r,
              heartbeatAt: new Date().toISOString(),
              ...(message && r.status === "working" && message !== r.statusMessage
                ? { statusMessage: message, lastUpdatedAt: new Date().toISOString() }
                : {}),
            },
      )
      .then((r) => {
        // Ended elsewhere (failed as orphaned while this replica was paused or cut off): stop the handler.
        if (TERMINAL.has(r.status)) this.abort.abort(new Error(`the task was already ${r.status} by another instance`));
        if (r.cancelRequested) this.abort.abort(new Error("cancelled by tasks/cancel"));
        if (r.inputResponses && Object.keys(r.inputResponses).length > 0 && Object.keys(r.inputRequests ?? {}).length === 0) this.wake();
      })
      .catch((e: unknown) => this.logger.warn({ taskId: this.taskId, err: describeError(e) }, "cannot refresh the task's record"));
  }
}
