import { execFile, execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";
import { MeshError } from "../../src/protocol/errors.ts";

const run = promisify(execFile);

/** Prefix of every network namespace, bridge and veth the lab creates (`tml` + 4 hex digits). */
export const LAB_PREFIX = "tml";

/** One simulated host: a network namespace with one address on the lab's bridge, and no route out. */
export interface LabHost {
  /** Short name inside the lab: s1, h1, ... */
  readonly name: string;
  /** The network namespace, e.g. tml3fa2-h1. */
  readonly netns: string;
  /** Its address on the lab's network, e.g. 10.217.4.21. */
  readonly ip: string;
  /** The veth end in the root namespace: setting it down cuts the host off (a partition). */
  readonly link: string;
}

/**
 * A private network of hosts made of Linux network namespaces joined by veth pairs to one
 * bridge. Addresses come from a random 10.x.y.0/24; the namespaces have no default route, so
 * nothing inside reaches beyond the lab. The bridge carries .1 in the root namespace so the
 * process that built the lab (a test, `mesh lab up`) can reach every host. All names carry the
 * lab's id, so labs built at the same time never collide.
 */
export class LabNetwork {
  readonly id: string;
  /**
   * "netns": hosts are network namespaces on a bridge. "loopback" (no root or no `ip netns`):
   * hosts are distinct 127.x.y.z addresses of this machine's loopback; processes run in the root
   * namespace, and a partition is simulated by freezing the host's processes (see Lab.partition).
   */
  readonly mode: "netns" | "loopback";
  readonly bridge: string;
  readonly subnet: string;
  /** The root namespace's address on the lab network. */
  readonly gateway: string;
  readonly hosts: LabHost[] = [];
  private destroyed = false;
  /** Removes the exit hook once the lab is gone. */
  private forget: () => void = () => undefined;

  private constructor(id: string, subnet: string, mode: "netns" | "loopback" = "netns") {
    this.id = id;
    this.mode = mode;
    this.bridge = `${id}br`;
    this.subnet = subnet;
    this.gateway = `${subnet}.1`;
  }

  /** Whether this machine lets us build namespaces (root, iproute2). */
  static available(): boolean {
    try {
      execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
      return process.getuid?.() === 0;
    } catch {
      return false;
    }
  }

  /** Creates the bridge; hosts are added with addHost. On any failure what was made is removed. */
  static async create(id = `${LAB_PREFIX}${randomInt(0, 0xffff).toString(16).padStart(4, "0")}`): Promise<LabNetwork> {
    if (!/^tml[0-9a-f]{4}$/.test(id)) throw new MeshError("CONFIG_INVALID", `Lab id "${id}" is not tml followed by 4 hex digits.`);
    const net = new LabNetwork(id, await freeSubnet());
    // Registered before anything exists: whatever way this process ends (but SIGKILL), the lab goes with it.
    const onExit = () => destroyLabSync(id);
    process.once("exit", onExit);
    net.forget = () => process.off("exit", onExit);
    try {
      await ip("link", "add", net.bridge, "type", "bridge");
      await ip("addr", "add", `${net.gateway}/24`, "dev", net.bridge);
      await ip("link", "set", net.bridge, "up");
    } catch (e) {
      await net.destroy();
      throw e;
    }
    return net;
  }

  /** Hosts on distinct loopback addresses (127.x.y.0/24, random): where namespaces are not available. */
  static loopback(id = `${LAB_PREFIX}${randomInt(0, 0xffff).toString(16).padStart(4, "0")}`): LabNetwork {
    return new LabNetwork(id, `127.${randomInt(1, 255)}.${randomInt(0, 256)}`, "loopback");
  }

  /** Adds a host (namespace + veth to the bridge; or, on loopback, just an address) with address .`octet`. */
  async addHost(name: string, octet: number): Promise<LabHost> {
    const host: LabHost = { name, netns: `${this.id}-${name}`, ip: `${this.subnet}.${octet}`, link: `${this.id}${name}a` };
    this.hosts.push(host); // registered first: destroy() removes it even if a step below fails
    if (this.mode === "loopback") return host;
    const inner = `${this.id}${name}b`;
    await ip("netns", "add", host.netns);
    await ip("link", "add", host.link, "type", "veth", "peer", "name", inner);
    await ip("link", "set", inner, "netns", host.netns);
    await ip("link", "set", host.link, "master", this.bridge);
    await ip("link", "set", host.link, "up");
    await ip("-n", host.netns, "link", "set", "lo", "up");
    await ip("-n", host.netns, "link", "set", inner, "name", "eth0");
    await ip("-n", host.netns, "addr", "add", `${host.ip}/24`, "dev", "eth0");
    await ip("-n", host.netns, "link", "set", "eth0", "up");
    return host;
  }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new MeshError("CONFIG_INVALID", `The lab has no host "${name}"; it has ${this.hosts.map((x) => x.name).join(", ")}.`);
    return h;
  }

  /** Cuts a host off the lab network (its veth down): it and everything in it keep running, alone. */
  async partition(name: string): Promise<void> {
    await ip("link", "set", this.host(name).link, "down");
  }

  /** Joins a partitioned host back. */
  async heal(name: string): Promise<void> {
    await ip("link", "set", this.host(name).link, "up");
  }

  /** The command prefix that runs a program inside a host (none on loopback). */
  exec(name: string): string[] {
    return this.mode === "loopback" ? [] : ["ip", "netns", "exec", this.host(name).netns];
  }

  /** SIGKILLs every process inside a host's namespace (the host dies); returns their pids. */
  async killHost(name: string): Promise<number[]> {
    const pids = await netnsPids(this.host(name).netns);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    return pids;
  }

  /** Kills whatever still runs in the lab's namespaces and removes them, the veths and the bridge. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.mode === "netns") await destroyLab(this.id);
    this.forget();
  }
}

/** Pids of the processes in a network namespace. */
export async function netnsPids(netns: string): Promise<number[]> {
  try {
    const { stdout } = await run("ip", ["netns", "pids", netns]);
    return stdout
      .split("\n")
      .map((l) => Number(l.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/** Labs whose namespaces exist on this machine now (their ids). */
export async function listLabs(): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  const ids = new Set<string>();
  for (const line of stdout.split("\n")) {
    const m = /^(tml[0-9a-f]{4})-/.exec(line.trim());
    if (m) ids.add(m[1]!);
  }
  return [...ids].sort();
}

/** Removes a lab by id: SIGKILL of every process in its namespaces, then the namespaces, veths and bridge. */
export async function destroyLab(id: string): Promise<void> {
  if (!/^tml[0-9a-f]{4}$/.test(id)) throw new MeshError("CONFIG_INVALID", `Lab id "${id}" is not tml followed by 4 hex digits.`);
  const { stdout } = await run("ip", ["netns", "list"]).catch(() => ({ stdout: "" }));
  const spaces = stdout
    .split("\n")
    .map((l) => l.trim().split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`${id}-`));
  for (const ns of spaces) {
    for (const pid of await netnsPids(ns)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  for (const ns of spaces) await ip("netns", "delete", ns).catch(() => undefined);
  const links = await run("ip", ["-o", "link", "show"]).catch(() => ({ stdout: "" }));
  for (const line of links.stdout.split("\n")) {
    const m = new RegExp(`^\\d+: (${id}[a-z0-9]*)[@:]`).exec(line);
    if (m && m[1] !== `${id}br`) await ip("link", "delete", m[1]!).catch(() => undefined);
  }
  await ip("link", "delete", `${id}br`).catch(() => undefined);
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run("ip", args);
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new MeshError("CONFIG_INVALID", `ip ${args.join(" ")} failed: ${(err.stderr ?? err.message ?? "").trim()}`, { cause: e });
  }
}

/** A random 10.x.y (x in 200-249) that no route of this machine uses yet (another lab, a VPN). */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run("ip", ["-4", "route", "show"]).catch(() => ({ stdout: "" }));
  for (let i = 0; i < 50; i++) {
    const subnet = `10.${randomInt(200, 250)}.${randomInt(0, 256)}`;
    if (!stdout.includes(`${subnet}.`)) return subnet;
  }
  throw new MeshError("CONFIG_INVALID", "Found no free 10.200-249.x.0/24 for a lab network: remove old labs with mesh lab down.");
}

/** destroyLab for a process that is exiting (no event loop left): the same steps, synchronously. */
function destroyLabSync(id: string): void {
  const sh = (args: string[]) => {
    try {
      return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return "";
    }
  };
  const spaces = sh(["netns", "list"])
    .split("\n")
    .map((l) => l.trim().split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`${id}-`));
  for (const ns of spaces) {
    for (const pid of sh(["netns", "pids", ns]).split("\n").map(Number)) {
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
  }
  for (const ns of spaces) sh(["netns", "delete", ns]);
  sh(["link", "delete", `${id}br`]);
}
