import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConsulClient } from "../../src/consul/client.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import type { LabHost, LabNetwork } from "./netns.ts";

/** The Consul servers of a lab, each on a host of its own. */
export const LAB_SERVERS = ["s1", "s2", "s3"] as const;
/** How long the lab waits for Consul or a process to come up (bounded polls). @default 90000 */
export const LAB_READY_MS = 90_000;

/** A Consul agent of the lab: a server or a host's client agent. */
export interface LabConsul {
  readonly host: LabHost;
  readonly role: "server" | "client";
  /** HTTP API, reachable from the root namespace. */
  readonly url: string;
  process: ChildProcess | undefined;
  exited: Promise<void>;
}

/** A Consul agent of the lab on `host`, not started yet. */
export function labConsul(host: LabHost, role: "server" | "client"): LabConsul {
  return { host, role, url: `http://${host.ip}:8500`, process: undefined, exited: Promise.resolve() };
}

/**
 * The agent's configuration: a server of three (raft data in its directory) or a client agent,
 * both joining the servers, with short gossip and election timers so faults converge in
 * seconds. Inside a namespace it also answers on 127.0.0.1:8500, as a host's agent does.
 */
function consulConfig(c: LabConsul, dir: string, net: LabNetwork): string {
  const servers = LAB_SERVERS.map((s) => `"${net.host(s).ip}"`).join(", ");
  return `node_name = "${c.host.name}"
datacenter = "lab"
data_dir = "${join(dir, "data")}"
server = ${c.role === "server"}
${c.role === "server" ? "bootstrap_expect = 3" : ""}
bind_addr = "${c.host.ip}"
advertise_addr = "${c.host.ip}"
client_addr = "${net.mode === "netns" ? `127.0.0.1 ${c.host.ip}` : c.host.ip}"
retry_join = [${servers}]
retry_interval = "1s"
ports { dns = -1, grpc = -1, grpc_tls = -1, serf_wan = -1 }
performance { raft_multiplier = 1 }
gossip_lan { probe_interval = "400ms", probe_timeout = "200ms", suspicion_mult = 3, gossip_interval = "100ms" }
disable_update_check = true
leave_on_terminate = false
skip_leave_on_interrupt = true
log_level = "info"
`;
}

/**
 * Writes the agent's configuration (again: the same) and starts it in its host, its output in
 * `<dir>/<host>/consul.log`; resolves once its HTTP API answers, fails if it exits first.
 */
export async function startLabConsul(c: LabConsul, o: { binary: string; dir: string; net: LabNetwork }): Promise<void> {
  const dir = join(o.dir, c.host.name);
  mkdirSync(join(dir, "data"), { recursive: true });
  const config = join(dir, "consul.hcl");
  writeFileSync(config, consulConfig(c, dir, o.net));
  const log = createWriteStream(join(dir, "consul.log"), { flags: "a" });
  const argv = [...o.net.exec(c.host.name), o.binary, "agent", "-config-file", config];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  c.process = child;
  c.exited = new Promise((resolve) => child.on("exit", () => resolve()));
  await pollUntil(`Lab ${o.net.id}: no consul ${c.role} on ${c.host.name} answering`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new MeshError(
        "CONFIG_INVALID",
        `consul on ${c.host.name} exited (${child.exitCode ?? child.signalCode}); see ${join(dir, "consul.log")}`,
      );
    }
    const client = new ConsulClient({ address: c.url, retryMs: 0 });
    return client
      .leader()
      .then(() => true)
      .catch(() => false)
      .finally(() => client.destroy());
  });
}

/**
 * Polls `check` (50 ms, doubling to 500 ms) until it is true; returns how long that took. After
 * `timeoutMs` it fails with a TIMEOUT saying `failure` ("Lab tml1a2b: no leader") and the bound.
 */
export async function pollUntil(failure: string, check: () => Promise<boolean>, timeoutMs = LAB_READY_MS): Promise<number> {
  const started = Date.now();
  for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new MeshError("TIMEOUT", `${failure} within ${timeoutMs} ms.`);
    await new Promise((r) => setTimeout(r, pause));
  }
}
