import { MeshError } from "../protocol/errors.ts";
import type { Fence, FenceGuard } from "../state/fence.ts";
import type { SharedState } from "../state/sharedState.ts";
import { TERMINAL, type TaskRecord } from "./tasks.ts";

/**
 * The fence of a running task: its record's version while the record still says the task runs
 * here. A write of shared state the task's handler makes commits only in one Consul transaction
 * with a check-and-set of that version (sharedState.ts), so a replica that was paused or cut
 * off long enough for another replica to fail its task (TASK_ORPHAN_AFTER_MS) can never record
 * the task's effect afterwards: the task that was reported failed stays without effect.
 *
 * The record moves on legitimately while the task runs (heartbeats, a cancel request or input
 * delivered through another replica), so a version that no longer matches is re-read
 * (reconfirm) rather than taken as lost: the fence is lost only once the record has ended.
 * A committed effect marks the record `applied`, so a replica that later finds the task
 * orphaned says an effect was recorded instead of "nothing happened".
 */
export class TaskFence implements Fence {
  readonly kind = "task";
  readonly label: string;
  private readonly state: SharedState;
  private readonly taskId: string;
  private index: number;
  private record: TaskRecord;
  private status: "held" | "lost" = "held";
  private effect = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(o: { state: SharedState; record: TaskRecord; index: number; label: string }) {
    this.state = o.state;
    this.taskId = o.record.taskId;
    this.record = o.record;
    this.index = o.index;
    this.label = o.label;
  }

  get open(): boolean {
    return this.status === "held";
  }
  get applied(): boolean {
    return this.effect;
  }

  guard(): FenceGuard | undefined {
    const key = this.state.kvKey(this.taskId);
    if (key === undefined || this.status !== "held") return undefined;
    const sentAt = Date.now();
    const value: TaskRecord = { ...this.record, applied: true, heartbeatAt: new Date(sentAt).toISOString() };
    return { key, index: this.index, sentAt, value: JSON.stringify(value) };
  }

  committed(index: number): void {
    this.index = index;
    this.effect = true;
    this.record = { ...this.record, applied: true };
  }

  /** Re-reads the record after its version moved: true (version refreshed) while it has not ended. */
  async reconfirm(): Promise<boolean> {
    if (this.status !== "held") return false;
    const { value, version } = await this.state.read<TaskRecord>(this.taskId);
    if (!value || TERMINAL.has(value.status)) {
      this.status = "lost";
      return false;
    }
    this.record = value;
    this.index = version;
    return true;
  }

  lost(detail?: string): never {
    this.status = "lost";
    throw taskEnded(this.label, detail);
  }

  assertHeld(): void {
    if (this.status === "lost") throw taskEnded(this.label);
  }

  /** Before an effect outside Consul: the record is read now, and must still say the task runs. */
  async verify(): Promise<void> {
    this.assertHeld();
    if (this.state.kvKey(this.taskId) === undefined) return;
    if (!(await this.exclusive(() => this.reconfirm()))) this.lost();
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** The error a task's handler gets once its task was ended elsewhere: nothing more is written. */
export function taskEnded(label: string, detail?: string): MeshError {
  return new MeshError(
    "ABORTED",
    `${label}: this task was already ended by another instance (${detail ?? "this one was paused or cut off from Consul for too long, and the task was reported failed"}); nothing more was written here.`,
  );
}
