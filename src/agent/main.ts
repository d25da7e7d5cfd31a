import { hostname } from "node:os";
import { EXIT } from "../protocol/codes.ts";
import { Command, Option } from "commander";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { LOG_LEVELS } from "../logger.ts";
import { resolveAgentConfig, type AgentConfigInput } from "./config.ts";
import type { AgentDefinition } from "./definition.ts";
import { startAgent, type RunningAgent } from "./run.ts";
import { startTracing, stopTracing } from "../telemetry/tracing.ts";

/** Adds the agent process options to a command (used by servers' main.ts and `mesh serve`). */
export function addAgentOptions(cmd: Command): Command {
  return cmd
    .option("--stdio", "serve MCP on stdin/stdout for one local client (no Consul registration)")
    .option("--host <host>", "interface to bind (env MESH_HOST)", undefined)
    .option("-p, --port <port>", "port to listen on; 0 picks a free one (env MESH_PORT)")
    .option("--advertise-host <host>", "address other machines reach this instance at (env MESH_ADVERTISE_HOST)")
    .option("--mcp-path <path>", "path of the MCP endpoint (env MESH_MCP_PATH)")
    .option("--consul <addr>", "Consul HTTP address (env CONSUL_HTTP_ADDR)")
    .option("--token <token>", "Consul ACL token (env CONSUL_HTTP_TOKEN)")
    .option(
      "--mesh-token-file <path>",
      "bearer tokens this agent requires, one per line (env MESH_TOKEN_FILE; or MESH_TOKEN, comma-separated); the credentials it sends to other agents are derived from the first",
    )
    .option("--no-register", "do not register in Consul")
    .addOption(
      new Option(
        "--state <where>",
        "shared state: consul (KV, shared by replicas) or memory (env MESH_STATE; default consul over HTTP, memory on stdio)",
      ).choices(["consul", "memory"]),
    )
    .option("--instance-id <id>", "Consul service id (default <name>-<hostname>-<port>; env MESH_INSTANCE_ID)")
    .option("--drain-timeout <ms>", "how long SIGTERM waits for in-flight calls (env MESH_DRAIN_TIMEOUT_MS)")
    .option(
      "--max-concurrent-calls <n>",
      "tool calls run at once; more get a fast OVERLOADED answer (env MESH_MAX_CONCURRENT_CALLS, default 64)",
    )
    .option(
      "--max-sessions <n>",
      "MCP sessions kept at once; a new one evicts the least recently used (env MESH_MAX_SESSIONS, default 512)",
    )
    .option("--session-idle-ms <ms>", "an MCP session with no request for this long is closed (env MESH_SESSION_IDLE_MS, default 600000)")
    .option("--allowed-hosts <list>", "more host names clients may use to reach this agent, comma-separated (env MESH_ALLOWED_HOSTS)")
    .addOption(logLevelOption());
}

/** --log-level, shared by every mesh process. */
export function logLevelOption(): Option {
  return new Option("--log-level <level>", "log level (env MESH_LOG_LEVEL)").choices([...LOG_LEVELS]);
}

/** Maps parsed commander options to config input keys. */
export function agentFlags(opts: Record<string, unknown>): Partial<Record<keyof AgentConfigInput, unknown>> {
  return {
    transport: opts["stdio"] ? "stdio" : undefined,
    host: opts["host"],
    port: opts["port"],
    advertiseHost: opts["advertiseHost"],
    mcpPath: opts["mcpPath"],
    consulAddr: opts["consul"],
    consulToken: opts["token"],
    meshTokenFile: opts["meshTokenFile"],
    register: opts["register"] === false ? false : undefined,
    state: opts["state"],
    maxConcurrentCalls: opts["maxConcurrentCalls"],
    instanceId: opts["instanceId"],
    drainTimeoutMs: opts["drainTimeout"],
    maxSessions: opts["maxSessions"],
    sessionIdleMs: opts["sessionIdleMs"],
    allowedHosts: opts["allowedHosts"],
    logLevel: opts["logLevel"],
  };
}

/**
 * Runs an agent as a process: resolves config from flags and env, starts it, and on
 * SIGTERM/SIGINT drains in-flight calls, deregisters and exits 0. A second signal exits
 * at once with 130.
 */
export async function runAgentProcess<D>(def: AgentDefinition<D>, flags: Record<string, unknown>): Promise<never> {
  // Handlers go in before start-up: a signal that arrives while the agent registers (it is
  // already visible in Consul then) must still drain and deregister, not kill the process.
  let agent: RunningAgent | undefined;
  let stopReason: string | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopReason) process.exit(EXIT.INTERRUPTED);
    stopReason = `received ${signal}`;
    if (agent) void agent.stop(stopReason);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    // OpenTelemetry traces when the OTEL_* environment asks for them (off otherwise).
    await startTracing(def.name, { "service.instance.id": `${hostname()}/${process.pid}` });
    agent = await startAgent(def, resolveAgentConfig(agentFlags(flags)));
  } catch (e) {
    process.stderr.write(`${def.name}: ${describeError(e)}\n`);
    process.exit(isMeshError(e) && e.code === "CONFIG_INVALID" ? EXIT.USAGE : EXIT.MESH);
  }
  if (stopReason) void agent.stop(stopReason);
  await agent.done;
  await stopTracing();
  process.exit(0);
}

/** Entry point for `node servers/<name>/main.ts [options]`. */
export async function agentMain<D>(def: AgentDefinition<D>, argv: readonly string[] = process.argv): Promise<void> {
  const program = addAgentOptions(new Command(def.name).description(def.description).version(def.version));
  program.action(async (opts: Record<string, unknown>) => {
    await runAgentProcess(def, opts);
  });
  await program.parseAsync([...argv]);
}
