import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConsulClient } from "../../src/consul/client.ts";
import { parseConsulAddress } from "../../src/consul/address.ts";
import { startDevConsul, resolveConsulBinary, type DevConsul } from "../../src/consul/devAgent.ts";
import { MeshError, describeError } from "../../src/protocol/errors.ts";
import { AgentProcess, readinessFromEnv, readinessLoadFactor, type ReadyInfo } from "./agentProcess.ts";

/** Agents `mesh up` starts, with their replica counts (hr twice: horizontal scaling). */
export const DEFAULT_TOPOLOGY: readonly { agent: string; replicas: number }[] = [
  { agent: "hr", replicas: 2 },
  { agent: "finance", replicas: 1 },
  { agent: "knowledge", replicas: 1 },
  { agent: "orchestrator", replicas: 1 },
];

/** First wait before restarting an agent that exited on its own; doubles while it keeps failing. @default 1000 */
export const RESTART_FIRST_DELAY_MS = 1_000;
/** Longest wait between restarts. @default 30000 */
export const RESTART_MAX_DELAY_MS = 30_000;
/** Uptime after which an agent's restart delay starts again from the first. @default 60000 */
export const RESTART_RESET_AFTER_MS = 60_000;

/** The gateway's entry script. */
const GATEWAY_ENTRY = fileURLToPath(new URL("../gateway/main.ts", import.meta.url));

/** The gateway's port under `mesh up`; the agents take the ports after it. @default 7100 */
export const DEFAULT_BASE_PORT = 7100;

export interface MeshUpOptions {
  consul: string;
  token?: string;
  basePort: number;
  logDir: string;
  topology?: readonly { agent: string; replicas: number }[];
  onProgress?: (line: string) => void;
  /** Start an agent again when it exits on its own. @default true */
  restart?: boolean;
  /** Also run the gateway (the whole mesh at /mcp, its console at /ui) on basePort. @default true */
  gateway?: boolean;
  /**
   * When mesh up starts Consul: keep its data under this directory (one subdirectory per
   * address, see consulDataDir), so bookings, expenses, task and idempotency records survive
   * a restart of that Consul. Undefined: an in-memory -dev agent that keeps nothing.
   * (`mesh up` passes .mesh/consul unless told --no-data-dir.) @default undefined
   */
  dataDir?: string;
}

/** Where mesh up keeps the data of the Consul it starts on `host:port` under `dataDir` (a server's raft state is tied to its address). */
export function consulDataDir(dataDir: string, host: string, port: number): string {
  return join(dataDir, `${host}-${port}`);
}

export interface RunningInstance extends ReadyInfo {
  agent: string;
  label: string;
  logFile: string;
  process: AgentProcess;
}

export interface RunningMesh {
  consulAddress: string;
  /** True when mesh up started Consul (and will stop it). */
  startedConsul: boolean;
  /** The pid of the Consul mesh up runs now (it changes when it is started again). */
  readonly consulPid: number | undefined;
  consulLog: string | undefined;
  /** Where the Consul mesh up started keeps its data (undefined: in memory, a -dev agent, or a Consul it did not start). */
  consulDataDir: string | undefined;
  instances: RunningInstance[];
  /** The gateway mesh up runs (its `url` is its /mcp endpoint). */
  gateway: RunningInstance | undefined;
  stop(): Promise<void>;
  /** Kills everything at once (second Ctrl-C). */
  kill(): void;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Starts (or reuses) Consul, then every agent, and waits until all are passing in Consul. */
export async function meshUp(options: MeshUpOptions): Promise<RunningMesh> {
  const progress = options.onProgress ?? (() => undefined);
  mkdirSync(options.logDir, { recursive: true });
  const addr = parseConsulAddress(options.consul);
  const consul = new ConsulClient({ address: addr.url, token: options.token });
  let dev: DevConsul | undefined;
  let consulLog: string | undefined;
  let dataDir: string | undefined;
  const instances: RunningInstance[] = [];
  // Every spawned process, ready or not, so a failed start never leaves one behind.
  const processes: AgentProcess[] = [];
  const starts: Promise<void>[] = [];

  let stopping = false;
  let devOptions: Parameters<typeof startDevConsul>[0] | undefined;
  let watchingConsul: { stop(): void } | undefined;
  const stop = async () => {
    stopping = true;
    watchingConsul?.stop();
    await Promise.all(processes.map((p) => p.stop()));
    await dev?.stop();
    consul.destroy();
  };

  try {
    let reachable = false;
    try {
      reachable = Boolean(await consul.leader({ timeoutMs: 1_500 }));
    } catch (e) {
      if (!isLoopback(addr.host)) throw e;
    }
    if (!reachable) {
      if (!isLoopback(addr.host)) {
        throw new MeshError(
          "CONSUL_UNREACHABLE",
          `Consul at ${addr.url} has no leader, and it is not on this machine, so mesh up cannot start one there. Start it, or use --consul with a loopback address.`,
        );
      }
      const bindAddress = addr.host === "localhost" ? "127.0.0.1" : addr.host;
      dataDir = options.dataDir === undefined ? undefined : consulDataDir(options.dataDir, bindAddress, addr.port);
      progress(
        dataDir
          ? `no Consul at ${addr.url}; starting one (a single server keeping its data in ${dataDir})`
          : `no Consul at ${addr.url}; starting a dev agent (consul agent -dev: in memory, nothing kept when it stops)`,
      );
      const binary = await resolveConsulBinary(progress);
      consulLog = join(options.logDir, "consul.log");
      devOptions = { bindAddress, httpPort: addr.port, binary, logFile: consulLog, ...(dataDir ? { dataDir } : {}) };
      dev = await startDevConsul(devOptions);
    } else {
      progress(`using the Consul agent already running at ${addr.url}`);
    }

    const topology = options.topology ?? DEFAULT_TOPOLOGY;
    let offset = 1;
    for (const { agent, replicas } of topology) {
      for (let r = 1; r <= replicas; r++) {
        const label = replicas > 1 ? `${agent}-${r}` : agent;
        const port = options.basePort === 0 ? 0 : options.basePort + offset++;
        const logFile = join(options.logDir, `${label}.log`);
        const proc = new AgentProcess({
          agent,
          label,
          port,
          consul: addr.url,
          logFile,
          env: options.token ? { CONSUL_HTTP_TOKEN: options.token } : {},
        });
        progress(`starting ${label}${port ? ` on port ${port}` : ""}`);
        processes.push(proc);
        starts.push(proc.start().then((ready) => void instances.push({ ...ready, agent, label, logFile, process: proc })));
      }
    }
    await Promise.all(starts);
    await waitPassing(consul, instances);
    instances.sort((a, b) => a.label.localeCompare(b.label));
    // The gateway: the whole mesh to MCP clients, A2A, and the console (not registered in Consul).
    let gateway: RunningInstance | undefined;
    if (options.gateway ?? true) {
      const logFile = join(options.logDir, "gateway.log");
      const proc = new AgentProcess({
        agent: GATEWAY_ENTRY,
        label: "gateway",
        port: options.basePort,
        consul: addr.url,
        logFile,
        env: options.token ? { CONSUL_HTTP_TOKEN: options.token } : {},
        readyMessage: "gateway ready",
      });
      progress(`starting the gateway${options.basePort ? ` on port ${options.basePort}` : ""}`);
      processes.push(proc);
      gateway = { ...(await proc.start()), agent: "gateway", label: "gateway", logFile, process: proc };
    }
    if (options.restart ?? true)
      for (const inst of [...instances, ...(gateway ? [gateway] : [])]) supervise(inst, progress, () => stopping);
    watchingConsul = dev
      ? superviseConsul(
          () => dev!,
          async () => {
            dev = await startDevConsul(devOptions!);
            return dev;
          },
          progress,
          () => stopping,
          dataDir,
        )
      : watchConsul(consul, addr.url, progress, () => stopping);
    return {
      consulAddress: addr.url,
      startedConsul: Boolean(dev),
      get consulPid() {
        return dev?.process.pid;
      },
      consulLog,
      consulDataDir: dataDir,
      instances,
      gateway,
      stop,
      kill: () => {
        for (const p of processes) p.kill();
        dev?.kill("SIGKILL");
      },
    };
  } catch (e) {
    await stop();
    await Promise.allSettled(starts); // the other starts fail once stopped; observe them
    throw e;
  }
}

/**
 * Starts an agent again (same label, port and log) whenever it exits while the mesh is up:
 * after RESTART_FIRST_DELAY_MS, doubling up to RESTART_MAX_DELAY_MS while it keeps failing,
 * back to the first delay once it has stayed up RESTART_RESET_AFTER_MS.
 */
function supervise(inst: RunningInstance, progress: (line: string) => void, stopping: () => boolean): void {
  let delay = RESTART_FIRST_DELAY_MS;
  let startedAt = Date.now();
  const watch = () =>
    void inst.process.exited.then(async (code) => {
      if (stopping()) return;
      if (Date.now() - startedAt >= RESTART_RESET_AFTER_MS) delay = RESTART_FIRST_DELAY_MS;
      progress(`${inst.label} exited (code ${code}); starting it again in ${delay / 1_000} s; its log: ${inst.logFile}`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RESTART_MAX_DELAY_MS);
      if (stopping()) return;
      startedAt = Date.now();
      try {
        Object.assign(inst, await inst.process.start());
        progress(`${inst.label} is back (${inst.instanceId}, pid ${inst.pid})`);
      } catch (e) {
        progress(`${inst.label} did not start again: ${describeError(e)}`);
        inst.process.kill(); // a start that timed out leaves a process: its exit schedules the next try
      }
      watch();
    });
  watch();
}

/** How often mesh up checks a Consul it did not start. @default 5000 */
export const CONSUL_CHECK_INTERVAL_MS = 5_000;

/**
 * Starts the Consul mesh up runs again whenever it exits while the mesh is up (after 1 s,
 * doubling to 30 s while it keeps failing), saying so. With a data directory it comes back
 * with everything it had; a -dev agent comes back empty, and the agents notice the empty
 * catalog and register again by themselves (their reconcile loop), saying their data is lost.
 */
function superviseConsul(
  current: () => DevConsul,
  restart: () => Promise<DevConsul>,
  progress: (line: string) => void,
  stopping: () => boolean,
  dataDir: string | undefined,
): { stop(): void } {
  const kind = dataDir ? "Consul" : "the Consul dev agent";
  let delay = RESTART_FIRST_DELAY_MS;
  let stopped = false;
  const watch = (agent: DevConsul) =>
    void agent.exited.then(async (code) => {
      if (stopped || stopping()) return;
      progress(`${kind} exited (code ${code}); starting it again in ${delay / 1_000} s (agents keep serving meanwhile)`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RESTART_MAX_DELAY_MS);
      if (stopped || stopping()) return;
      try {
        const fresh = await restart();
        delay = RESTART_FIRST_DELAY_MS;
        progress(
          dataDir
            ? `Consul is back at ${fresh.address} (pid ${fresh.process.pid}) with its data (${dataDir})`
            : `Consul is back at ${fresh.address} (pid ${fresh.process.pid}), empty (a dev agent keeps nothing); the agents register again within seconds`,
        );
        watch(fresh);
      } catch (e) {
        progress(`${kind} did not start again: ${describeError(e)}; trying again`);
        watch({ ...current(), exited: Promise.resolve(null) });
      }
    });
  watch(current());
  return { stop: () => void (stopped = true) };
}

/** Says when a Consul that mesh up did not start becomes unreachable, and when it is back. */
function watchConsul(consul: ConsulClient, address: string, progress: (line: string) => void, stopping: () => boolean): { stop(): void } {
  let down = false;
  const timer = setInterval(() => {
    if (stopping()) return;
    void consul.leader({ timeoutMs: 2_000 }).then(
      (leader) => {
        if (down && leader) progress(`Consul at ${address} is reachable again; the agents register again within seconds`);
        if (leader) down = false;
      },
      (e: unknown) => {
        if (!down) progress(`Consul at ${address} is unreachable (${describeError(e)}); agents keep serving from their last-known catalog`);
        down = true;
      },
    );
  }, CONSUL_CHECK_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * Waits until every instance passes its Consul health check: fails at once when one of
 * them exits, and otherwise after MESH_READY_TIMEOUT_MS scaled by the machine's load.
 */
async function waitPassing(consul: ConsulClient, instances: readonly RunningInstance[]): Promise<void> {
  const { timeoutMs } = readinessFromEnv();
  const started = Date.now();
  const pending = new Set(instances.map((i) => i.instanceId));
  while (pending.size > 0) {
    for (const agent of new Set(instances.map((i) => i.agent))) {
      const { value } = await consul.healthService(agent, { passing: true });
      for (const e of value) pending.delete(e.id);
    }
    if (pending.size === 0) return;
    const gone = instances.filter((i) => pending.has(i.instanceId) && !i.process.running);
    if (gone.length > 0) {
      throw new MeshError(
        "AGENT_UNREACHABLE",
        `${gone.map((i) => i.label).join(", ")} exited before passing its Consul health check; see ${gone.map((i) => i.logFile).join(", ")}.`,
      );
    }
    const allowance = timeoutMs * readinessLoadFactor();
    if (Date.now() - started > allowance) {
      throw new MeshError(
        "TIMEOUT",
        `These instances did not pass their Consul health check within ${Math.round(allowance / 1_000)} s (MESH_READY_TIMEOUT_MS ${timeoutMs} ms, scaled by this machine's load): ${[...pending].join(", ")}. See their logs, or raise MESH_READY_TIMEOUT_MS.`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
