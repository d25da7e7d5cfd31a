import { resolve } from "node:path";
import { Command, Option } from "commander";
import { ConsulClient } from "../../../src/consul/client.ts";
import { MeshClient } from "../../../src/client/meshClient.ts";
import { DEFAULT_CONSUL_ADDR } from "../../../src/consul/address.ts";
import { runDemo, type DemoResult } from "../../launcher/demo.ts";
import { DEFAULT_BASE_PORT, meshUp, type RunningMesh } from "../../launcher/meshUp.ts";
import { EXIT } from "../../../src/protocol/codes.ts";
import { UsageError } from "../../common/errors.ts";
import { formatTable } from "../table.ts";

interface UpOptions {
  consul?: string;
  token?: string;
  basePort: string;
  logDir: string;
  /** A directory, or false (--no-data-dir). */
  dataDir: string | false;
  demo: boolean;
  restart: boolean;
  once: boolean;
  json: boolean;
}

export function upCommand(): Command {
  return new Command("up")
    .description(
      "start a local mesh: Consul (a single server keeping its data in .mesh/consul, or the one already running), hr ×2, finance, knowledge and the orchestrator; show a sample; stop all on Ctrl-C",
    )
    .option(
      "--consul <addr>",
      "Consul HTTP address, or several comma-separated (the host's agent first, the others tried when it does not answer); if none answers, a Consul is started at the first (env CONSUL_HTTP_ADDR)",
    )
    .option("--token <token>", "Consul ACL token (env CONSUL_HTTP_TOKEN)")
    .option("--base-port <port>", "agents listen on the ports after this one; 0 picks free ports", String(DEFAULT_BASE_PORT))
    .option("--log-dir <dir>", "where each process's log goes", ".mesh/logs")
    .option(
      "--data-dir <dir>",
      "where the Consul mesh up starts keeps its data (a subdirectory per address), so bookings, expenses, tasks and idempotency records survive its restarts; stop mesh up and delete the directory to start empty",
      ".mesh/consul",
    )
    .option("--no-data-dir", "run that Consul in memory (consul agent -dev): nothing is kept when it stops or restarts")
    .option("--no-demo", "skip the sample calls")
    .option("--no-restart", "do not start an agent again when it dies (default: restart with backoff, 1 s doubling to 30 s)")
    .option("--once", "stop everything after the sample (for scripts and smoke tests)")
    .addOption(new Option("--json", "machine-readable output: one JSON object per line"))
    .addHelpText(
      "after",
      `
Examples:
  mesh up                                  # Consul on 127.0.0.1:8500, agents on 7101-7104
  mesh up --base-port 0 --consul 127.0.0.9:8500 --json
  mesh up --once                           # bring up, run the sample, shut down`,
    )
    .action(runUp);
}

/** JSON lines on stdout (--json): one object per event. */
type Out = (o: Record<string, unknown>) => void;

/** `mesh up`: starts the mesh, shows it (and a sample), and stops it all on a signal or after --once. */
async function runUp(opts: UpOptions): Promise<void> {
  const basePort = Number(opts.basePort);
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65_000) {
    throw new UsageError(`--base-port must be a whole number from 0 to 65000; got "${opts.basePort}".`);
  }
  const consulAddr = opts.consul ?? process.env["CONSUL_HTTP_ADDR"] ?? DEFAULT_CONSUL_ADDR;
  const token = opts.token ?? process.env["CONSUL_HTTP_TOKEN"] ?? undefined;
  const out: Out | undefined = opts.json ? (o) => void process.stdout.write(`${JSON.stringify(o)}\n`) : undefined;
  const say = (line: string) => (out ? out({ event: "progress", message: line }) : void process.stderr.write(`  ${line}\n`));

  const mesh = await meshUp({
    consul: consulAddr,
    token,
    basePort,
    logDir: resolve(opts.logDir),
    ...(opts.dataDir === false ? {} : { dataDir: resolve(opts.dataDir) }),
    onProgress: say,
    restart: opts.restart !== false,
  });
  const shutdown = stopOnSignal(mesh, say, out);

  if (out) out({ event: "up", ...summary(mesh) });
  else printSummary(mesh);

  if (opts.demo) await demo(mesh, token, out);
  if (opts.once) return shutdown("--once");
  if (!out) process.stderr.write("\nRunning. Press Ctrl-C to stop everything.\n");
}

/**
 * Stops the mesh on SIGINT or SIGTERM (drain, deregister, Consul if mesh up started it) and
 * exits 0; a second signal kills everything at once (exit 130). Returns the same shutdown,
 * for --once.
 */
function stopOnSignal(mesh: RunningMesh, say: (line: string) => void, out: Out | undefined): (why: string) => Promise<void> {
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) {
      mesh.kill();
      process.exit(EXIT.INTERRUPTED);
    }
    stopping = true;
    say(`${why}: stopping agents (drain, deregister)${mesh.startedConsul ? " and Consul" : ""}`);
    await mesh.stop();
    if (out) out({ event: "down" });
    else process.stderr.write("toolmesh stopped.\n");
    process.exit(EXIT.OK);
  };
  process.on("SIGINT", () => void shutdown("interrupted"));
  process.on("SIGTERM", () => void shutdown("terminated"));
  return shutdown;
}

/** The sample: a call to each agent through the mesh, found in Consul like any caller's. */
async function demo(mesh: RunningMesh, token: string | undefined, out: Out | undefined): Promise<void> {
  const consul = new ConsulClient({ address: mesh.consulAddresses.join(","), token });
  const caller = new MeshClient({ consul, callerName: "mesh-up" });
  const results = await runDemo(caller);
  await caller.close();
  consul.destroy();
  if (out) out({ event: "demo", calls: results });
  else printDemo(results);
}

function summary(mesh: RunningMesh): Record<string, unknown> {
  return {
    consul: {
      address: mesh.consulAddress,
      addresses: mesh.consulAddresses,
      ui: `${mesh.consulAddress}/ui/`,
      started: mesh.startedConsul,
      log: mesh.consulLog,
      // Where its data lives (kept across restarts); null: in memory (-dev), or not ours.
      dataDir: mesh.consulDataDir ?? null,
      ...(mesh.consulPid ? { pid: mesh.consulPid } : {}),
    },
    agents: mesh.instances.map((i) => ({
      agent: i.agent,
      label: i.label,
      instanceId: i.instanceId,
      url: i.url,
      pid: i.pid,
      log: i.logFile,
    })),
    ...(mesh.gateway
      ? {
          gateway: {
            url: mesh.gateway.url,
            console: mesh.gateway.url.replace(/\/mcp$/, "/ui"),
            pid: mesh.gateway.pid,
            log: mesh.gateway.logFile,
          },
        }
      : {}),
  };
}

function printSummary(mesh: RunningMesh): void {
  const example = mesh.instances.find((i) => i.agent === "hr") ?? mesh.instances[0];
  const rows = mesh.instances.map((i) => [i.agent, i.instanceId, i.url, String(i.pid)]);
  const table = formatTable(["AGENT", "INSTANCE", "MCP ENDPOINT", "PID"], rows)
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
  process.stdout.write(
    `\ntoolmesh is up\n` +
      `  Consul     ${mesh.consulAddress} ${mesh.startedConsul ? "(started by mesh up)" : "(already running)"}\n` +
      (mesh.startedConsul
        ? mesh.consulDataDir
          ? `  Data       ${mesh.consulDataDir} (kept across restarts; to start empty, stop mesh up and delete it)\n`
          : `  Data       in memory (--no-data-dir): lost when Consul stops or restarts\n`
        : "") +
      `  Consul UI  ${mesh.consulAddress}/ui/\n` +
      (mesh.gateway
        ? `  Gateway    ${mesh.gateway.url} (the whole mesh for MCP clients; A2A at /a2a/<agent>)\n` +
          `  Console    ${mesh.gateway.url.replace(/\/mcp$/, "/ui")}\n`
        : "") +
      `\n${table}\n` +
      `  logs: ${example ? example.logFile.replace(/\/[^/]+$/, "/") : ""}\n` +
      `  try:  npx @modelcontextprotocol/inspector --cli ${example?.url ?? "<url>"} --transport http --method tools/list\n`,
  );
}

function printDemo(results: readonly DemoResult[]): void {
  process.stdout.write("\nA sample through the mesh (each agent found in Consul, called over MCP):\n");
  for (const r of results) {
    const head = `${r.agent}.${r.tool} ${JSON.stringify(r.args)}`;
    const flat = r.text.replace(/\s+/g, " ");
    const text = flat.length > 170 ? `${flat.slice(0, 169)}…` : flat;
    process.stdout.write(
      `\n  ${head}\n    → ${r.instance ?? "-"} (${r.ms.toFixed(1)} ms, ${r.note})${r.ok ? "" : " [isError]"}\n    ${text}\n`,
    );
  }
}
