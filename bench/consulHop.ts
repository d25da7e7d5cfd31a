// What the cluster topology costs toolmesh's Consul traffic: the same requests a keyed tool call
// and a caller's discovery make, sent to a single `consul agent -dev` (every test, `mesh up`) and
// to a three-server cluster through a host's client agent (the recommended shape) and straight
// to a server, measured in the same run. A tool call itself never passes through Consul: only
// its claim (idempotency key: a check-and-set transaction), its fenced effects and the
// catalog's watches do.
//
// Usage (root: the cluster's hosts are network namespaces): node bench/consulHop.ts [--quick]
import { randomInt } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab } from "../orchestrator/launcher/lab.ts";
import { LabNetwork } from "../orchestrator/launcher/netns.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../src/consul/devAgent.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const quick = process.argv.includes("--quick");
const COUNT = quick ? 200 : 1_000;
const THROUGHPUT_MS = quick ? 2_000 : 5_000;

interface Target {
  name: string;
  client: ConsulClient;
}

/** One claim as the idempotency ledger makes it: create-if-absent, then the final record, check-and-set. */
async function claim(c: ConsulClient, prefix: string, n: number): Promise<void> {
  const key = `${prefix}/${n}`;
  const created = await c.kvTxn([{ verb: "cas", key, value: '{"state":"running"}', index: 0 }]);
  if (!created.ok) throw new Error(`claim ${key} refused`);
  const done = await c.kvTxn([{ verb: "cas", key, value: '{"state":"done"}', index: created.results[0]!.modifyIndex }]);
  if (!done.ok) throw new Error(`final record ${key} refused`);
}

async function rows(t: Target): Promise<Record<string, Sample>> {
  let n = 0;
  const prefix = `bench/hop/${Date.now()}`;
  await t.client
    .registerService({ id: "bench-hr-1", name: "bench-hr", address: "127.0.0.1", port: 9, tags: [], meta: {} })
    .catch(() => undefined);
  return {
    "claim (2 txn), c=1": await measure(() => claim(t.client, prefix, n++), { concurrency: 1, warmup: 20, count: COUNT }),
    "claim (2 txn), c=16": await measure(() => claim(t.client, prefix, n++), { concurrency: 16, warmup: 20, durationMs: THROUGHPUT_MS }),
    "discovery read, c=1": await measure(() => t.client.healthService("bench-hr"), { concurrency: 1, warmup: 20, count: COUNT }),
    "discovery read, c=16": await measure(() => t.client.healthService("bench-hr"), {
      concurrency: 16,
      warmup: 20,
      durationMs: THROUGHPUT_MS,
    }),
  };
}

async function main(): Promise<void> {
  if (!LabNetwork.available()) throw new Error("bench/consulHop.ts builds its hosts as network namespaces: run it as root.");
  const binary = await resolveConsulBinary();
  // A loopback address of its own: a `mesh up` or a test's Consul may hold 127.0.0.1:8500.
  const dev = await startDevConsul({ bindAddress: `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`, binary });
  const lab = await Lab.up({ consulBinary: binary, dir: mkdtempSync(join(tmpdir(), "toolmesh-hop-")), placement: { h1: [] } });
  try {
    const targets: Target[] = [
      { name: "-dev agent (one process)", client: new ConsulClient({ address: dev.address }) },
      { name: "cluster, via h1's client agent", client: lab.consulClient(lab.client("h1")) },
      { name: "cluster, straight to a server", client: lab.consulClient(lab.server("s1")) },
    ];
    const results: Record<string, Record<string, Sample>> = {};
    for (const t of targets) results[t.name] = await rows(t);
    const base = results[targets[0]!.name]!;
    const out: (string | number)[][] = [];
    for (const t of targets)
      for (const [what, s] of Object.entries(results[t.name]!)) {
        const b = base[what]!;
        out.push([t.name, what, ms(s.p50), ms(s.p99), Math.round(s.rps), ratio(s.p50 / b.p50), ratio(s.rps / b.rps), s.errors]);
      }
    console.log(
      `\nConsul hop (${quick ? "quick" : "full"} run; ${COUNT} calls at c=1, ${THROUGHPUT_MS / 1000} s at c=16)\n\n` +
        table(["target", "request", "p50 ms", "p99 ms", "per s", "p50 vs -dev", "rate vs -dev", "errors"], out),
    );
    for (const t of targets) t.client.destroy();
  } finally {
    await lab.down();
    await dev.stop();
  }
}

await main();
