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
    const marks: number[] = []; // calls made by each kill
    // A kill every 10 s on the clock (a slow restart on a busy machine does not push the next one back).
    // These waits are the scenario itself (its schedule), not a guess at how long something takes.
    while ((kills + 1) * 10_000 <= CHAOS_MS - 10_000) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + (kills + 1) * 10_000 - Date.now())));
      marks.push(run.outcomes.length);
      const victim = live.shift()!;
      killedPids.add(victim.process.pid!);
      victim.process.signal("SIGKILL");
      kills++;
      const replacement = await spawnAgent(PROBE, consul.address, { env });
      running.push(replacement);
      live.push(replacement);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, CHAOS_MS - (Date.now() - started)))); // the rest of the run's length
    marks.push(run.outcomes.length);
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
    // It really was under load: calls went on between every two kills (counts, not a rate).
    expect(
      marks.every((m, i) => m > (i === 0 ? 0 : marks[i - 1]!)),
      JSON.stringify(marks),
    ).toBe(true);
  },
  // Its length, plus replacements that start slowly on a busy machine.
  CHAOS_MS + 180_000,
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
  const marks: number[] = []; // calls made by the end of each restart
  for (const old of [...replicas]) {
    // Start the new one first, wait until callers can see it, then drain the old one.
    const fresh = await spawnAgent("hr", consul.address);
    running.push(fresh);
    await eventually(async () => (await client.catalog.instances("hr")).some((i) => i.id === fresh.instanceId), {
      timeoutMs: 5_000,
      what: "the new replica in the caller's catalog",
    });
    expect(await old.process.stop(30_000)).toBe(0); // SIGTERM: drain, deregister, exit 0
    restarted.push(old.instanceId);
    marks.push(run.outcomes.length);
  }
  // Calls go on once every old replica is gone.
  await eventually(() => run.outcomes.length >= marks.at(-1)! + 20, { timeoutMs: 5_000, what: "calls after the last restart" });
  await run.stop();
  const served = new Set(run.outcomes.map((o) => o.instance));
  console.log(
    `rolling restart: ${run.outcomes.length} calls, ${run.outcomes.filter((o) => !o.ok).length} failed, served by ${served.size} instances`,
  );
  expect(run.outcomes.filter((o) => !o.ok)).toEqual([]);
  // Under load throughout: calls were made during every restart (counts, not a rate).
  expect(
    marks.every((m, i) => m > (i === 0 ? 0 : marks[i - 1]!)),
    JSON.stringify(marks),
  ).toBe(true);
  // The new replicas served calls too.
  expect([...served].some((id) => id && !restarted.includes(id) && !replicas.some((r) => r.instanceId === id))).toBe(true);
}, 180_000);

it("Consul gone for 30 s under load: zero failed calls to known agents, calls throughout; every agent registered again once it returns", async () => {
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
  // Killed, 30 s down (counting the calls made in each 5 s of it), then a fresh agent (empty
  // catalog) on the same address. The 5 s waits are the outage itself, not a guess.
  consul.agent.kill("SIGKILL");
  await consul.agent.exited;
  const marks = [run.outcomes.length];
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 5_000));
    marks.push(run.outcomes.length);
  }
  await consul.restart();
  const back = performance.now();
  const during = run.outcomes.length - marks[0]!;
  await eventually(
    async () => {
      const passing = (await consul.client.healthService("knowledge", { passing: true })).value.map((e) => e.id);
      return agents.every((a) => passing.includes(a.instanceId));
    },
    { timeoutMs: 10_000, intervalMs: 100, what: "every knowledge replica registered again" },
  );
  const registered = run.outcomes.length;
  await eventually(() => run.outcomes.length >= registered + 10, { timeoutMs: 5_000, what: "calls after Consul returned" });
  await run.stop();
  console.log(
    `consul outage: ${during} calls during 30 s without Consul, ${run.outcomes.length} in all, ${run.outcomes.filter((o) => !o.ok).length} failed; re-registered ${Math.round(performance.now() - back)} ms after Consul returned`,
  );
  expect(run.outcomes.filter((o) => !o.ok)).toEqual([]);
  // Calls went on in every 5 s of the outage (counts, not a rate).
  expect(
    marks.every((m, i) => i === 0 || m > marks[i - 1]!),
    JSON.stringify(marks),
  ).toBe(true);
}, 180_000);
