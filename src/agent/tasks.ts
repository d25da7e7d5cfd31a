import { randomUUID } from "node:crypto";
import {
  isInputRequiredResult,
  ProtocolError,
  ProtocolErrorCode,
  type CallToolResult,
  type ClientCapabilities,
} from "@modelcontextprotocol/server";
import { abortable } from "../client/pool.ts";
import { tasksEnded, tasksRunning } from "../telemetry/metrics.ts";
import type { ConsulClient } from "../consul/client.ts";
import type { Logger } from "../logger.ts";
import { MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { ToolOutcome } from "./tools.ts";
import { TASKS_EXTENSION } from "../protocol/keys.ts";
import { MISSING_REQUIRED_CLIENT_CAPABILITY } from "../protocol/codes.ts";
import { TASK_END_RETRY_MS, TASK_HEARTBEAT_MS, TASK_ORPHAN_AFTER_MS, TASK_POLL_INTERVAL_MS, TASK_TTL_MS } from "../protocol/tasks.ts";

/** A task id as this engine makes them (randomUUID): any other is unknown without asking shared state. */
const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type TaskStatus = "working" | "input_required" | "completed" | "failed" | "cancelled";
const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

/** A task as kept in shared state (Consul KV for a registered agent): any replica answers for it. */
export interface TaskRecord {
  taskId: string;
  /** Who created it (principal.ts): only they see it. */
  owner: string;
  tool: string;
  /** The instance running it. */
  instance: string;
  status: TaskStatus;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  /** Refreshed by the running replica every TASK_HEARTBEAT_MS. */
  heartbeatAt: string;
  ttlMs: number;
  pollIntervalMs: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
  /** Outstanding input requests (status input_required). */
  inputRequests?: Record<string, unknown>;
  /** Responses delivered by tasks/update, not yet seen by the handler. */
  inputResponses?: Record<string, unknown>;
  /** Every input request key issued so far: a key is never reused. */
  issued?: string[];
  cancelRequested?: boolean;
}

/**
 * Runs the tool's handler once, with the input responses gathered so far; `report` sets the
 * task's status message (progress: "12 of 51 employees"), written at the next heartbeat.
 */
export type TaskRun = (
  inputResponses: Record<string, unknown> | undefined,
  signal: AbortSignal,
  report: (message: string) => void,
) => Promise<ToolOutcome>;

/** Whether the request's client declared the tasks extension. */
export function declaresTasks(caps: ClientCapabilities): boolean {
  const ext = (caps as { extensions?: Record<string, unknown> }).extensions;
  return Boolean(ext && ext[TASKS_EXTENSION]);
}

/** The -32021 error for a request whose client did not declare the tasks extension. */
export function tasksCapabilityMissing(what: string): ProtocolError {
  return new ProtocolError(
    MISSING_REQUIRED_CLIENT_CAPABILITY as ProtocolErrorCode,
    `Missing required client capability: ${what} needs the ${TASKS_EXTENSION} extension in the request's client capabilities`,
    { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
  );
}

/**
 * Tasks (SEP-2663) for one agent: a tools/call on a tool that supports tasks, from a client
 * that declared the extension, is answered at once with a task handle; the handler runs in
 * the background on this replica, and the task's record (status, input requests, result or
 * error) lives in shared state, so tasks/get, tasks/update and tasks/cancel work on any
 * replica and the result outlives the replica that produced it. A record whose replica stops
 * refreshing it is failed with a message naming that replica.
 */
export class TaskEngine {
  private readonly state: SharedState;
  private readonly instance: () => string;
  private readonly logger: Logger;
  private readonly running = new Map<string, { abort: AbortController; wake: () => void }>();
  /**
   * The last record written for each task this replica runs: if shared state loses it
   * (Consul restarted without its data), this replica still answers for it and writes it
   * back at its next heartbeat.
   */
  private readonly local = new Map<string, TaskRecord>();
  private closing = false;

  constructor(o: { state: SharedState; instance: () => string; logger: Logger }) {
    this.state = o.state;
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
    await this.shared(record.taskId, () => this.state.update<TaskRecord>(record.taskId, () => record));
    this.local.set(record.taskId, record);
    void this.drive(record.taskId, run, gathered);
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
    let record = await this.record(taskId, owner);
    if (!TERMINAL.has(record.status) && !this.running.has(taskId) && Date.now() - Date.parse(record.heartbeatAt) > TASK_ORPHAN_AFTER_MS) {
      // The replica running it is gone: say so, never leave it "working" forever.
      record = await this.finish(taskId, {
        status: "failed",
        error: {
          code: ProtocolErrorCode.InternalError,
          message: `Instance ${record.instance} stopped while running ${record.tool} (no sign of it since ${record.heartbeatAt}); the task did not finish. Start it again.`,
        },
      });
    }
    return record;
  }

  async update(taskId: string, owner: string, inputResponses: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.record(taskId, owner);
    const after = await this.write(taskId, (r) => {
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
    const record = await this.record(taskId, owner);
    if (!TERMINAL.has(record.status)) {
      await this.write(taskId, (r) => ({ ...r, cancelRequested: true }));
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

  private async record(taskId: string, owner: string): Promise<TaskRecord> {
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
  private async write(taskId: string, fn: (r: TaskRecord) => TaskRecord): Promise<TaskRecord> {
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

  /** Runs the handler, again after each round of input, until it ends; keeps the record current. */
  private async drive(taskId: string, run: TaskRun, gathered: Record<string, unknown> | undefined): Promise<void> {
    const abort = new AbortController();
    let wake: () => void = () => undefined;
    this.running.set(taskId, { abort, wake: () => wake() });
    tasksRunning.inc();
    // Heartbeat: the record shows this replica is alive; a cancel or input delivered to another replica is seen here.
    let progress: string | undefined;
    const report = (message: string) => void (progress = message.slice(0, 500));
    const beat = setInterval(() => {
      const message = progress;
      void this.write(taskId, (r) =>
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
          if (r.cancelRequested) abort.abort(new Error("cancelled by tasks/cancel"));
          if (r.inputResponses && Object.keys(r.inputResponses).length > 0 && Object.keys(r.inputRequests ?? {}).length === 0) wake();
        })
        .catch((e: unknown) => this.logger.warn({ taskId, err: describeError(e) }, "cannot refresh the task's record"));
    }, TASK_HEARTBEAT_MS);
    beat.unref();
    let responses: Record<string, unknown> | undefined = gathered;
    try {
      for (;;) {
        const outcome = await abortable(run(responses, abort.signal, report), abort.signal);
        if (!isInputRequiredResult(outcome)) {
          const result = outcome as CallToolResult;
          const summary = result.content?.find((c) => c.type === "text")?.text;
          await this.end(taskId, {
            status: "completed",
            result: plain(result),
            ...(summary ? { statusMessage: summary.slice(0, 500) } : {}),
          });
          return;
        }
        // The handler needs input: park the task until every request has an answer.
        const requests = outcome.inputRequests ?? {};
        const current = await this.write(taskId, (r) => {
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
        if (current.status === "input_required") {
          await new Promise<void>((resolve, reject) => {
            wake = resolve;
            abort.signal.addEventListener("abort", () => reject(abort.signal.reason as Error), { once: true });
          });
        }
        const r = await this.write(taskId, (x) => ({
          ...x,
          status: "working",
          statusMessage: `${x.tool} is running.`,
          inputRequests: {},
          lastUpdatedAt: new Date().toISOString(),
        }));
        responses = { ...responses, ...r.inputResponses };
      }
    } catch (e) {
      if (abort.signal.aborted) {
        await this.end(taskId, { status: "cancelled", statusMessage: "Cancelled at the client's request." }).catch(() => undefined);
        return;
      }
      const error = this.taskError(taskId, e);
      await this.end(taskId, { status: "failed", error }).catch((err: unknown) =>
        this.logger.warn({ taskId, err: describeError(err) }, "cannot record the task's failure"),
      );
    } finally {
      clearInterval(beat);
      tasksRunning.dec();
      this.running.delete(taskId);
      this.local.delete(taskId);
    }
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
    const record = await this.write(taskId, (r) => {
      ended = !TERMINAL.has(r.status);
      if (!ended) return r; // the first ending wins
      const { inputRequests: _drop, inputResponses: _done, ...rest } = r;
      return { ...rest, ...end, lastUpdatedAt: new Date().toISOString() };
    });
    if (ended) tasksEnded.inc({ tool: record.tool, status: record.status });
    return record;
  }
}

/** The handle a tools/call returns (CreateTaskResult = Result & Task), without internal fields. */
function wire(r: TaskRecord): Record<string, unknown> {
  return {
    taskId: r.taskId,
    status: r.status,
    ...(r.statusMessage ? { statusMessage: r.statusMessage } : {}),
    createdAt: r.createdAt,
    lastUpdatedAt: r.lastUpdatedAt,
    ttlMs: r.ttlMs,
    pollIntervalMs: r.pollIntervalMs,
  };
}

/** A DetailedTask: the task with its status's payload inlined. */
function detailed(r: TaskRecord): Record<string, unknown> {
  return {
    ...wire(r),
    ...(r.status === "completed" && r.result ? { result: r.result } : {}),
    ...(r.status === "failed" && r.error ? { error: r.error } : {}),
    ...(r.status === "input_required" ? { inputRequests: r.inputRequests ?? {} } : {}),
  };
}

/** A tool result as a task keeps it: without resultType (on tasks/get that is the task's own). */
function plain(result: CallToolResult): Record<string, unknown> {
  const { resultType: _rt, ...rest } = result as CallToolResult & { resultType?: string };
  return rest;
}

/** Deletes the task records under `prefix` whose TTL has passed (CAS: a record changed meanwhile is kept). */
export async function sweepTaskRecords(consul: ConsulClient, prefix: string, now = Date.now()): Promise<number> {
  let deleted = 0;
  for (const key of await consul.kvKeys(prefix)) {
    const entry = await consul.kvGet(key);
    if (!entry) continue;
    let expired: boolean;
    try {
      const r = JSON.parse(entry.value) as Partial<TaskRecord>;
      expired = Date.parse(r.createdAt ?? "") + (r.ttlMs ?? 0) < now;
    } catch {
      expired = false; // not ours to judge
    }
    if (expired && (await consul.kvDelete(key, { cas: entry.modifyIndex }))) deleted++;
  }
  return deleted;
}
