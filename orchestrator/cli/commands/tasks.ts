import { ProtocolError, ProtocolErrorCode, SdkError } from "@modelcontextprotocol/client";
import { Command } from "commander";
import * as z from "zod";
import { type TaskRecord } from "../../../src/agent/tasks.ts";
import { TASKS_ENVELOPE } from "../../../src/protocol/keys.ts";
import { TASKS_KV_PREFIX } from "../../../src/agent/run.ts";
import { describeError, isMeshError, MeshError } from "../../../src/protocol/errors.ts";
import { EXIT, MESH_FAILURE_ERROR_CODE } from "../../../src/protocol/codes.ts";
import { UsageError } from "../../common/errors.ts";
import { addMeshOptions, print, requireAgent, withMesh, type MeshFlags, type MeshSession } from "../mesh.ts";
import { parseTimeout } from "../../common/options.ts";
import { formatTable } from "../table.ts";

const AGENT = /^[a-z][a-z0-9-]{0,62}$/;
const TASK_ID = /^[A-Za-z0-9._:-]{1,200}$/;
const AnyResult = z.object({}).passthrough();

type Task = {
  taskId: string;
  status: string;
  statusMessage?: string;
  pollIntervalMs?: number;
  result?: { isError?: boolean; structuredContent?: unknown; content?: { type: string; text?: string }[] };
  error?: { code: number; message: string };
};

function checkIds(agent: string, taskId?: string): void {
  if (!AGENT.test(agent)) throw new UsageError(`"${agent}" is not an agent name (lowercase letters, digits and dashes).`);
  if (taskId !== undefined && !TASK_ID.test(taskId))
    throw new UsageError(`"${taskId}" is not a task id (as "mesh call --task" printed it).`);
}

/** One tasks/* request to a healthy instance of the agent (any: task records are shared). */
async function taskRequest(
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

function describeTask(agent: string, t: Task): string {
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

/** First pause of `mesh tasks wait` after a transient error; doubles up to WAIT_RETRY_MAX_MS. @default 250 */
export const WAIT_RETRY_FIRST_MS = 250;
/** Longest pause between retries of `mesh tasks wait`. @default 5000 */
export const WAIT_RETRY_MAX_MS = 5_000;
/**
 * How long `mesh tasks wait` keeps asking for a task it has seen that is suddenly unknown
 * (its Consul lost its data: the replica running it writes its record back at its next
 * heartbeat) or for an agent Consul suddenly does not know (it registers again within
 * seconds). @default 20000
 */
export const WAIT_VANISHED_GRACE_MS = 20_000;

/**
 * Whether an error of one tasks/get may pass: a retryable mesh error (Consul unreachable or
 * without a leader, no healthy instance yet, an instance not answering), the agent's own
 * retryable mesh failure (-32017), a transport error; and, for a task already seen, "unknown"
 * task or agent for a while (a Consul that restarted without its data). Before the task has
 * answered once, an unreachable Consul fails the command at once (a wrong --consul, most likely).
 */
function transient(e: unknown, seen: boolean): boolean {
  // A Consul that never answered this wait is more likely the wrong address: said at once, as every command does.
  if (isMeshError(e)) return e.retryable && (seen || e.code !== "CONSUL_UNREACHABLE");
  if (e instanceof ProtocolError) {
    if (e.code === MESH_FAILURE_ERROR_CODE) return (e.data as { retryable?: unknown } | undefined)?.retryable === true;
    return seen && e.code === ProtocolErrorCode.InvalidParams && /Unknown task/.test(e.message);
  }
  if (e instanceof UsageError) return seen && /^Unknown agent/.test(e.message);
  return e instanceof SdkError;
}

/** Exit status of a finished task: 0 completed, 1 completed with isError, 3 failed or cancelled. */
function settle(t: Task): void {
  if (t.status === "completed") process.exitCode = t.result?.isError ? EXIT.TOOL_ERROR : EXIT.OK;
  else if (t.status === "failed" || t.status === "cancelled") process.exitCode = EXIT.MESH;
}

export function tasksCommand(): Command {
  const tasks = new Command("tasks").description("long-running calls that run as tasks (mesh call --task): list, get, wait, cancel");
  tasks.addCommand(
    addMeshOptions(
      new Command("list").description("tasks recorded in Consul, newest first").argument("[agent]", "only this agent's tasks"),
    ).action(async (agent: string | undefined, flags: MeshFlags) => {
      if (agent !== undefined) checkIds(agent);
      await withMesh(
        flags,
        async ({ consul }) => {
          const keys = await consul.kvKeys(`${TASKS_KV_PREFIX}${agent ? `${agent}/` : ""}`, { timeoutMs: 5_000 });
          const records = (
            await Promise.all(
              keys.map(async (key) => {
                const entry = await consul.kvGet(key, { timeoutMs: 5_000 });
                try {
                  return entry
                    ? { agent: key.slice(TASKS_KV_PREFIX.length).split("/")[0]!, ...(JSON.parse(entry.value) as TaskRecord) }
                    : undefined;
                } catch {
                  return undefined;
                }
              }),
            )
          )
            .filter((r): r is TaskRecord & { agent: string } => r !== undefined && typeof r.taskId === "string")
            .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
          const rows = records.map((r) => ({
            agent: r.agent,
            taskId: r.taskId,
            tool: r.tool,
            status: r.status,
            statusMessage: r.statusMessage ?? "",
            instance: r.instance,
            createdAt: r.createdAt,
          }));
          print(flags, rows, () =>
            rows.length === 0
              ? "No tasks recorded."
              : formatTable(
                  ["AGENT", "TASK", "TOOL", "STATUS", "MESSAGE", "INSTANCE", "CREATED"],
                  rows.map((r) => [r.agent, r.taskId, r.tool, r.status, r.statusMessage.slice(0, 48), r.instance, r.createdAt]),
                ),
          );
        },
        { catalog: "none" },
      );
    }),
  );
  tasks.addCommand(
    addMeshOptions(
      new Command("get").description("a task's status, and its result once it has one").argument("<agent>").argument("<taskId>"),
    )
      .option("--timeout <ms>", "deadline for the answer", "10000")
      .action(async (agent: string, taskId: string, flags: MeshFlags & { timeout: string }) => {
        checkIds(agent, taskId);
        const deadline = Date.now() + parseTimeout(flags.timeout);
        await withMesh(
          flags,
          async (session) => {
            const t = await taskRequest(session, agent, "tasks/get", taskId, deadline);
            print(flags, t, () => describeTask(agent, t));
            settle(t);
          },
          { catalog: "on-demand" },
        );
      }),
  );
  tasks.addCommand(
    addMeshOptions(
      new Command("wait")
        .description("follow a task until it ends (a progress bar on a terminal, a line per change otherwise)")
        .argument("<agent>")
        .argument("<taskId>"),
    )
      .option("--timeout <ms>", "give up waiting after this long (the task keeps running)", "3600000")
      .action(async (agent: string, taskId: string, flags: MeshFlags & { timeout: string }) => {
        checkIds(agent, taskId);
        const deadline = Date.now() + parseTimeout(flags.timeout);
        const tty = process.stderr.isTTY && !flags.json;
        let seen = false;
        let last = "";
        let failing: string | undefined;
        let failingSince = 0;
        let pause = WAIT_RETRY_FIRST_MS;
        // A transient error (Consul restarting, a leader election, an instance going away) is
        // ridden out with backoff until --timeout, saying so on stderr; the task keeps running.
        const retry = async (e: unknown): Promise<void> => {
          const now = Date.now();
          const vanished =
            !isMeshError(e) && !(e instanceof SdkError) && !(e instanceof ProtocolError && e.code === MESH_FAILURE_ERROR_CODE);
          if (failing === undefined) failingSince = now;
          if (!transient(e, seen) || now >= deadline || (vanished && now - failingSince > WAIT_VANISHED_GRACE_MS)) {
            if (vanished && seen)
              throw new MeshError(
                "CONSUL_REJECTED",
                `${describeError(e)} It answered earlier in this wait: its Consul may have lost its data (a restarted -dev agent keeps nothing), and nothing wrote it back within ${WAIT_VANISHED_GRACE_MS / 1_000} s. Where the task ended is unknown here; see "mesh tasks list" and the agent's log.`,
              );
            throw e;
          }
          const why = describeError(e);
          if (why !== failing) process.stderr.write(`${tty ? "\n" : ""}mesh: ${why}; retrying until --timeout\n`);
          failing = why;
          await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - now))));
          pause = Math.min(pause * 2, WAIT_RETRY_MAX_MS);
        };
        for (;;) {
          try {
            await waitOnce();
            return;
          } catch (e) {
            await retry(e);
          }
        }
        async function waitOnce(): Promise<void> {
          await withMesh(
            flags,
            async (session) => {
              for (;;) {
                let t: Task;
                try {
                  t = await taskRequest(session, agent, "tasks/get", taskId, Math.min(deadline, Date.now() + 10_000));
                } catch (e) {
                  if (e instanceof MeshError && e.code === "CONSUL_UNREACHABLE") throw e; // connect again from the start
                  await retry(e);
                  continue;
                }
                seen = true;
                if (failing !== undefined) process.stderr.write(`mesh: task ${taskId} answered again\n`);
                [failing, pause] = [undefined, WAIT_RETRY_FIRST_MS];
                const line = `${t.status}${t.statusMessage ? ` — ${t.statusMessage}` : ""}`;
                if (line !== last && !flags.json) {
                  if (tty) process.stderr.write(`\r\x1b[2K${bar(t.statusMessage)} ${line}`.slice(0, (process.stderr.columns ?? 100) + 8));
                  else process.stderr.write(`${line}\n`);
                  last = line;
                }
                if (t.status === "completed" || t.status === "failed" || t.status === "cancelled") {
                  if (tty) process.stderr.write("\n");
                  print(flags, t, () => describeTask(agent, t));
                  settle(t);
                  return;
                }
                if (Date.now() >= deadline)
                  throw new MeshError(
                    "TIMEOUT",
                    `Task ${taskId} is still ${t.status} after --timeout; it keeps running: "mesh tasks wait ${agent} ${taskId}" again to follow it.`,
                  );
                await new Promise((r) => setTimeout(r, Math.min(Math.max(t.pollIntervalMs ?? 1_000, 200), 10_000)));
              }
            },
            { catalog: "on-demand" },
          );
        }
      }),
  );
  tasks.addCommand(
    addMeshOptions(
      new Command("cancel")
        .description("ask the agent to stop a task (it ends as cancelled, or finishes if it was about to)")
        .argument("<agent>")
        .argument("<taskId>"),
    )
      .option("--timeout <ms>", "deadline for the answer", "10000")
      .action(async (agent: string, taskId: string, flags: MeshFlags & { timeout: string }) => {
        checkIds(agent, taskId);
        const deadline = Date.now() + parseTimeout(flags.timeout);
        await withMesh(
          flags,
          async (session) => {
            await taskRequest(session, agent, "tasks/cancel", taskId, deadline);
            print(
              flags,
              { agent, taskId, cancelRequested: true },
              () => `Cancel requested for ${agent} task ${taskId}; "mesh tasks get ${agent} ${taskId}" shows where it ended.`,
            );
          },
          { catalog: "on-demand" },
        );
      }),
  );
  return tasks;
}

/** A progress bar from a status message that says "N of M". */
function bar(message: string | undefined): string {
  const m = /(\d+) of (\d+)/.exec(message ?? "");
  if (!m) return "";
  const done = Number(m[1]);
  const total = Math.max(1, Number(m[2]));
  const width = 24;
  const filled = Math.round((Math.min(done, total) / total) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.round((done / total) * 100)}%`;
}
