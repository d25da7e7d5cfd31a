import { ProtocolError, type CallToolResult, type ClientCapabilities, type ProtocolErrorCode } from "@modelcontextprotocol/server";
import type { ConsulClient } from "../consul/client.ts";
import { MISSING_REQUIRED_CLIENT_CAPABILITY } from "../protocol/codes.ts";
import { TASKS_EXTENSION } from "../protocol/keys.ts";
import type { ToolOutcome } from "./tools.ts";

/*
 * What a task is (SEP-2663): its record in shared state, the forms it takes on the wire, the
 * extension a client declares for it, and the sweep of expired records. Running tasks is the
 * TaskEngine's (taskEngine.ts).
 */

export type TaskStatus = "working" | "input_required" | "completed" | "failed" | "cancelled";
/** The statuses a task ends in: the first ending recorded wins. */
export const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

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
  /** An effect of the handler committed (fenced by this record: agent/taskFence.ts). */
  applied?: boolean;
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

/** The handle a tools/call returns (CreateTaskResult = Result & Task), without internal fields. */
export function wire(r: TaskRecord): Record<string, unknown> {
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
export function detailed(r: TaskRecord): Record<string, unknown> {
  return {
    ...wire(r),
    ...(r.status === "completed" && r.result ? { result: r.result } : {}),
    ...(r.status === "failed" && r.error ? { error: r.error } : {}),
    ...(r.status === "input_required" ? { inputRequests: r.inputRequests ?? {} } : {}),
  };
}

/** A tool result as a task keeps it: without resultType (on tasks/get that is the task's own). */
export function plain(result: CallToolResult): Record<string, unknown> {
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
