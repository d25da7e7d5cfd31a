import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConsulClient } from "../../src/consul/client.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import { AgentProcess } from "./agentProcess.ts";
import { LAB_READY_MS, LAB_SERVERS, labConsul, pollUntil, startLabConsul, type LabConsul } from "./labConsul.ts";
import { LabNetwork } from "./netns.ts";

/** Port every toolmesh process listens on inside its host (hosts have addresses of their own). @default 7100 */
export const LAB_BASE_PORT = 7_100;
const GATEWAY_ENTRY = fileURLToPath(new URL("../gateway/main.ts", import.meta.url));

/** What runs where: per host, the toolmesh processes on it. */
export type Placement = Record<string, readonly ("hr" | "finance" | "knowledge" | "orchestrator" | "gateway")[]>;

/**
 * The default spread over three hosts: every kind of agent, replicas of hr and finance on
 * different hosts, callers (orchestrator, two gateways) on different hosts from each other.
 */
export function defaultPlacement(hosts: number): Placement {
  if (!Number.isInteger(hosts) || hosts < 3 || hosts > 9) {
    throw new MeshError("CONFIG_INVALID", `A lab has 3 to 9 hosts (three is the fewest that can lose one); got ${hosts}.`);
  }
  const p: Record<string, ("hr" | "finance" | "knowledge" | "orchestrator" | "gateway")[]> = {
    h1: ["hr", "finance", "gateway"],
    h2: ["hr", "finance", "knowledge", "orchestrator"],
    h3: ["gateway"],
  };
  const spare = ["hr", "finance", "knowledge"] as const;
  for (let i = 4; i <= hosts; i++) p[`h${i}`] = [spare[(i - 4) % spare.length]!];
  return p;
}

export interface LabOptions {
  consulBinary: string;
  /** Where data directories and logs go. */
  dir: string;
  /** @default defaultPlacement(3) */
  placement?: Placement;
  /** Extra environment for the toolmesh processes. */
  env?: NodeJS.ProcessEnv;
  onProgress?: (line: string) => void;
  /**
   * Hosts as network namespaces, or as loopback addresses (no root needed; partitions are
   * simulated by freezing a host). Env MESH_LAB_MODE. @default "netns" where available, else "loopback"
   */
  mode?: "netns" | "loopback";
}

/** A toolmesh process of the lab. */
export interface LabProcess {
  readonly host: string;
  readonly kind: string;
  readonly label: string;
  readonly process: AgentProcess;
  url: string;
  instanceId: string;
  pid: number;
}

/**
 * A cluster on one machine, shaped as real deployments are: three Consul servers with data
 * directories (raft), a Consul client agent on every host, toolmesh agents registered with
 * their host's agent and callers reading through theirs (CONSUL_HTTP_ADDR=127.0.0.1:8500
 * inside each host). Hosts are network namespaces (see LabNetwork). Gossip and election
 * timers are short (raft_multiplier 1, fast probes) so faults converge in seconds; nothing
 * waits a fixed time. `down()` removes everything; call it in a finally.
 */
export class Lab {
  readonly net: LabNetwork;
  readonly servers: LabConsul[] = [];
  readonly clients: LabConsul[] = [];
  readonly processes: LabProcess[] = [];
  private readonly o: LabOptions;
  private readonly placement: Placement;
  private forget: () => void = () => undefined;

  private constructor(net: LabNetwork, options: LabOptions) {
    this.net = net;
    this.o = options;
    this.placement = options.placement ?? defaultPlacement(3);
  }

  /** Builds the lab. On any failure everything made so far is removed before the error is thrown. */
  static async up(options: LabOptions): Promise<Lab> {
    const wanted = options.mode ?? (process.env["MESH_LAB_MODE"] as "netns" | "loopback" | undefined);
    if (wanted !== undefined && wanted !== "netns" && wanted !== "loopback") {
      throw new MeshError("CONFIG_INVALID", `MESH_LAB_MODE is "${String(wanted)}"; expected netns or loopback.`);
    }
    const net = (wanted ?? (LabNetwork.available() ? "netns" : "loopback")) === "netns" ? await LabNetwork.create() : LabNetwork.loopback();
    const lab = new Lab(net, options);
    // Whatever way this process ends (but SIGKILL), the lab's processes end with it.
    const onExit = () => {
      for (const h of net.hosts) for (const pid of lab.pidsOf(h.name)) signal(pid, "SIGKILL");
    };
    process.once("exit", onExit);
    lab.forget = () => process.off("exit", onExit);
    try {
      await lab.build();
    } catch (e) {
      await lab.down();
      throw e;
    }
    return lab;
  }

  private say(line: string): void {
    this.o.onProgress?.(line);
  }

  private async build(): Promise<void> {
    mkdirSync(this.o.dir, { recursive: true });
    let octet = 10;
    for (const s of LAB_SERVERS) await this.net.addHost(s, ++octet);
    octet = 20;
    for (const h of Object.keys(this.placement)) await this.net.addHost(h, ++octet);
    this.say(`lab ${this.net.id}: network ${this.net.subnet}.0/24, hosts ${this.net.hosts.map((h) => `${h.name}=${h.ip}`).join(" ")}`);
    for (const s of LAB_SERVERS) this.servers.push(labConsul(this.net.host(s), "server"));
    for (const h of Object.keys(this.placement)) this.clients.push(labConsul(this.net.host(h), "client"));
    await Promise.all([...this.servers, ...this.clients].map((c) => this.startConsul(c)));
    await this.waitFor("a Consul leader and every client agent joined", async () => {
      for (const c of [...this.servers, ...this.clients])
        if (
          (await this.consulClient(c)
            .leader()
            .catch(() => "")) === ""
        )
          return false;
      return true;
    });
    this.say(`consul: 3 servers, leader ${await this.leader()}; client agents on ${this.clients.map((c) => c.host.name).join(", ")}`);
    // Agents first (in parallel), then the callers, which find them.
    const spawnAll = async (callers: boolean) => {
      const starts: Promise<void>[] = [];
      for (const [host, kinds] of Object.entries(this.placement)) {
        kinds.forEach((kind, i) => {
          if ((kind === "gateway" || kind === "orchestrator") !== callers) return;
          starts.push(this.startProcess(host, kind, LAB_BASE_PORT + i));
        });
      }
      await Promise.all(starts);
    };
    await spawnAll(false);
    await spawnAll(true);
    this.say(`toolmesh: ${this.processes.map((p) => p.label).join(" ")}`);
  }

  /** Starts a Consul agent of the lab in its host (its configuration written once), and waits until it answers. */
  private startConsul(c: LabConsul): Promise<void> {
    return startLabConsul(c, { binary: this.o.consulBinary, dir: this.o.dir, net: this.net });
  }

  private async startProcess(host: string, kind: string, port: number): Promise<void> {
    const h = this.net.host(host);
    const label = `${kind}@${host}`;
    const proc = new AgentProcess({
      agent: kind === "gateway" ? GATEWAY_ENTRY : kind,
      label,
      port,
      consul: this.localConsul(host), // the host's own Consul agent
      logFile: join(this.o.dir, host, `${kind}.log`),
      extraArgs: ["--host", h.ip],
      wrapper: this.net.exec(host),
      // Every host of the lab has the same hostname (namespaces share it): ids name the host.
      env: { MESH_CHECK_INTERVAL: "1s", MESH_INSTANCE_ID: `${kind}-${host}-${port}`, ...this.o.env },
      ...(kind === "gateway" ? { readyMessage: "gateway ready" } : {}),
    });
    const ready = await proc.start();
    this.processes.push({ host, kind, label, process: proc, url: ready.url, instanceId: ready.instanceId, pid: ready.pid });
  }

  /** How a process on a host reaches its host's Consul agent: 127.0.0.1:8500 inside a namespace, the host's address on loopback. */
  localConsul(host: string): string {
    return this.net.mode === "netns" ? "http://127.0.0.1:8500" : `http://${this.net.host(host).ip}:8500`;
  }

  /** Every pid of a host: its Consul agent and its toolmesh processes. */
  private pidsOf(host: string): number[] {
    const consul = [...this.servers, ...this.clients].filter((c) => c.host.name === host && c.process?.pid !== undefined);
    return [
      ...consul.map((c) => c.process!.pid!),
      ...this.processesOn(host).flatMap((p) => (p.process.pid === undefined ? [] : [p.process.pid])),
    ];
  }

  /**
   * Cuts a host off the others. With namespaces: its link goes down (it runs on, alone). On
   * loopback, where traffic cannot be cut: its processes are frozen (SIGSTOP), which the others
   * see the same way (no gossip, no checks, no answers).
   */
  async partition(host: string): Promise<void> {
    if (this.net.mode === "netns") return this.net.partition(host);
    for (const pid of this.pidsOf(host)) signal(pid, "SIGSTOP");
  }

  async heal(host: string): Promise<void> {
    if (this.net.mode === "netns") return this.net.heal(host);
    for (const pid of this.pidsOf(host)) signal(pid, "SIGCONT");
  }

  /** SIGKILLs every process of a host; returns their pids. */
  async killHost(host: string): Promise<number[]> {
    if (this.net.mode === "netns") return this.net.killHost(host);
    const pids = this.pidsOf(host);
    for (const pid of pids) signal(pid, "SIGKILL");
    return pids;
  }

  /** A client of one Consul agent of the lab (for assertions), not retrying: it asks that one agent once. */
  consulClient(c: LabConsul): ConsulClient {
    return new ConsulClient({ address: c.url, retryMs: 0 });
  }

  /** The host's client agent. */
  client(host: string): LabConsul {
    const c = this.clients.find((x) => x.host.name === host);
    if (!c) throw new MeshError("CONFIG_INVALID", `The lab has no client agent on "${host}".`);
    return c;
  }

  server(name: string): LabConsul {
    const c = this.servers.find((x) => x.host.name === name);
    if (!c) throw new MeshError("CONFIG_INVALID", `The lab has no Consul server "${name}".`);
    return c;
  }

  /** The name of the server that is raft leader now ("" while there is none), as a running server reports it. */
  async leader(): Promise<string> {
    for (const s of this.servers) {
      if (!s.process || s.process.exitCode !== null || s.process.signalCode !== null) continue;
      const addr = await this.consulClient(s)
        .leader({ timeoutMs: 2_000 })
        .catch(() => "");
      const ip = addr.split(":")[0];
      const found = this.servers.find((x) => x.host.ip === ip);
      if (found) return found.host.name;
    }
    return "";
  }

  /** SIGKILLs one Consul agent (server or client). */
  async killConsul(c: LabConsul): Promise<void> {
    c.process?.kill("SIGKILL");
    await c.exited;
  }

  /** Starts a killed Consul agent again, same data directory. */
  async restartConsul(c: LabConsul): Promise<void> {
    await this.startConsul(c);
  }

  processesOn(host: string): LabProcess[] {
    return this.processes.filter((p) => p.host === host);
  }

  find(label: string): LabProcess {
    const p = this.processes.find((x) => x.label === label);
    if (!p) throw new MeshError("CONFIG_INVALID", `The lab runs no "${label}"; it runs ${this.processes.map((x) => x.label).join(", ")}.`);
    return p;
  }

  /** Polls `check` until true, up to LAB_READY_MS; returns how long it took. */
  waitFor(what: string, check: () => Promise<boolean>, timeoutMs = LAB_READY_MS): Promise<number> {
    return pollUntil(`Lab ${this.net.id}: no ${what}`, check, timeoutMs);
  }

  /** Stops every process (toolmesh first, SIGTERM, then Consul) and removes the network. Never throws; safe to call twice. */
  async down(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.process.stop(3_000).catch(() => undefined)));
    for (const c of [...this.clients, ...this.servers]) c.process?.kill("SIGKILL");
    await Promise.all([...this.clients, ...this.servers].map((c) => c.exited));
    await this.net.destroy().catch(() => undefined);
    this.forget();
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
