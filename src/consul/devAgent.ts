import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { MeshError } from "../protocol/errors.ts";
import { ConsulClient } from "./client.ts";

/** The project's provisioning script (prints a consul binary path, building one if needed). */
export const CONSUL_SCRIPT = fileURLToPath(new URL("../../scripts/consul.sh", import.meta.url));

/**
 * How long a dev agent may take to elect itself leader (it usually takes 0.2 s) on an idle
 * machine; multiplied by the load per core when that is above 1 (a busy laptop). @default 20000
 */
export const DEV_AGENT_READY_TIMEOUT_MS = 20_000;

/** The leader wait for the machine as it is now: longer under load, never shorter than the default. */
function readyTimeoutMs(): number {
  return Math.round(DEV_AGENT_READY_TIMEOUT_MS * Math.max(1, (loadavg()[0] ?? 0) / Math.max(1, availableParallelism())));
}

/**
 * Path of a working consul binary: $CONSUL_BIN, PATH, or the project's cached build (built
 * on first use; the script reports progress on stderr, passed to `onProgress`).
 */
export async function resolveConsulBinary(onProgress?: (line: string) => void): Promise<string> {
  const child = spawn("bash", [CONSUL_SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
    for (const line of d.toString().split("\n")) if (line.trim()) onProgress?.(line);
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const path = out.trim().split("\n").pop() ?? "";
  if (code !== 0 || !path) {
    throw new MeshError(
      "CONFIG_INVALID",
      `Could not provision a consul binary (scripts/consul.sh exited ${code}): ${err.trim().split("\n").slice(-3).join(" ")}`,
    );
  }
  return path;
}

export interface DevConsulOptions {
  /** Loopback address to bind (Linux routes all of 127/8), e.g. 127.0.0.1 or 127.42.7.9. */
  bindAddress: string;
  /** @default 8500 */
  httpPort?: number;
  /** Extra HCL, e.g. an acl block. */
  hcl?: string;
  /** consul binary; resolved with resolveConsulBinary() when omitted. */
  binary?: string;
  /** File that receives the agent's output. */
  logFile?: string;
  /** ACL token used to wait for readiness when ACLs are on. */
  token?: string;
  /**
   * Keep Consul's data (KV, catalog, sessions) in this directory across restarts: a single
   * server (`-server -bootstrap-expect=1 -data-dir <dir>`, same loopback binding and ports
   * off) instead of an in-memory `-dev` agent, which forgets everything when it stops.
   * Created if missing. @default undefined (a -dev agent)
   */
  dataDir?: string;
  /** Its datacenter's name. @default "dc1" (Consul's) */
  datacenter?: string;
  /**
   * Join these servers over the WAN (their serf WAN port, 8302, on their bind address): two
   * agents with different `datacenter`s become two datacenters that can query each other
   * (`?dc=`). Unset: the WAN port is off.
   */
  joinWan?: readonly string[];
}

export interface DevConsul {
  /** http://<bind>:<port> */
  readonly address: string;
  readonly process: ChildProcess;
  /** Stops the agent (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Sends a signal without waiting (failure tests). */
  kill(signal: NodeJS.Signals): void;
  readonly exited: Promise<number | null>;
}

/**
 * Starts an isolated Consul on one loopback address: DNS, gRPC and WAN off, no update
 * check. An in-memory `consul agent -dev`, or with `dataDir` a single server that keeps its
 * data there. Resolves once it has a leader.
 */
export async function startDevConsul(options: DevConsulOptions): Promise<DevConsul> {
  const binary = options.binary ?? (await resolveConsulBinary());
  const port = options.httpPort ?? 8500;
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const agent = spawnAgent(binary, agentArgs(options, port), options.logFile);
  const address = `http://${options.bindAddress}:${port}`;
  const what = options.dataDir ? "consul agent -server" : "consul agent -dev";
  await waitForLeader(agent, address, what, options.token);
  const { child, exited } = agent;
  return {
    address,
    process: child,
    exited,
    kill: (signal) => void child.kill(signal),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The command line of the agent: its mode, one loopback address for everything, the ports it does not need off. */
function agentArgs(options: DevConsulOptions, port: number): string[] {
  const mode = options.dataDir
    ? // One server that elects itself, its raft log and state on disk; the UI as -dev has it; fast raft timers.
      ["-server", "-bootstrap-expect=1", "-data-dir", options.dataDir, "-ui", "-hcl", "performance { raft_multiplier = 1 }"]
    : ["-dev"];
  return [
    "agent",
    ...mode,
    "-bind",
    options.bindAddress,
    "-client",
    options.bindAddress,
    "-http-port",
    String(port),
    "-dns-port",
    "-1",
    "-grpc-port",
    "-1",
    "-grpc-tls-port",
    "-1",
    ...(options.datacenter ? ["-datacenter", options.datacenter] : []),
    ...(options.joinWan ? options.joinWan.flatMap((a) => ["-retry-join-wan", a]) : ["-serf-wan-port", "-1"]),
    "-hcl",
    "disable_update_check = true",
    ...(options.hcl ? ["-hcl", options.hcl] : []),
  ];
}

/** A started agent process: its exit, and the end of its output (for an error that shows why it failed). */
interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** The last lines it wrote. */
  tail(): string;
}

/** Starts the agent, its output copied to `logFile` and the last 4 kB kept. */
function spawnAgent(binary: string, args: string[], logFile: string | undefined): AgentProcess {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let tail = "";
  const sink = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
  const onData = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4_000);
    sink?.write(d);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      sink?.end();
      resolve(code);
    }),
  );
  return { child, exited, tail: () => tail.trim().split("\n").slice(-5).join("\n") };
}

/** Polls until the agent has a leader; it exiting first, or no leader within the ready timeout, is an error with its last output. */
async function waitForLeader(agent: AgentProcess, address: string, what: string, token: string | undefined): Promise<void> {
  const consul = new ConsulClient({ address, token });
  const readyMs = readyTimeoutMs();
  const deadline = Date.now() + readyMs;
  let exitCode: number | null | undefined;
  void agent.exited.then((c) => (exitCode = c));
  try {
    for (;;) {
      if (exitCode !== undefined) {
        throw new MeshError(
          "CONSUL_UNREACHABLE",
          `${what} on ${address} exited with code ${exitCode} before electing a leader. Is the address or port in use? Last output:\n${agent.tail()}`,
        );
      }
      try {
        if (await consul.leader({ timeoutMs: 1_000 })) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        agent.child.kill("SIGKILL");
        throw new MeshError("CONSUL_UNREACHABLE", `${what} on ${address} had no leader after ${readyMs} ms. Last output:\n${agent.tail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    consul.destroy();
  }
}
