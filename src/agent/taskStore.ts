import { ProtocolError, ProtocolErrorCode } from "@modelcontextprotocol/server";
import type { Logger } from "../logger.ts";
import { MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import type { SharedState } from "../state/sharedState.ts";
import { TaskFence } from "./taskFence.ts";
import type { TaskRecord } from "./tasks.ts";

/** A task id as the engine makes them (randomUUID): any other is unknown without asking shared state. */
const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The task records of one agent in shared state (Consul KV for a registered agent), with this
 * replica's own copy of the records of the tasks it runs: if shared state loses one (Consul
 * restarted without its data), this replica still answers for it and writes it back.
 */
export class TaskStore {
  private readonly state: SharedState;
  private readonly logger: Logger;
  /** The last record written for each task this replica runs. */
  private readonly local = new Map<string, TaskRecord>();

  constructor(state: SharedState, logger: Logger) {
    this.state = state;
    this.logger = logger;
  }

  /**
   * Writes a new task's record (durably: a read of it resolves before this returns); this
   * replica runs it. Returns the fence its handler's writes go through.
   */
  async create(record: TaskRecord, label: string): Promise<TaskFence> {
    const index = await this.shared(record.taskId, () => this.state.writeIf<TaskRecord>(record.taskId, record, 0));
    if (index === undefined) throw new Error(`task id ${record.taskId} is taken (a random UUID twice?)`);
    this.local.set(record.taskId, record);
    return new TaskFence({ state: this.state, record, index, label });
  }

  /** A task of `owner`'s, unexpired; any other id is refused as unknown. */
  async read(taskId: string, owner: string): Promise<TaskRecord> {
    // An id this engine never makes is unknown: no shared-state key is built from it.
    const r = TASK_ID.test(taskId)
      ? ((await this.shared(taskId, () => this.state.get<TaskRecord>(taskId))) ?? this.local.get(taskId))
      : undefined;
    // Another caller's task is answered exactly as one that does not exist: its id tells nothing.
    if (!r || r.owner !== owner || Date.parse(r.createdAt) + r.ttlMs < Date.now()) {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        `Unknown task "${taskId}" (never created here, or expired after its ttlMs).`,
      );
    }
    return r;
  }

  /**
   * Read-modify-write of a task's record. A record shared state no longer has (Consul lost
   * its data) is written again from this replica's copy when it runs the task, with a warning.
   */
  async write(taskId: string, fn: (r: TaskRecord) => TaskRecord): Promise<TaskRecord> {
    let restored = false;
    const next = await this.shared(taskId, () =>
      this.state.update<TaskRecord>(taskId, (r) => {
        const cur = r ?? this.local.get(taskId);
        restored = r === undefined && cur !== undefined;
        if (!cur) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown task "${taskId}" (it expired after its ttlMs).`);
        return fn(cur);
      }),
    );
    if (restored)
      this.logger.warn(
        { taskId, tool: next.tool },
        "a running task's record was gone from Consul (Consul lost its data?); written again from this replica's copy",
      );
    if (this.local.has(taskId)) this.local.set(taskId, next);
    return next;
  }

  /** This replica no longer runs the task: its copy is dropped. */
  forget(taskId: string): void {
    this.local.delete(taskId);
  }

  /**
   * A request to shared state. Its failure is told to callers as a mesh failure (-32017, with
   * the error's code and whether a retry may succeed), never as "unknown task", and without
   * Consul's address or key paths (those go to the log).
   */
  private async shared<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!isMeshError(e)) throw e;
      this.logger.warn({ taskId, code: e.code, err: describeError(e) }, "cannot read or write task records");
      throw new ProtocolError(
        MESH_FAILURE_ERROR_CODE as ProtocolErrorCode,
        e.retryable
          ? "Task records cannot be reached right now (this agent cannot reach its Consul); a running task keeps running. Ask again shortly."
          : `This agent cannot read or write its task records (${e.code}); the reason is in its log.`,
        { code: e.code, retryable: e.retryable },
      );
    }
  }
}
