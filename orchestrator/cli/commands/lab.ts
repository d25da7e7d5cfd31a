import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { resolveConsulBinary } from "../../../src/consul/devAgent.ts";
import { EXIT } from "../../../src/protocol/codes.ts";
import { defaultPlacement, Lab } from "../../launcher/lab.ts";
import { destroyLab, LabNetwork, listLabs } from "../../launcher/netns.ts";
import { UsageError } from "../../common/errors.ts";

/**
 * `mesh lab up --hosts 3`: a Consul cluster and the mesh across hosts on this machine (network
 * namespaces; needs root), for trying failures by hand; `mesh lab down [id]` removes a lab left
 * behind. `up` runs until Ctrl-C and removes everything on its way out.
 */
export function labCommand(): Command {
  const lab = new Command("lab").description(
    "a cluster on this machine: 3 Consul servers, hosts with client agents and agents (network namespaces; root)",
  );
  upCommand(lab);
  downCommand(lab);
  return lab;
}

/** `mesh lab up`: builds the lab, prints how to reach it, and removes it on Ctrl-C (or SIGTERM). */
function upCommand(lab: Command): void {
  lab
    .command("up")
    .description("build the lab and keep it running until Ctrl-C (then remove it)")
    .option("--hosts <n>", "hosts with a Consul client agent and toolmesh processes (3-9)", "3")
    .option("--dir <dir>", "where Consul data directories and logs go (default: a new temporary directory)")
    .action(async (opts: { hosts: string; dir?: string }) => {
      const hosts = Number(opts.hosts);
      if (!Number.isInteger(hosts) || hosts < 3 || hosts > 9)
        throw new UsageError(`--hosts must be a whole number from 3 to 9; got "${opts.hosts}".`);
      if (!LabNetwork.available()) {
        process.stderr.write(
          "  no network namespaces here (they need root and iproute2): hosts are loopback addresses instead, and a partition can only be simulated by freezing a host's processes (kill -STOP)\n",
        );
      }
      const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "toolmesh-lab-"));
      const say = (line: string) => process.stderr.write(`  ${line}\n`);
      const consulBinary = await resolveConsulBinary(say);
      const built = await Lab.up({
        consulBinary,
        dir,
        placement: defaultPlacement(hosts),
        onProgress: say,
      });
      removeOnSignal(built, say);
      process.stdout.write(`${summary(built, dir, consulBinary).join("\n")}\n`);
    });
}

/** On SIGINT or SIGTERM (once): removes the lab and exits 0. */
function removeOnSignal(built: Lab, say: (line: string) => void): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say("removing the lab");
    await built.down();
    process.exit(EXIT.OK);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

/** What `mesh lab up` prints once the lab is up: its hosts, what runs on each, and commands to try. */
function summary(built: Lab, dir: string, consulBinary: string): string[] {
  const id = built.net.id;
  const cli = `${process.execPath} ${process.argv[1] ?? "orchestrator/cli/main.ts"}`;
  return [
    `lab ${id} is up (logs and data in ${dir})`,
    "",
    ...built.net.hosts.map((h) => {
      const what = h.name.startsWith("s")
        ? "consul server"
        : `consul client agent; ${built
            .processesOn(h.name)
            .map((p) => `${p.kind} ${p.url}`)
            .join(", ")}`;
      return `  ${h.name.padEnd(3)} ${h.ip.padEnd(15)} netns ${h.netns}: ${what}`;
    }),
    "",
    "Try:",
    ...(built.net.mode === "loopback"
      ? [
          `  ${cli} agents --consul ${built.localConsul("h3")}`,
          `  ${consulBinary} operator raft list-peers -http-addr=${built.server("s1").url}`,
          "  kill -9 <pid of the leader's consul>; kill -STOP / -CONT every process of a host to cut it off and back",
        ]
      : [
          `  ip netns exec ${id}-h3 ${cli} agents --consul 127.0.0.1:8500`,
          `  ip netns exec ${id}-s1 ${consulBinary} operator raft list-peers -http-addr=${built.server("s1").url}`,
          `  kill -9 <pid of the leader's consul>          # ip netns pids ${id}-s1`,
          `  ip link set ${built.net.host("h1").link} down                 # partition h1 (up to heal)`,
        ]),
    "",
    "Ctrl-C removes the lab; if this process is killed, `mesh lab down` does.",
  ];
}

/** `mesh lab down [id]`: removes a lab left behind (or every lab on this machine). */
function downCommand(lab: Command): void {
  lab
    .command("down")
    .argument("[id]", "the lab to remove (default: every lab on this machine)")
    .description("kill every process of a lab and remove its namespaces, veths and bridge")
    .action(async (id?: string) => {
      const ids = id ? [id] : await listLabs();
      for (const x of ids) {
        await destroyLab(x);
        process.stdout.write(`removed lab ${x}\n`);
      }
      if (ids.length === 0) process.stdout.write("no lab on this machine\n");
    });
}
