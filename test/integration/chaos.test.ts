// The mesh under load while things break, with real processes and a real Consul: replicas
// SIGKILLed and restarted, a rolling restart, Consul gone for 30 s.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
/** How long the chaos run lasts (the issue asks for 60 s; shorten locally with CHAOS_SECONDS). */
const CHAOS_MS = Number(process.env["CHAOS_SECONDS"] ?? 60) * 1_000;

let consul: TestConsul;
const running: TestAgent[] = [];
const clients: MeshClient[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(running.map((a) => a.process.stop(2_000)));
  await consul.stop();
});

async function meshClient(agent: string, instances: number): Promise<MeshClient> {
  const client = new MeshClient({ consul: consul.client, callerName: "chaos" });
  clients.push(client);
  await untilInstances(client, agent, instances);
  return client;
}

type Outcome = { kind: "idempotent" | "plain" | "keyed"; id: string; ok: boolean; code?: string; instance?: string };

/** Runs `workers` loops of calls until `stop()`; each call's outcome is recorded. */
function load(client: MeshClient, agent: string, workers: number, next: (n: number) => () => Promise<Outcome>) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped) outcomes.push(await next(n++)());
  });
  return {
    outcomes,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function outcome(kind: Outcome["kind"], id: string, call: Promise<{ instance: string; result: { isError?: boolean } }>) {
  try {
    const r = await call;
    return { kind, id, ok: !r.result.isError, instance: r.instance, ...(r.result.isError ? { code: "TOOL_ERROR" } : {}) };
  } catch (e) {
    return { kind, id, ok: false, code: isMeshError(e) ? e.code : String(e) };
  }
}

it(
  "chaos: 3 replicas under steady load, one SIGKILLed every 10 s and restarted: no failed idempotent call, no side effect twice",
  async () => {
    const ledger = join(mkdtempSync(join(tmpdir(), "toolmesh-chaos-")), "ledger.jsonl");
    writeFileSync(ledger, "");
    // A killed holder's idempotency claim is taken over once its lease lapses (shortened here from 10 s).
    const env = { PROBE_NAME: "chaos", PROBE_LEDGER: ledger, MESH_CLAIM_LEASE_MS: "2000" };
    const live: TestAgent[] = await Promise.all([1, 2, 3].map(() => spawnAgent(PROBE, consul.address, { env })));
    running.push(...live);
    const client = await meshClient("chaos", 3);
    const killedPids = new Set<number>();

    const run = load(client, "chaos", 6, (n) => {
      const id = randomUUID();
      const opts = { timeoutMs: 8_000 };
      switch (n % 3) {
        case 0: // read-only: must never fail
          return () => outcome("idempotent", id, client.call("chaos", "context", {}, opts));
        case 1: // a side effect without a key: exactly once, or DELIVERY_UNKNOWN
          return () => outcome("plain", id, client.call("chaos", "effect", { ms: 30, id }, opts));
        default: // a side effect with an idempotency key: must never fail
          return () => outcome("keyed", id, client.call("chaos", "effect", { ms: 30, id }, { ...opts, idempotencyKey: id }));
      }
    });
    const started = Date.now();
    let kills = 0;
    // A kill every 10 s on the clock (a slow restart on a busy machine does not push the next one back).
    while ((kills + 1) * 10_000 <= CHAOS_MS - 10_000) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + (kills + 1) * 10_000 - Date.now())));
      const victim = live.shift()!;
      killedPids.add(victim.process.pid!);
      victim.process.signal("SIGKILL");
      kills++;
      const replacement = await spawnAgent(PROBE, consul.address, { env });
      running.push(replacement);
      live.push(replacement);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, CHAOS_MS - (Date.now() - started))));
    await run.stop();

    const executed = new Map<string, { pid: number }[]>();
    for (const line of readFileSync(ledger, "utf8").split("\n").filter(Boolean)) {
      const { id, pid } = JSON.parse(line) as { id: string; pid: number };
      executed.set(id, [...(executed.get(id) ?? []), { pid }]);
    }
    const by = (kind: Outcome["kind"]) => run.outcomes.filter((o) => o.kind === kind);
    const failed = (kind: Outcome["kind"]) => by(kind).filter((o) => !o.ok);
    const plain = by("plain");
    const summary = {
      seconds: CHAOS_MS / 1_000,
      kills,
      calls: run.outcomes.length,
      idempotent: `${by("idempotent").length} (${failed("idempotent").length} failed)`,
      keyed: `${by("keyed").length} (${failed("keyed").length} failed)`,
      plain: `${plain.length} (${plain.filter((o) => o.code === "DELIVERY_UNKNOWN").length} delivery unknown, ${failed("plain").filter((o) => o.code !== "DELIVERY_UNKNOWN").length} other errors)`,
    };
    console.log(`chaos: ${JSON.stringify(summary)}`);

    expect(kills).toBeGreaterThanOrEqual(Math.floor(CHAOS_MS / 10_000) - 1);
    expect(failed("idempotent")).toEqual([]);
    expect(failed("keyed")).toEqual([]);
    // Without a key: succeeded exactly once, or delivery unknown (ran once or not at all);
    // any other error means it never ran. Never twice.
    const wrong = plain.filter((o) => {
      const runs = executed.get(o.id)?.length ?? 0;
      if (o.ok) return runs !== 1;
      if (o.code === "DELIVERY_UNKNOWN") return runs > 1;
      return runs !== 0;
    });
    expect(wrong).toEqual([]);
    // With a key: once; twice only when the first run's replica was killed before its
    // result was kept (the effect and the record are not one transaction).
    const twice = by("keyed").filter((o) => {
      const runs = executed.get(o.id) ?? [];
      return runs.length > 2 || (runs.length === 2 && !runs.some((r) => killedPids.has(r.pid)));
    });
    expect(twice).toEqual([]);
    expect(run.outcomes.length).toBeGreaterThan(CHAOS_MS / 100); // it really was under load
  },
  CHAOS_MS + 60_000,
);

it("rolling restart of every hr replica under load: zero failed calls", async () => {
  const replicas: TestAgent[] = await Promise.all([1, 2, 3].map(() => spawnAgent("hr", consul.address)));
  running.push(...replicas);
  const client = await meshClient("hr", 3);
  const run = load(client, "hr", 4, (n) => () => {
    const id = String(n);
    return outcome(
      "idempotent",
      id,
      n % 2
        ? client.call("hr", "get_employee", { employee_id: "E1002" }, { timeoutMs: 5_000 })
        : client.call("hr", "get_leave_policy", { leave_type: "sick" }, { timeoutMs: 5_000 }),
    );
  });
  const restarted: string[] = [];
  for (const old of [...replicas]) {
    // Start the new one first, wait until callers can see it, then drain the old one.
    const fresh = await spawnAgent("hr", consul.address);
    running.push(fresh);
    await eventually(async () => (await client.catalog.instances("hr")).some((i) => i.id === fresh.instanceId), {
      timeoutMs: 5_000,
      what: "the new replica in the caller's catalog",
    });
    expect(await old.process.stop(10_000)).toBe(0); // SIGTERM: drain, deregister, exit 0
    restarted.push(old.instanceId);
  }
  await new Promise((r) => setTimeout(r, 500));
  await run.stop();
  const served = new Set(run.outcomes.map((o) => o.instance));
  console.log(
    `rolling restart: ${run.outcomes.length} calls, ${run.outcomes.filter((o) => !o.ok).length} failed, served by ${served.size} instances`,
  );
  expect(run.outcomes.filter((o) => !o.ok)).toEqual([]);
  expect(run.outcomes.length).toBeGreaterThan(100);
  // The new replicas served calls too.
  expect([...served].some((id) => id && !restarted.includes(id) && !replicas.some((r) => r.instanceId === id))).toBe(true);
});

it("Consul gone for 30 s under load: zero failed calls to known agents; every agent registered again within 10 s of its return", async () => {
  const agents: TestAgent[] = await Promise.all([spawnAgent("knowledge", consul.address), spawnAgent("knowledge", consul.address)]);
  running.push(...agents);
  const client = await meshClient("knowledge", 2);
  const run = load(
    client,
    "knowledge",
    2,
    (n) => () =>
      outcome("idempotent", String(n), client.call("knowledge", "search_documents", { query: "referral bonus" }, { timeoutMs: 5_000 })),
  );
  await consul.restart(30_000); // killed, 30 s down, then a fresh agent (empty catalog) on the same address
  const back = performance.now();
  const during = run.outcomes.length;
  const { elapsedMs } = await eventually(
    async () => {
      const passing = (await consul.client.healthService("knowledge", { passing: true })).value.map((e) => e.id);
      return agents.every((a) => passing.includes(a.instanceId));
    },
    { timeoutMs: 10_000, intervalMs: 100, what: "every knowledge replica registered again" },
  );
  await new Promise((r) => setTimeout(r, 1_000));
  await run.stop();
  console.log(
    `consul outage: ${during} calls during 30 s without Consul, ${run.outcomes.length} in all, ${run.outcomes.filter((o) => !o.ok).length} failed; re-registered ${Math.round(performance.now() - back)} ms after Consul returned`,
  );
  expect(run.outcomes.filter((o) => !o.ok)).toEqual([]);
  expect(during).toBeGreaterThan(100);
  expect(elapsedMs).toBeLessThan(10_000);
}, 60_000);
