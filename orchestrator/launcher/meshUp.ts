import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConsulClient } from "../../src/consul/client.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import { AgentProcess, type ReadyInfo } from "./agentProcess.ts";
import { findOrStartConsul, parseAddressList, type MeshConsul } from "./meshConsul.ts";
import { readinessFromEnv, readinessLoadFactor } from "./readiness.ts";
import { superviseAgent, superviseConsul, watchConsul } from "./supervise.ts";

/** Agents `mesh up` starts, with their replica counts (hr twice: horizontal scaling). */
export const DEFAULT_TOPOLOGY: readonly { agent: string; replicas: number }[] = [
  { agent: "hr", replicas: 2 },
  { agent: "finance", replicas: 1 },
  { agent: "knowledge", replicas: 1 },
  { agent: "orchestrator", replicas: 1 },
];

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

export interface RunningInstance extends ReadyInfo {
  agent: string;
  label: string;
  logFile: string;
  process: AgentProcess;
}

export interface RunningMesh {
  /** The Consul address in use: the first that answered, or where mesh up started Consul. */
  consulAddress: string;
  /** Every address given (--consul or CONSUL_HTTP_ADDR, comma-separated), in order: what the agents and the gateway were given. */
  consulAddresses: readonly string[];
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

/** Every process mesh up spawned, ready or not, so a failed start never leaves one behind. */
class Spawned {
  readonly processes: AgentProcess[] = [];
  private readonly starts: Promise<unknown>[] = [];

  /** Starts `proc` and keeps it (and its start, to observe a start that fails after a stop). */
  start(proc: AgentProcess): Promise<ReadyInfo> {
    this.processes.push(proc);
    const started = proc.start();
    this.starts.push(started);
    return started;
  }

  /** Waits for the starts still going (they fail once their process is stopped). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.starts);
  }
}

/**
 * Starts (or reuses) Consul, then every agent, waits until all are passing in Consul, then
 * starts the gateway and keeps them all running (see supervise.ts). On any failure everything
 * started so far is stopped before the error is thrown.
 */
export async function meshUp(options: MeshUpOptions): Promise<RunningMesh> {
  const progress = options.onProgress ?? (() => undefined);
  mkdirSync(options.logDir, { recursive: true });
  const addresses = parseAddressList(options.consul); // a bad list fails before anything starts
  const spawned = new Spawned();
  let consul: MeshConsul | undefined;
  let stopping = false;
  let watching: { stop(): void } | undefined;
  const stop = async () => {
    stopping = true;
    watching?.stop();
    await Promise.all(spawned.processes.map((p) => p.stop()));
    await consul?.dev?.stop();
    consul?.client.destroy();
  };
  try {
    consul = await findOrStartConsul(addresses, options, progress);
    const env = childEnv(consul, options.token);
    const instances = await startAgents(options, env, spawned, progress);
    await waitPassing(consul.client, instances);
    const gateway = (options.gateway ?? true) ? await startGateway(options, env, spawned, progress) : undefined;
    if (options.restart ?? true)
      for (const inst of [...instances, ...(gateway ? [gateway] : [])]) superviseAgent(inst, progress, () => stopping);
    watching = consul.dev ? superviseConsul(consul, progress, () => stopping) : watchConsul(consul, progress, () => stopping);
    return running(consul, instances, gateway, spawned, stop);
  } catch (e) {
    await stop();
    await spawned.settled();
    throw e;
  }
}

/** What every process mesh up starts is told about Consul: every address given (CONSUL_HTTP_ADDR), and the token. */
function childEnv(consul: MeshConsul, token: string | undefined): NodeJS.ProcessEnv {
  return { CONSUL_HTTP_ADDR: consul.addresses.join(","), ...(token ? { CONSUL_HTTP_TOKEN: token } : {}) };
}

/** Starts every replica of the topology at once (ports after basePort); resolves when each logged that it is ready. */
async function startAgents(
  options: MeshUpOptions,
  env: NodeJS.ProcessEnv,
  spawned: Spawned,
  progress: (line: string) => void,
): Promise<RunningInstance[]> {
  const instances: RunningInstance[] = [];
  const starts: Promise<void>[] = [];
  let offset = 1;
  for (const { agent, replicas } of options.topology ?? DEFAULT_TOPOLOGY) {
    for (let r = 1; r <= replicas; r++) {
      const label = replicas > 1 ? `${agent}-${r}` : agent;
      const port = options.basePort === 0 ? 0 : options.basePort + offset++;
      const logFile = join(options.logDir, `${label}.log`);
      const proc = new AgentProcess({ agent, label, port, consul: env["CONSUL_HTTP_ADDR"]!, logFile, env });
      progress(`starting ${label}${port ? ` on port ${port}` : ""}`);
      starts.push(spawned.start(proc).then((ready) => void instances.push({ ...ready, agent, label, logFile, process: proc })));
    }
  }
  await Promise.all(starts);
  return instances.sort((a, b) => a.label.localeCompare(b.label));
}

/** The gateway: the whole mesh to MCP clients, A2A, and the console (not registered in Consul), on basePort. */
async function startGateway(
  options: MeshUpOptions,
  env: NodeJS.ProcessEnv,
  spawned: Spawned,
  progress: (line: string) => void,
): Promise<RunningInstance> {
  const logFile = join(options.logDir, "gateway.log");
  const proc = new AgentProcess({
    agent: GATEWAY_ENTRY,
    label: "gateway",
    port: options.basePort,
    consul: env["CONSUL_HTTP_ADDR"]!,
    logFile,
    env,
    readyMessage: "gateway ready",
  });
  progress(`starting the gateway${options.basePort ? ` on port ${options.basePort}` : ""}`);
  return { ...(await spawned.start(proc)), agent: "gateway", label: "gateway", logFile, process: proc };
}

/** The handle meshUp returns. */
function running(
  consul: MeshConsul,
  instances: RunningInstance[],
  gateway: RunningInstance | undefined,
  spawned: Spawned,
  stop: () => Promise<void>,
): RunningMesh {
  return {
    consulAddress: consul.url,
    consulAddresses: consul.addresses,
    startedConsul: Boolean(consul.dev),
    get consulPid() {
      return consul.dev?.process.pid;
    },
    consulLog: consul.log,
    consulDataDir: consul.dataDir,
    instances,
    gateway,
    stop,
    kill: () => {
      for (const p of spawned.processes) p.kill();
      consul.dev?.kill("SIGKILL");
    },
  };
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
