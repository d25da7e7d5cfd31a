import { Command } from "commander";
import { rootContext } from "../../../src/context/meshContext.ts";
import { addMeshOptions, requireAgent, withMesh, type MeshSession } from "../mesh.ts";
import { TASKS_ENVELOPE } from "../../../src/protocol/keys.ts";
import { SpanKind, startTracing, traced } from "../../../src/telemetry/tracing.ts";
import { callRequest, checkedArguments, toolOf, type CallFlags, type CallRequest } from "./callRequest.ts";
import { report, reportTask, type TaskHandle } from "./callOutcome.ts";

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
    .action(runCall);
}

/** `mesh call`: checks the command line, finds the agent and its tool, checks the arguments, calls, and prints. */
async function runCall(target: string, json: string | undefined, flags: CallFlags): Promise<void> {
  const req = callRequest(target, json, flags);
  await startTracing("mesh-cli");
  await withMesh(
    flags,
    async (session) => {
      const tool = toolOf(await requireAgent(session, req.agent, req.deadline), req);
      const args = await checkedArguments(tool, req);
      const { context, result, instance } = await tracedCall(session, req, args);
      const task = result as unknown as TaskHandle;
      if (task.resultType === "task" && task.taskId) return reportTask(session, req, task, instance, context.traceId);
      report(flags, target, result, instance, context.traceId);
    },
    { catalog: "on-demand" },
  );
}

/**
 * The call through the mesh, with its context (session, idempotency key, what is left of the
 * deadline). With OTEL_* set, the command is the trace's root span; the attempts are its children.
 */
function tracedCall(session: MeshSession, req: CallRequest, args: Record<string, unknown>) {
  const { flags } = req;
  return traced(
    {
      name: `mesh call ${req.target}`,
      kind: SpanKind.INTERNAL,
      attributes: { "toolmesh.command": "call", "toolmesh.agent": req.agent, "gen_ai.tool.name": req.tool },
    },
    async () => {
      const context = rootContext({
        caller: "mesh-cli",
        timeoutMs: req.deadline - Date.now(),
        ...(flags.session ? { sessionId: flags.session } : {}),
        ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}),
      });
      // The context carries the deadline (discovery counted); the message names the budget asked for.
      const outcome = await session.mesh.call(req.agent, req.tool, args, {
        context,
        timeoutMs: req.timeoutMs,
        ...(flags.task ? { envelope: TASKS_ENVELOPE } : {}),
      });
      return { ...outcome, context };
    },
  );
}
