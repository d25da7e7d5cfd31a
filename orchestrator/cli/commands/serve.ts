import { Command } from "commander";
import { addAgentOptions, runAgentProcess } from "../../../src/agent/main.ts";
import { AGENTS as SPECIALISTS } from "../../../servers/index.ts";
import { orchestratorAgent } from "../../agent/agent.ts";

/** What `mesh serve` can run: every specialist, and the orchestrator. */
const AGENTS: Readonly<Record<string, (typeof SPECIALISTS)[string]>> = {
  ...SPECIALISTS,
  orchestrator: orchestratorAgent as (typeof SPECIALISTS)[string],
};
import { UsageError } from "../../common/errors.ts";

export function serveCommand(): Command {
  const cmd = new Command("serve")
    .description("run one agent (a specialist or the orchestrator): on Streamable HTTP registered in Consul, or on stdio for an MCP client")
    .argument("<agent>", `agent to run: ${Object.keys(AGENTS).join(", ")}`)
    .addHelpText(
      "after",
      `
Examples:
  mesh serve hr --port 7101                 # HTTP on 127.0.0.1:7101/mcp, registered in Consul
  mesh serve finance --port 0 --consul 127.0.0.1:8500
  mesh serve knowledge --stdio              # for Claude Desktop, VS Code, Cursor...`,
    );
  addAgentOptions(cmd);
  return cmd.action(async (agent: string, opts: Record<string, unknown>) => {
    const def = AGENTS[agent];
    if (!def) throw new UsageError(`Unknown agent "${agent}". Agents: ${Object.keys(AGENTS).join(", ")}.`);
    await runAgentProcess(def, opts);
  });
}
