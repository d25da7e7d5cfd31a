import { randomUUID } from "node:crypto";
import { isInputRequiredResult, ProtocolError, ProtocolErrorCode, type CallToolResult } from "@modelcontextprotocol/server";
import { abortable } from "../client/pool.ts";
import type { Logger } from "../logger.ts";
import { MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { TASK_END_RETRY_MS, TASK_ORPHAN_AFTER_MS, TASK_POLL_INTERVAL_MS, TASK_TTL_MS } from "../protocol/tasks.ts";
import { withFence } from "../state/fence.ts";
import type { SharedState } from "../state/sharedState.ts";
import { tasksEnded, tasksRunning } from "../telemetry/metrics.ts";
import { RunningTask } from "./runningTask.ts";
import { detailed, plain, TERMINAL, wire, type TaskRecord, type TaskRun, type TaskStatus } from "./tasks.ts";
import type { TaskFence } from "./taskFence.ts";
import { TaskStore } from "./taskStore.ts";
import type { ToolOutcome } from "./tools.ts";

/**
 * Tasks (SEP-2663) for one agent: a tools/call on a tool that supports tasks, from a client
 * that declared the extension, is answered at once with a task handle; the handler runs in
 * the background on this replica, and the task's record (status, input requests, result or
 * error) lives in shared state, so tasks/get, tasks/update and tasks/cancel work on any
 * replica and the result outlives the replica that produced it. A record whose replica stops
 * refreshing it is failed with a message naming that replica.
 */
export class TaskEngine {
  private readonly store: TaskStore;
  private readonly instance: () => string;
  private readonly logger: Logger;
  private readonly running = new Map<string, RunningTask>();
  private closing = false;

  constructor(o: { state: SharedState; instance: () => string; logger: Logger }) {
    this.store = new TaskStore(o.state, o.logger);
    this.instance = o.instance;
    this.logger = o.logger;
  }

  /** Creates the task (durably: a tasks/get for it resolves before this returns) and starts it. */
  async create(tool: string, owner: string, gathered: Record<string, unknown> | undefined, run: TaskRun): Promise<Record<string, unknown>> {
    const now = new Date().toISOString();
    const record: TaskRecord = {
      taskId: randomUUID(),
      owner,
      tool,
      instance: this.instance(),
      status: "working",
      statusMessage: `${tool} is running.`,
      createdAt: now,
      lastUpdatedAt: now,
      heartbeatAt: now,
      ttlMs: TASK_TTL_MS,
      pollIntervalMs: TASK_POLL_INTERVAL_MS,
    };
    const fence = await this.store.create(record, `${tool} (task ${record.taskId})`);
    void this.drive(record.taskId, run, gathered, fence);
    return { resultType: "task", ...wire(record) };
  }

  async get(taskId: string, owner: string): Promise<Record<string, unknown>> {
    return { resultType: "complete", ...detailed(await this.now(taskId, owner)) };
  }

  /**
   * A task handle as it is now. A repeated keyed call is answered with the handle its first
   * call returned (the idempotency ledger keeps it); the task may have moved on since (failed,
   * completed): this is the handle with the task's current status, its result or error inlined.
   * Anything that is not a task handle of this engine is returned as it is.
   */
  async current(outcome: ToolOutcome, owner: string): Promise<ToolOutcome> {
    const handle = outcome as { resultType?: unknown; taskId?: unknown };
    if (handle.resultType !== "task" || typeof handle.taskId !== "string") return outcome;
    try {
      return { resultType: "task", ...detailed(await this.now(handle.taskId, owner)) } as unknown as ToolOutcome;
    } catch (e) {
      this.logger.warn(
        { taskId: handle.taskId, err: describeError(e) },
        "cannot read a replayed task's record; answering its first handle",
      );
      return outcome;
    }
  }

  /** The task's record, failed first if the replica running it is gone. */
  private async now(taskId: string, owner: string): Promise<TaskRecord> {
    let record = await this.store.read(taskId, owner);
    if (!TERMINAL.has(record.status) && !this.running.has(taskId) && Date.now() - Date.parse(record.heartbeatAt) > TASK_ORPHAN_AFTER_MS) {
      // The replica running it is gone: say so, never leave it "working" forever.
      record = await this.finish(taskId, {
        status: "failed",
        error: {
          code: ProtocolErrorCode.InternalError,
          message: record.applied
            ? `Instance ${record.instance} stopped while running ${record.tool} (no sign of it since ${record.heartbeatAt}), after the task recorded a change; it did not report its result. Check what it changed before starting it again.`
            : `Instance ${record.instance} stopped while running ${record.tool} (no sign of it since ${record.heartbeatAt}); the task did not finish and changed nothing. Start it again.`,
        },
      });
    }
    return record;
  }

  async update(taskId: string, owner: string, inputResponses: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.store.read(taskId, owner);
    const after = await this.store.write(taskId, (r) => {
      if (r.status !== "input_required") return r;
      // Only responses to outstanding requests count; others are ignored (SEP-2663).
      const outstanding = r.inputRequests ?? {};
      const accepted = Object.fromEntries(Object.entries(inputResponses).filter(([k]) => k in outstanding));
      const left = Object.fromEntries(Object.entries(outstanding).filter(([k]) => !(k in accepted)));
      return { ...r, inputRequests: left, inputResponses: { ...r.inputResponses, ...accepted }, lastUpdatedAt: new Date().toISOString() };
    });
    // Every outstanding request answered: the handler runs again (here, or on the running replica at its next heartbeat).
    if (after.status === "input_required" && Object.keys(after.inputRequests ?? {}).length === 0) this.running.get(taskId)?.wake();
    return { resultType: "complete" };
  }

  async cancel(taskId: string, owner: string): Promise<Record<string, unknown>> {
    const record = await this.store.read(taskId, owner);
    if (!TERMINAL.has(record.status)) {
      await this.store.write(taskId, (r) => ({ ...r, cancelRequested: true }));
      this.running.get(taskId)?.abort.abort(new Error("cancelled by tasks/cancel"));
    }
    return { resultType: "complete" };
  }

  /** Aborts the tasks this replica runs (shutdown); their records say so. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.running.keys()].map((id) =>
        this.finish(id, {
          status: "failed",
          error: {
            code: ProtocolErrorCode.InternalError,
            message: `Instance ${this.instance()} shut down while running this task; start it again.`,
          },
        }).catch(() => undefined),
      ),
    );
    for (const r of this.running.values()) r.abort.abort(new Error("shutting down"));
  }

  /** Runs the handler, again after each round of input, until it ends; keeps the record current. */
  private async drive(taskId: string, run: TaskRun, gathered: Record<string, unknown> | undefined, fence: TaskFence): Promise<void> {
    const task = new RunningTask(taskId, this.store, this.logger);
    this.running.set(taskId, task);
    tasksRunning.inc();
    let responses: Record<string, unknown> | undefined = gathered;
    try {
      for (;;) {
        // Every shared-state write of the handler is fenced by the task's record (taskFence.ts).
        const outcome = await abortable(
          withFence(fence, () => run(responses, task.signal, task.report)),
          task.signal,
        );
        if (!isInputRequiredResult(outcome)) return await this.complete(taskId, outcome as CallToolResult);
        responses = { ...responses, ...(await this.awaitInput(task, taskId, outcome.inputRequests ?? {})) };
      }
    } catch (e) {
      await this.endAfterThrow(task, taskId, e);
    } finally {
      task.stop();
      tasksRunning.dec();
      this.running.delete(taskId);
      this.store.forget(taskId);
    }
  }

  /** The handler's result: the task completed, its first text as the status message. */
  private async complete(taskId: string, result: CallToolResult): Promise<void> {
    const summary = result.content?.find((c) => c.type === "text")?.text;
    await this.end(taskId, {
      status: "completed",
      result: plain(result),
      ...(summary ? { statusMessage: summary.slice(0, 500) } : {}),
    });
  }

  /**
   * The handler needs input: the task is parked until every request has an answer (here, or
   * delivered to another replica and seen at a heartbeat), then runs again. Returns the input
   * responses delivered so far.
   */
  private async awaitInput(
    task: RunningTask,
    taskId: string,
    requests: Record<string, unknown>,
  ): Promise<Record<string, unknown> | undefined> {
    const current = await this.store.write(taskId, (r) => {
      const answered = r.inputResponses ?? {};
      const pending = Object.fromEntries(Object.entries(requests).filter(([k]) => !(k in answered)));
      return {
        ...r,
        status: Object.keys(pending).length ? "input_required" : "working",
        statusMessage: Object.keys(pending).length ? "Waiting for the client's input." : `${r.tool} is running.`,
        inputRequests: pending,
        issued: [...new Set([...(r.issued ?? []), ...Object.keys(requests)])],
        lastUpdatedAt: new Date().toISOString(),
      };
    });
    if (current.status === "input_required") await task.inputArrived();
    const r = await this.store.write(taskId, (x) => ({
      ...x,
      status: "working",
      statusMessage: `${x.tool} is running.`,
      inputRequests: {},
      lastUpdatedAt: new Date().toISOString(),
    }));
    return r.inputResponses;
  }

  /** The handler threw, or the task was aborted: it ends cancelled, or failed with the error it reports. */
  private async endAfterThrow(task: RunningTask, taskId: string, e: unknown): Promise<void> {
    if (task.signal.aborted) {
      await this.end(taskId, { status: "cancelled", statusMessage: "Cancelled at the client's request." }).catch(() => undefined);
      return;
    }
    const error = this.taskError(taskId, e);
    await this.end(taskId, { status: "failed", error }).catch((err: unknown) =>
      this.logger.warn({ taskId, err: describeError(err) }, "cannot record the task's failure"),
    );
  }

  /**
   * Records the end of a task this replica ran. While shared state is unreachable it keeps
   * trying (backoff up to 5 s, for TASK_END_RETRY_MS), the heartbeat going, so a result is not
   * lost to a Consul that is restarting; the record is written back if Consul lost it.
   */
  private async end(taskId: string, end: Partial<TaskRecord> & { status: TaskStatus }): Promise<void> {
    const since = Date.now();
    for (let pause = 250, said = false; ; pause = Math.min(pause * 2, 5_000)) {
      try {
        await this.finish(taskId, end);
        if (said) this.logger.info({ taskId, status: end.status }, "the task's end is recorded");
        return;
      } catch (e) {
        const retryable = e instanceof ProtocolError && (e.data as { retryable?: unknown } | undefined)?.retryable === true;
        if (!retryable || this.closing || Date.now() - since > TASK_END_RETRY_MS) throw e;
        if (!said) this.logger.warn({ taskId, status: end.status }, "the task ended; recording its end once its Consul answers again");
        said = true;
        await new Promise((r) => setTimeout(r, pause).unref());
      }
    }
  }

  /**
   * The error a failed task reports. A failure of the agent's Consul under the handler is said
   * without Consul's address or key paths (the log has them).
   */
  private taskError(taskId: string, e: unknown): NonNullable<TaskRecord["error"]> {
    const code = isMeshError(e) ? e.code : e instanceof ProtocolError ? (e.data as { code?: unknown } | undefined)?.code : undefined;
    if (typeof code === "string" && code.startsWith("CONSUL_")) {
      this.logger.warn({ taskId, code, err: describeError(e) }, "a task failed: its agent's Consul failed under it");
      return {
        code: e instanceof ProtocolError ? e.code : MESH_FAILURE_ERROR_CODE,
        message: `The task could not finish: this agent's Consul failed under it (${code}). Start it again.`,
        data: { code, retryable: true },
      };
    }
    if (e instanceof ProtocolError) return { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) };
    if (isMeshError(e)) return { code: ProtocolErrorCode.InternalError, message: e.message, data: { code: e.code } };
    return { code: ProtocolErrorCode.InternalError, message: describeError(e) };
  }

  private async finish(taskId: string, end: Partial<TaskRecord> & { status: TaskStatus }): Promise<TaskRecord> {
    let ended = false;
    const record = await this.store.write(taskId, (r) => {
      ended = !TERMINAL.has(r.status);
      if (!ended) return r; // the first ending wins
      const { inputRequests: _drop, inputResponses: _done, ...rest } = r;
      return { ...rest, ...end, lastUpdatedAt: new Date().toISOString() };
    });
    if (ended) tasksEnded.inc({ tool: record.tool, status: record.status });
    return record;
  }
}
