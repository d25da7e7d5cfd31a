import { Command } from "commander";
import { SESSION_ID_PATTERN, SessionStore } from "../../agent/session/sessionStore.ts";
import { createInterface } from "node:readline/promises";
import { EXIT } from "../../../src/protocol/codes.ts";
import { Orchestrator, type AskResult } from "../../agent/orchestrator.ts";
import type { AskFailure } from "../../agent/planner/run.ts";
import { llmConfig } from "../../agent/planner/llm.ts";
import { UsageError } from "../../common/errors.ts";
import { addMeshOptions, print, requireAgent, withMesh, type MeshFlags } from "../mesh.ts";
import { parseTimeout } from "../../common/options.ts";
import { SpanKind, startTracing, traced } from "../../../src/telemetry/tracing.ts";

interface AskFlags extends MeshFlags {
  session?: string;
  agent?: string;
  timeout: string;
  yes?: boolean;
  explain?: boolean;
  llmModel?: string;
  llmBaseUrl?: string;
}

export function askCommand(): Command {
  return addMeshOptions(
    new Command("ask")
      .description("ask the mesh in plain language: routed to the right specialist, answered with its sources")
      .argument("<message>", "the question")
      .option("--session <id>", "continue a session (history and facts are shared through Consul)")
      .option("--agent <name>", "skip routing and ask this agent")
      .option("--timeout <ms>", "deadline for the answer", "30000")
      .option("-y, --yes", "run steps that book or file something without asking (otherwise: asked on a terminal, refused elsewhere)")
      .option("--explain", "show the plan: each step's agent, tool, arguments, instance and time, and the trace id")
      .option(
        "--llm-model <name>",
        "plan with this model on an OpenAI-compatible endpoint (default: $OPENAI_MODEL; none: the built-in planner)",
      )
      .option("--llm-base-url <url>", "the endpoint, e.g. http://localhost:11434/v1 for Ollama (default: $OPENAI_BASE_URL, else OpenAI's)"),
  )
    .addHelpText(
      "after",
      `\nThe orchestrator plans the question across agents (e.g. hr for a manager, then finance for net pay) and says which agents and tools answered.\nA plan that books or files something asks before it runs: on a terminal you are prompted; elsewhere pass --yes.\nWith a model configured (--llm-model or OPENAI_MODEL, with OPENAI_BASE_URL and OPENAI_API_KEY) the model plans over the live catalog; if it fails, the built-in planner answers.\n\nExamples:\n  mesh ask "What is the take-home pay of Bob Okafor's manager?" --explain\n  mesh ask "Book 2 days of vacation for Bob Okafor starting 2026-12-21" --yes\n  mesh ask "And what is his take-home pay?" --session 7c1e...\n  OPENAI_BASE_URL=http://localhost:11434/v1 mesh ask "Who manages Wei Zhang's manager?" --llm-model qwen2.5:7b --explain`,
    )
    .action(async (message: string, flags: AskFlags) => {
      if (flags.session !== undefined && !SESSION_ID_PATTERN.test(flags.session)) {
        throw new UsageError(`--session "${flags.session}" is invalid: letters, digits, '.', '_' or '-' (at most 128).`);
      }
      const timeoutMs = parseTimeout(flags.timeout);
      if (!message.trim()) throw new UsageError('The message is empty: ask a question, e.g. mesh ask "Who reports to Alice Chen?"');
      await startTracing("mesh-cli");
      await withMesh(flags, async (session) => {
        const { consul, mesh } = session;
        if (flags.agent) await requireAgent(session, flags.agent, Date.now() + timeoutMs);
        const llm = llmConfig({
          ...(flags.llmModel ? { model: flags.llmModel } : {}),
          ...(flags.llmBaseUrl ? { baseURL: flags.llmBaseUrl } : {}),
        });
        const orchestrator = new Orchestrator({ mesh, sessions: new SessionStore(consul), ...(llm ? { llm } : {}) });
        // With OTEL_* set, each ask is a trace: the plan's calls are its children.
        const span = { name: "mesh ask", kind: SpanKind.INTERNAL, attributes: { "toolmesh.command": "ask" } };
        let r = await traced(span, () =>
          orchestrator.ask(message, {
            sessionId: flags.session,
            agent: flags.agent,
            timeoutMs,
            ...(flags.yes ? { confirm: true } : {}),
          }),
        );
        if (r.kind === "confirm" && !flags.json && process.stdin.isTTY && process.stdout.isTTY) {
          const sessionId = r.sessionId;
          if (await promptYes(`${r.message}\nGo ahead? [y/N] `))
            r = await traced(span, () => orchestrator.ask(message, { sessionId, timeoutMs, confirm: true }));
        }
        const result = r;
        print(flags, result, () => render(result, flags.explain === true));
        if (result.kind === "confirm") process.exitCode = EXIT.NOT_CONFIRMED;
        // Not everything asked was done (a step refused or failed, a booking not made, a part
        // not answered): say what, and exit as the failure's kind does (a mesh failure first).
        if (result.kind === "answer" && !result.complete) {
          for (const f of result.failures) process.stderr.write(`mesh: ${describeFailure(f)}\n`);
          process.exitCode = result.failures.some((f) => f.kind === "mesh") ? EXIT.MESH : EXIT.TOOL_ERROR;
        }
      });
    });
}

function render(r: AskResult, explain: boolean): string {
  if (r.kind === "confirm") return `${r.message}\n\nNothing was changed. Run again with --yes to go ahead.`;
  if (r.kind !== "answer") return `${r.message}\n\n— not answered · session ${r.sessionId}`;
  const lines = [r.answer, "", `session ${r.sessionId} · trace ${r.traceId}`];
  if (explain && r.explanation) {
    lines.push("", `plan (${r.explanation.planner} planner):`);
    for (const s of r.explanation.steps) {
      const where = s.instance ? ` @ ${s.instance}` : "";
      const time = s.ms === undefined ? "" : ` ${s.ms} ms`;
      lines.push(`  ${s.id} ${s.agent}.${s.tool} ${JSON.stringify(s.args)} → ${s.status}${where}${time}${s.error ? ` (${s.error})` : ""}`);
    }
    for (const u of r.explanation.unanswered) lines.push(`  not answered: ${u}`);
  }
  return lines.join("\n");
}

/** One line per thing not done: what, where, and whether a change was left unmade. */
export function describeFailure(f: AskFailure): string {
  const where = f.agent && f.tool ? `${f.agent}.${f.tool}` : "";
  const what =
    f.kind === "mesh" ? "failed in the mesh" : f.kind === "business" ? "was refused" : f.changes ? "did not run" : "not answered";
  const head = where ? `${where} ${what}` : `Not answered`;
  return `${head}${f.changes ? " (nothing was changed)" : ""}: ${f.message}`;
}

async function promptYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
