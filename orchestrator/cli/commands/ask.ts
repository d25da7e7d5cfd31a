import { Command } from "commander";
import { SESSION_ID_PATTERN, SessionStore } from "../../session/sessionStore.ts";
import { Orchestrator } from "../../orchestrator.ts";
import { UsageError } from "../errors.ts";
import { addMeshOptions, print, requireAgent, withMesh, type MeshFlags } from "../mesh.ts";
import { parseTimeout } from "../options.ts";

interface AskFlags extends MeshFlags {
  session?: string;
  agent?: string;
  timeout: string;
}

export function askCommand(): Command {
  return addMeshOptions(
    new Command("ask")
      .description("ask the mesh in plain language: routed to the right specialist, answered with its sources")
      .argument("<message>", "the question")
      .option("--session <id>", "continue a session (history and facts are shared through Consul)")
      .option("--agent <name>", "skip routing and ask this agent")
      .option("--timeout <ms>", "deadline for the answer", "30000"),
  )
    .addHelpText(
      "after",
      `\nExamples:\n  mesh ask "How many vacation days does Bob Okafor have left?"\n  mesh ask "And what is his take-home pay?" --session 7c1e...`,
    )
    .action(async (message: string, flags: AskFlags) => {
      if (flags.session !== undefined && !SESSION_ID_PATTERN.test(flags.session)) {
        throw new UsageError(`--session "${flags.session}" is invalid: letters, digits, '.', '_' or '-' (at most 128).`);
      }
      const timeoutMs = parseTimeout(flags.timeout);
      if (!message.trim()) throw new UsageError('The message is empty: ask a question, e.g. mesh ask "Who reports to Alice Chen?"');
      await withMesh(flags, async (session) => {
        const { consul, mesh } = session;
        if (flags.agent) await requireAgent(session, flags.agent, Date.now() + timeoutMs);
        const orchestrator = new Orchestrator({ mesh, sessions: new SessionStore(consul) });
        const r = await orchestrator.ask(message, { sessionId: flags.session, agent: flags.agent, timeoutMs });
        print(flags, r, () =>
          r.kind === "answer"
            ? `${r.answer}\n\n— ${r.agent} (${r.instance})${r.confidence === null ? "" : `, confidence ${Math.round(r.confidence * 100)}%`} · session ${r.sessionId} · trace ${r.traceId}`
            : `${r.message}\n\n— not routed · session ${r.sessionId}`,
        );
      });
    });
}
