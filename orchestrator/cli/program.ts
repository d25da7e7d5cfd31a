// The mesh CLI program: commands, error handling and exit codes.
import { ProtocolError, ProtocolErrorCode, SdkError } from "@modelcontextprotocol/client";
import { Command, CommanderError } from "commander";
import { describeError, isMeshError } from "../../src/protocol/errors.ts";
import { BusinessError } from "../../src/protocol/results.ts";
import { agentsCommand } from "./commands/agents.ts";
import { askCommand } from "./commands/ask.ts";
import { callCommand } from "./commands/call.ts";
import { labCommand } from "./commands/lab.ts";
import { deregisterCommand, registerCommand } from "./commands/register.ts";
import { serveCommand } from "./commands/serve.ts";
import { statusCommand } from "./commands/status.ts";
import { tasksCommand } from "./commands/tasks.ts";
import { toolsCommand } from "./commands/tools.ts";
import { upCommand } from "./commands/up.ts";
import { policyCommand } from "./commands/policy.ts";
import { gatewayCommand } from "../gateway/run.ts";
import { ToolError, UsageError } from "../common/errors.ts";
import { EXIT } from "../../src/protocol/codes.ts";
import { stopTracing } from "../../src/telemetry/tracing.ts";

export function buildProgram(): Command {
  const program = new Command("mesh")
    .description("toolmesh: MCP agents discovered through Consul")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      `
Environment:
  CONSUL_HTTP_ADDR     this host's Consul agent (default http://127.0.0.1:8500); several comma-separated
                       are tried in order when the first cannot be reached
  CONSUL_HTTP_TOKEN    Consul ACL token (or CONSUL_HTTP_TOKEN_FILE)
  CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
  CONSUL_HTTP_SSL_VERIFY, CONSUL_TLS_SERVER_NAME   TLS to Consul, as Consul's own CLI reads them
  MESH_TOKEN           the mesh token(s) agents accept (comma-separated during a rotation); callers send
                       each agent a credential for it alone, derived from the first, never the token
  MESH_TOKEN_<AGENT>   the token to send to one agent, e.g. MESH_TOKEN_HR
  MESH_LOG_LEVEL       log level of the processes mesh starts
  MESH_OAUTH_ISSUER    (mesh gateway) accept OAuth access tokens from this authorization server;
                       MESH_OAUTH_RESOURCE, _JWKS_URL, _INTROSPECTION_URL, _REQUIRED_SCOPES: see docs/security.md

Exit codes: 0 ok, 1 a tool answered isError (mesh ask: an agent refused a step, or part of the
question was not answered), 2 usage or configuration error (flags, arguments an agent refuses,
malformed tokens, unknown agents), 3 mesh error (Consul, no usable instance, connections,
deadlines, delivery unknown, authorization; mesh ask: a step failed in the mesh), 4 mesh ask
planned a change that was not confirmed (nothing changed; --yes), 70 internal error, 130
interrupted twice.`,
    )
    .exitOverride();
  for (const cmd of [
    upCommand(),
    serveCommand(),
    agentsCommand(),
    toolsCommand(),
    callCommand(),
    tasksCommand(),
    askCommand(),
    gatewayCommand(),
    registerCommand(),
    deregisterCommand(),
    statusCommand(),
    labCommand(),
    policyCommand(),
  ]) {
    program.addCommand(cmd.exitOverride());
  }
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
    await stopTracing(); // the spans still buffered go out before the process ends
  } catch (e) {
    await stopTracing();
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    }
    // A business refusal raised by the orchestrator in this process (another caller's session).
    if (e instanceof ToolError || e instanceof BusinessError) {
      process.stderr.write(`mesh: ${e.message}\n`);
      process.exit(EXIT.TOOL_ERROR);
    }
    // An agent refusing the arguments (-32602) is the caller's mistake, as is bad configuration.
    if (
      e instanceof UsageError ||
      (isMeshError(e) && (e.code === "CONFIG_INVALID" || e.code === "IDEMPOTENCY_CONFLICT")) ||
      (e instanceof ProtocolError && e.code === ProtocolErrorCode.InvalidParams)
    ) {
      process.stderr.write(`mesh: ${describeError(e)}\n`);
      process.exit(EXIT.USAGE);
    }
    if (isMeshError(e) || e instanceof ProtocolError || e instanceof SdkError) {
      process.stderr.write(`mesh: ${describeError(e)}\n`);
      process.exit(EXIT.MESH);
    }
    process.stderr.write(`mesh: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(EXIT.INTERNAL);
  }
}
