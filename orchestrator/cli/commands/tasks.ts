import { Command } from "commander";
import { type TaskRecord } from "../../../src/agent/tasks.ts";
import { TASKS_KV_PREFIX } from "../../../src/agent/run.ts";
import type { ConsulClient } from "../../../src/consul/client.ts";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";
import { parseTimeout } from "../../common/options.ts";
import { formatTable } from "../table.ts";
import { checkIds, describeTask, settle, taskRequest } from "./taskRequests.ts";
import { TaskWaiter } from "./taskWait.ts";

type TaskFlags = MeshFlags & { timeout: string };

export function tasksCommand(): Command {
  const tasks = new Command("tasks").description("long-running calls that run as tasks (mesh call --task): list, get, wait, cancel");
  tasks.addCommand(listCommand());
  tasks.addCommand(getCommand());
  tasks.addCommand(waitCommand());
  tasks.addCommand(cancelCommand());
  return tasks;
}

/** `mesh tasks list [agent]`: the task records in Consul KV, newest first. */
function listCommand(): Command {
  return addMeshOptions(
    new Command("list").description("tasks recorded in Consul, newest first").argument("[agent]", "only this agent's tasks"),
  ).action(async (agent: string | undefined, flags: MeshFlags) => {
    if (agent !== undefined) checkIds(agent);
    await withMesh(
      flags,
      async ({ consul }) => {
        const rows = (await taskRecords(consul, agent)).map((r) => ({
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
  });
}

/** The task records under TASKS_KV_PREFIX (one agent's, or every agent's), newest first; unreadable ones left out. */
async function taskRecords(consul: ConsulClient, agent: string | undefined): Promise<(TaskRecord & { agent: string })[]> {
  const keys = await consul.kvKeys(`${TASKS_KV_PREFIX}${agent ? `${agent}/` : ""}`, { timeoutMs: 5_000 });
  const records = await Promise.all(
    keys.map(async (key) => {
      const entry = await consul.kvGet(key, { timeoutMs: 5_000 });
      try {
        return entry ? { agent: key.slice(TASKS_KV_PREFIX.length).split("/")[0]!, ...(JSON.parse(entry.value) as TaskRecord) } : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return records
    .filter((r): r is TaskRecord & { agent: string } => r !== undefined && typeof r.taskId === "string")
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** A subcommand about one task, `mesh tasks <name> <agent> <taskId>`, with its --timeout. */
function oneTaskCommand(name: string, description: string, timeoutHelp: string, timeoutDefault: string): Command {
  return addMeshOptions(new Command(name).description(description).argument("<agent>").argument("<taskId>")).option(
    "--timeout <ms>",
    timeoutHelp,
    timeoutDefault,
  );
}

/** The deadline (epoch ms) of a subcommand about one task, once its names are checked. */
function deadlineFor(agent: string, taskId: string, flags: TaskFlags): number {
  checkIds(agent, taskId);
  return Date.now() + parseTimeout(flags.timeout);
}

/** `mesh tasks get <agent> <taskId>`: a task's status, and its result once it has one. */
function getCommand(): Command {
  return oneTaskCommand("get", "a task's status, and its result once it has one", "deadline for the answer", "10000").action(
    async (agent: string, taskId: string, flags: TaskFlags) => {
      const deadline = deadlineFor(agent, taskId, flags);
      await withMesh(
        flags,
        async (session) => {
          const t = await taskRequest(session, agent, "tasks/get", taskId, deadline);
          print(flags, t, () => describeTask(agent, t));
          settle(t);
        },
        { catalog: "on-demand" },
      );
    },
  );
}

/** `mesh tasks wait <agent> <taskId>`: follow a task until it ends (TaskWaiter). */
function waitCommand(): Command {
  return oneTaskCommand(
    "wait",
    "follow a task until it ends (a progress bar on a terminal, a line per change otherwise)",
    "give up waiting after this long (the task keeps running)",
    "3600000",
  ).action(async (agent: string, taskId: string, flags: TaskFlags) => {
    await new TaskWaiter(flags, agent, taskId, deadlineFor(agent, taskId, flags)).run();
  });
}

/** `mesh tasks cancel <agent> <taskId>`: ask the agent to stop a task. */
function cancelCommand(): Command {
  return oneTaskCommand(
    "cancel",
    "ask the agent to stop a task (it ends as cancelled, or finishes if it was about to)",
    "deadline for the answer",
    "10000",
  ).action(async (agent: string, taskId: string, flags: TaskFlags) => {
    const deadline = deadlineFor(agent, taskId, flags);
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
  });
}
