// What `mesh tasks` and its subcommands share: a task as tasks/get answers it, the checks of
// the names a command is given, the tasks/* request itself, and how a task is shown and ends.
import * as z from "zod";
import { TASKS_ENVELOPE } from "../../../src/protocol/keys.ts";
import { EXIT } from "../../../src/protocol/codes.ts";
import { UsageError } from "../../common/errors.ts";
import { requireAgent, type MeshSession } from "../mesh.ts";

const AGENT = /^[a-z][a-z0-9-]{0,62}$/;
const TASK_ID = /^[A-Za-z0-9._:-]{1,200}$/;
const AnyResult = z.object({}).passthrough();

/** A task as the agent's tasks/get (or tasks/cancel) answers it. */
export type Task = {
  taskId: string;
  status: string;
  statusMessage?: string;
  pollIntervalMs?: number;
  result?: { isError?: boolean; structuredContent?: unknown; content?: { type: string; text?: string }[] };
  error?: { code: number; message: string };
};

/** A usage error unless `agent` is an agent name and `taskId` (when given) a task id. */
export function checkIds(agent: string, taskId?: string): void {
  if (!AGENT.test(agent)) throw new UsageError(`"${agent}" is not an agent name (lowercase letters, digits and dashes).`);
  if (taskId !== undefined && !TASK_ID.test(taskId))
    throw new UsageError(`"${taskId}" is not a task id (as "mesh call --task" printed it).`);
}

/** One tasks/* request to a healthy instance of the agent (any: task records are shared). */
export async function taskRequest(
  session: MeshSession,
  agent: string,
  method: "tasks/get" | "tasks/cancel",
  taskId: string,
  deadline: number,
): Promise<Task> {
  await requireAgent(session, agent, deadline);
  return (await session.mesh.withAgent(agent, (c) =>
    c.request({ method, params: { taskId, _meta: TASKS_ENVELOPE } } as never, AnyResult, {
      signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
    }),
  )) as unknown as Task;
}

/** A task as text: its status line, and its result or error once it has one. */
export function describeTask(agent: string, t: Task): string {
  const head = `${agent} task ${t.taskId}: ${t.status}${t.statusMessage ? ` — ${t.statusMessage}` : ""}`;
  if (t.status === "completed" && t.result) {
    const body = t.result.structuredContent
      ? JSON.stringify(t.result.structuredContent, null, 2)
      : (t.result.content ?? []).map((c) => c.text ?? `[${c.type}]`).join("\n");
    return `${head}\n${body}`;
  }
  if (t.status === "failed" && t.error) return `${head}\n${t.error.message}`;
  return head;
}

/** Whether a task has ended (completed, failed or cancelled). */
export function hasEnded(t: Task): boolean {
  return t.status === "completed" || t.status === "failed" || t.status === "cancelled";
}

/** Exit status of a finished task: 0 completed, 1 completed with isError, 3 failed or cancelled. */
export function settle(t: Task): void {
  if (t.status === "completed") process.exitCode = t.result?.isError ? EXIT.TOOL_ERROR : EXIT.OK;
  else if (t.status === "failed" || t.status === "cancelled") process.exitCode = EXIT.MESH;
}
