// `mesh call`: what the command prints and exits with, for a tool's result or a task's handle.
import type { CallToolResult } from "@modelcontextprotocol/client";
import * as z from "zod";
import { TASKS_ENVELOPE } from "../../../src/protocol/keys.ts";
import { EXIT } from "../../../src/protocol/codes.ts";
import { ToolError } from "../../common/errors.ts";
import { print, type MeshFlags, type MeshSession } from "../mesh.ts";
import type { CallRequest } from "./callRequest.ts";

const AnyResult = z.object({}).passthrough();

/** What a call run as a task (--task) answers, or tasks/get says of it later. */
export type TaskHandle = {
  resultType?: string;
  taskId?: string;
  status?: string;
  statusMessage?: string;
  result?: { isError?: boolean };
  error?: { code: number; message: string };
};

/** Prints a tool's result (stdout) and who answered (stderr); a result with isError is a ToolError (exit 1). */
export function report(flags: MeshFlags, target: string, result: CallToolResult, instance: string, traceId: string): void {
  const text = result.content
    .map((c) => (c.type === "text" ? c.text : `[${c.type}]`))
    .join("\n")
    .trim();
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ target, instance, traceId, isError: Boolean(result.isError), structuredContent: result.structuredContent ?? null, content: result.content }, null, 2)}\n`,
    );
  } else if (!result.isError) {
    process.stdout.write(`${result.structuredContent ? JSON.stringify(result.structuredContent, null, 2) : text}\n`);
  }
  process.stderr.write(`${target} answered by ${instance} · trace ${traceId}\n`);
  if (result.isError) throw new ToolError(text || `${target} failed`);
}

/**
 * Prints where a call that runs as a task is: running (how to follow it), or, for a keyed
 * call answered with an earlier call's task that has ended since, how it ended (exit 3 if it
 * failed or was cancelled, 1 if its result is an error).
 */
export async function reportTask(
  session: MeshSession,
  req: CallRequest,
  handle: TaskHandle,
  instance: string,
  traceId: string,
): Promise<void> {
  const { flags, target, agent } = req;
  // With a key, the handle may be the first call's, replayed: ask where the task is now.
  const task = flags.idempotencyKey ? await currentTask(session, agent, handle, req.deadline) : handle;
  if (task.status === "completed" || task.status === "failed" || task.status === "cancelled") {
    const problem = task.status === "failed" ? task.error?.message : task.status === "cancelled" ? task.statusMessage : undefined;
    print(
      flags,
      { target, instance, traceId, task },
      () =>
        `${target} ran as task ${task.taskId} with this idempotency key; it is ${task.status}${problem ? `: ${problem}` : "."}` +
        `\nIts result:  mesh tasks get ${agent} ${task.taskId}`,
    );
    if (task.status !== "completed") process.exitCode = EXIT.MESH;
    else if (task.result?.isError) process.exitCode = EXIT.TOOL_ERROR;
    return;
  }
  print(
    flags,
    { target, instance, traceId, task: { taskId: task.taskId, status: task.status, statusMessage: task.statusMessage } },
    () =>
      `${target} runs as task ${task.taskId} (${task.status ?? "working"}) on ${instance}.\nFollow it:  mesh tasks wait ${agent} ${task.taskId}`,
  );
}

/**
 * The task as it is now (tasks/get), for a handle a keyed call returned: a repeat of the
 * call is answered with its first handle, and the task may have ended since. The handle as
 * it is when the task cannot be asked about.
 */
async function currentTask(session: MeshSession, agent: string, handle: TaskHandle, deadline: number): Promise<TaskHandle> {
  try {
    const now = (await session.mesh.withAgent(agent, (c) =>
      c.request({ method: "tasks/get", params: { taskId: handle.taskId, _meta: TASKS_ENVELOPE } } as never, AnyResult, {
        signal: AbortSignal.timeout(Math.max(1, Math.min(deadline - Date.now(), 5_000))),
      }),
    )) as unknown as TaskHandle;
    const { resultType: _complete, ...task } = now;
    return { ...handle, ...task };
  } catch {
    return handle;
  }
}
