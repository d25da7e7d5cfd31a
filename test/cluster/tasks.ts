// Durable tasks in the cluster test: a payroll started on a chosen instance, what a caller is
// told about it while its replica is cut off or paused, and its record once everything is back.
import type { Lab } from "../../orchestrator/launcher/lab.ts";
import { bound } from "../helpers/eventually.ts";
import { pause, rpc } from "./load.ts";

/** A task's record as finance keeps it in Consul KV (the fields the test reads). */
export interface TaskRecordView {
  taskId: string;
  instance: string;
  status: string;
  heartbeatAt: string;
  error?: { message: string };
  result?: { structuredContent?: { recordedAt?: string } };
}

/** One answer a caller got to tasks/get: a status, or an error (with whether it said to retry). */
export interface TaskAnswer {
  atMs: number;
  status?: string;
  error?: string;
  unknownTask?: boolean;
  retryable?: boolean;
}

/** The task's record, read from Consul KV through a host's client agent (undefined while there is none). */
export async function taskRecord(lab: Lab, taskId: string, host = "h3"): Promise<TaskRecordView | undefined> {
  const c = lab.consulClient(lab.client(host));
  try {
    const e = await c.kvGet(`toolmesh/tasks/finance/${taskId}`);
    return e ? (JSON.parse(e.value) as TaskRecordView) : undefined;
  } finally {
    c.destroy();
  }
}

/** How many payroll tasks payrollOn starts before giving up on landing one on a chosen replica. */
const PAYROLL_TRIES = 40;

/**
 * Starts `finance.run_payroll` as a task through `gateway` until one lands on `instance` (the
 * gateway places it; tasks placed elsewhere are cancelled at once), and waits for its first
 * heartbeat in Consul. Returns the task id.
 */
export async function payrollOn(lab: Lab, gateway: string, instance: string, month: string, paceMs: number): Promise<string> {
  // The gateway's placement spreads calls over three replicas under load: 40 tries miss one
  // replica with a chance of about (2/3)^40, far below one run in a million.
  for (let attempt = 0; attempt < PAYROLL_TRIES; attempt++) {
    const created = await rpc(gateway, "finance", "tools/call", { name: "run_payroll", arguments: { month, pace_ms: paceMs } });
    const taskId = created.result?.["taskId"];
    if (typeof taskId !== "string") throw new Error(`run_payroll did not start a task: ${JSON.stringify(created)}`);
    const record = await taskRecord(lab, taskId);
    if (record?.instance === instance) {
      await lab.waitFor(`task ${taskId}'s first heartbeat`, async () => {
        const r = await taskRecord(lab, taskId);
        return r !== undefined && Date.parse(r.heartbeatAt) > Date.parse(record.heartbeatAt);
      });
      return taskId;
    }
    await rpc(gateway, "finance", "tasks/cancel", { taskId });
  }
  throw new Error(`no run_payroll task landed on ${instance} in ${PAYROLL_TRIES} tries`);
}

/** tasks/get through a gateway, as a caller sees it. */
export async function askTask(gateway: string, taskId: string, since: number): Promise<TaskAnswer> {
  const atMs = Date.now() - since;
  try {
    const r = await rpc(gateway, "finance", "tasks/get", { taskId }, {}, 15_000);
    if (r.error) {
      return {
        atMs,
        error: `${r.error.code} ${r.error.message}`,
        unknownTask: r.error.code === -32602,
        retryable: r.error.data?.["retryable"] === true,
      };
    }
    const error = r.result?.["error"] as { message?: string } | undefined;
    return { atMs, status: String(r.result?.["status"]), ...(error?.message ? { error: error.message } : {}) };
  } catch (e) {
    return { atMs, error: `transport ${(e as Error).message}`, retryable: true };
  }
}

/**
 * Asks a gateway about a task until it is reported ended; every answer on the way is kept (a
 * caller must always get one: a status, or an error that says to ask again).
 */
export async function untilEnded(gateway: string, taskId: string, since: number, answers: TaskAnswer[]): Promise<TaskAnswer> {
  const deadline = Date.now() + bound(90_000);
  for (;;) {
    const a = await askTask(gateway, taskId, since);
    answers.push(a);
    if (a.status && ["completed", "failed", "cancelled"].includes(a.status)) return a;
    if (Date.now() > deadline) throw new Error(`task ${taskId} not reported ended; answers: ${JSON.stringify(answers)}`);
    await pause(500);
  }
}

/** How many tasks a toolmesh process runs now, from its /metrics (undefined while it cannot be reached). */
export async function tasksRunning(url: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(new URL("/metrics", url), { signal: AbortSignal.timeout(5_000) })).text();
    const m = /^toolmesh_tasks_running(?:\{[^}]*\})? (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return undefined;
  }
}

/** The payroll recorded for a month (finance's shared state), or undefined. */
export async function payrollRecord(lab: Lab, month: string): Promise<{ recordedAt: string } | undefined> {
  const c = lab.consulClient(lab.client("h3"));
  try {
    const e = await c.kvGet(`toolmesh/state/finance/payroll/${month}`);
    return e ? (JSON.parse(e.value) as { recordedAt: string }) : undefined;
  } finally {
    c.destroy();
  }
}
