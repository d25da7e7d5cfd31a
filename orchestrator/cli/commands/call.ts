import { readFileSync } from "node:fs";
import { Command } from "commander";
import * as z from "zod";
import { fromJsonSchema, type CallToolResult, type JsonSchemaType, type Tool } from "@modelcontextprotocol/client";
import { argumentProblem } from "../../../src/protocol/limits.ts";
import { IDEMPOTENCY_KEY_PATTERN, rootContext } from "../../../src/context/meshContext.ts";
import { ToolError, UsageError } from "../../common/errors.ts";
import { addMeshOptions, print, requireAgent, withMesh, type MeshFlags, type MeshSession } from "../mesh.ts";
import { parseTimeout } from "../../common/options.ts";
import { TASKS_ENVELOPE } from "../../../src/protocol/keys.ts";
import { SpanKind, startTracing, traced } from "../../../src/telemetry/tracing.ts";
import { EXIT } from "../../../src/protocol/codes.ts";

const AnyResult = z.object({}).passthrough();

interface CallFlags extends MeshFlags {
  arg: string[];
  argsFile?: string;
  session?: string;
  timeout: string;
  idempotencyKey?: string;
  task?: boolean;
}

const TARGET = /^([a-z][a-z0-9-]*)\.([A-Za-z0-9_.-]+)$/;

export function callCommand(): Command {
  return addMeshOptions(
    new Command("call")
      .description("call a tool through discovery and print its result")
      .argument("<agent.tool>", "e.g. hr.get_leave_balance")
      .argument("[json]", 'arguments as a JSON object, or "-" to read them from standard input')
      .option(
        "--arg <key=value>",
        "one argument (repeatable); the value is read as the tool's schema types it",
        (v: string, acc: string[]) => [...acc, v],
        [],
      )
      .option("--args-file <file>", 'read the arguments (a JSON object) from a file, or "-" for standard input')
      .option("--session <id>", "session id carried in the call's context")
      .option("--timeout <ms>", "deadline for the whole call, discovery included (1 ms to 24 h)", "30000")
      .option("--task", "let a long-running tool run as a task: prints its id at once (follow it with mesh tasks wait <agent> <id>)")
      .option(
        "--idempotency-key <key>",
        "run a tool that changes something (submit_expense, request_leave...) at most once for this key: if the outcome was unclear (a timeout), run the same command again with the same key and get the first result instead of a second effect. One key per intended effect, e.g. a UUID (8-200 of A-Z a-z 0-9 . _ : -)",
      ),
  )
    .addHelpText(
      "after",
      `
Examples:
  mesh call hr.get_leave_balance --arg employee_id=E1002
  mesh call finance.submit_expense '{"employee_id":"E1004","department":"Sales","category":"meals","amount":42,"description":"Lunch"}' --idempotency-key exp-2026-11-29-001
  mesh call knowledge.search_documents --args-file query.json
  echo '{"query":"okafor"}' | mesh call hr.find_employee -`,
    )
    .action(async (target: string, json: string | undefined, flags: CallFlags) => {
      const m = TARGET.exec(target);
      if (!m) throw new UsageError(`"${target}" is not agent.tool, e.g. hr.get_leave_balance.`);
      const [, agentName, toolName] = m as unknown as [string, string, string];
      const timeoutMs = parseTimeout(flags.timeout);
      if (flags.idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(flags.idempotencyKey))
        throw new UsageError(
          `--idempotency-key "${flags.idempotencyKey}" is invalid: 8 to 200 of A-Z a-z 0-9 . _ : + / = - (a UUID works, e.g. from uuidgen).`,
        );
      const text = argumentsText(json, flags.argsFile);
      const deadline = Date.now() + timeoutMs;
      await startTracing("mesh-cli");
      await withMesh(
        flags,
        async (session) => {
          const agent = await requireAgent(session, agentName, deadline);
          // Tools that could not be listed (e.g. no token for the agent): call anyway, untyped,
          // and let the agent's answer (or refusal) say what is wrong.
          const tool =
            agent.tools.find((t) => t.name === toolName) ??
            (agent.toolsError ? { name: toolName, inputSchema: { type: "object" as const } } : undefined);
          if (!tool)
            throw new UsageError(
              `Agent "${agentName}" has no tool "${toolName}". Its tools: ${agent.tools.map((t) => t.name).join(", ")}.`,
            );
          const args = parseArguments(tool, text, flags.arg);
          const problem = argumentProblem(args);
          if (problem) throw new UsageError(`Arguments for ${target} cannot be sent: ${problem}.`);
          const check = await fromJsonSchema(tool.inputSchema as JsonSchemaType)["~standard"].validate(args);
          if (check.issues) {
            throw new UsageError(
              `Arguments for ${target} do not match its input schema: ${check.issues.map((i) => i.message).join("; ")}. See "mesh tools ${agentName}".`,
            );
          }
          // With OTEL_* set, the command is the trace's root span; the attempts are its children.
          const { context, result, instance } = await traced(
            {
              name: `mesh call ${target}`,
              kind: SpanKind.INTERNAL,
              attributes: { "toolmesh.command": "call", "toolmesh.agent": agentName, "gen_ai.tool.name": toolName },
            },
            async () => {
              const context = rootContext({
                caller: "mesh-cli",
                timeoutMs: deadline - Date.now(),
                ...(flags.session ? { sessionId: flags.session } : {}),
                ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}),
              });
              // The context carries the deadline (discovery counted); the message names the budget asked for.
              const outcome = await session.mesh.call(agentName, toolName, args, {
                context,
                timeoutMs,
                ...(flags.task ? { envelope: TASKS_ENVELOPE } : {}),
              });
              return { ...outcome, context };
            },
          );
          let task = result as unknown as TaskHandle;
          if (task.resultType === "task" && task.taskId) {
            // With a key, the handle may be the first call's, replayed: ask where the task is now.
            if (flags.idempotencyKey) task = await currentTask(session, agentName, task, deadline);
            if (task.status === "completed" || task.status === "failed" || task.status === "cancelled") {
              const problem = task.status === "failed" ? task.error?.message : task.status === "cancelled" ? task.statusMessage : undefined;
              print(
                flags,
                { target, instance, traceId: context.traceId, task },
                () =>
                  `${target} ran as task ${task.taskId} with this idempotency key; it is ${task.status}${problem ? `: ${problem}` : "."}` +
                  `\nIts result:  mesh tasks get ${agentName} ${task.taskId}`,
              );
              if (task.status !== "completed") process.exitCode = EXIT.MESH;
              else if (task.result?.isError) process.exitCode = EXIT.TOOL_ERROR;
              return;
            }
            print(
              flags,
              {
                target,
                instance,
                traceId: context.traceId,
                task: { taskId: task.taskId, status: task.status, statusMessage: task.statusMessage },
              },
              () =>
                `${target} runs as task ${task.taskId} (${task.status ?? "working"}) on ${instance}.\nFollow it:  mesh tasks wait ${agentName} ${task.taskId}`,
            );
            return;
          }
          report(flags, target, result, instance, context.traceId);
        },
        { catalog: "on-demand" },
      );
    });
}

type TaskHandle = {
  resultType?: string;
  taskId?: string;
  status?: string;
  statusMessage?: string;
  result?: { isError?: boolean };
  error?: { code: number; message: string };
};

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

/** The arguments' JSON text from the positional argument, --args-file, or standard input ("-"). */
function argumentsText(json: string | undefined, file: string | undefined): string | undefined {
  if (json !== undefined && file !== undefined) throw new UsageError("Give the arguments once: as JSON, or with --args-file, not both.");
  const source = file ?? (json === "-" ? "-" : undefined);
  if (source === undefined) return json;
  try {
    return readFileSync(source === "-" ? 0 : source, "utf8");
  } catch (e) {
    throw new UsageError(
      `Cannot read the arguments from ${source === "-" ? "standard input" : source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`,
    );
  }
}

/** Merges a JSON object and --arg pairs; --arg values follow the schema's type for that key. */
export function parseArguments(tool: Tool, json: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  let args: Record<string, unknown> = {};
  if (json !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (e) {
      throw new UsageError(
        `The arguments are not valid JSON (${(e as Error).message}). Quote them for the shell, e.g. '{"employee_id":"E1002"}', or use --arg key=value.`,
      );
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
      throw new UsageError('The arguments must be a JSON object, e.g. \'{"employee_id":"E1002"}\'.');
    args = parsed as Record<string, unknown>;
  }
  const props = (tool.inputSchema.properties ?? {}) as Record<string, { type?: string | string[] }>;
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--arg "${pair}" is not key=value.`);
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    const type = props[key]?.type;
    const wantsString = type === "string" || (Array.isArray(type) && type.includes("string"));
    if (wantsString) args[key] = raw;
    else {
      try {
        args[key] = JSON.parse(raw);
      } catch {
        args[key] = raw;
      }
    }
  }
  return args;
}

function report(flags: MeshFlags, target: string, result: CallToolResult, instance: string, traceId: string): void {
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
