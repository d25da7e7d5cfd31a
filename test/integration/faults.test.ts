// Faults and load with real processes and a real Consul: overload, hung replicas.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { rootContext } from "../../src/context/meshContext.ts";
import { sweepIdempotencyRecords } from "../../src/agent/idempotency.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { spawnAgent, untilLogged, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
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

async function probe(name: string, args: string[] = []): Promise<TestAgent> {
  const agent = await spawnAgent(PROBE, consul.address, { env: { PROBE_NAME: name }, args });
  running.push(agent);
  return agent;
}

async function meshClient(agent: string, instances: number): Promise<MeshClient> {
  const client = new MeshClient({ consul: consul.client, callerName: "test" });
  clients.push(client);
  await untilInstances(client, agent, instances);
  return client;
}

/** Resident memory of a process, in MiB (Linux). */
function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

describe("overload", () => {
  it("10× the concurrency limit at once: the excess gets a fast OVERLOADED error, accepted calls finish, memory stays bounded", async () => {
    const limit = 8;
    const agent = await probe("busy", ["--max-concurrent-calls", String(limit)]);
    const client = await meshClient("busy", 1);
    await client.callTool("busy", "sleep", { ms: 0 }); // connect first
    const rssBefore = rssMiB(agent.process.pid!);

    const rounds = 3;
    const outcomes: { ok: boolean; code?: string; ms: number }[] = [];
    const rounds_: { ok: boolean; ms: number }[][] = [];
    for (let round = 0; round < rounds; round++) {
      const calls = Array.from({ length: 10 * limit }, async () => {
        const started = performance.now();
        try {
          // Long enough that all of a round are in flight at once, even on a busy machine.
          await client.callTool("busy", "sleep", { ms: 1_500 });
          return { ok: true, ms: performance.now() - started };
        } catch (e) {
          return { ok: false, code: isMeshError(e) ? e.code : String(e), ms: performance.now() - started };
        }
      });
      const settled = await Promise.all(calls);
      rounds_.push(settled);
      outcomes.push(...settled);
    }
    const accepted = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    const rssAfter = rssMiB(agent.process.pid!);
    console.log(
      `overload: ${outcomes.length} calls against a limit of ${limit}: ${accepted.length} accepted, ${refused.length} refused; ` +
        `slowest refusal ${Math.round(Math.max(...refused.map((o) => o.ms)))} ms; agent RSS ${rssBefore.toFixed(1)} → ${rssAfter.toFixed(1)} MiB`,
    );
    expect(accepted.length).toBe(limit * rounds);
    expect(new Set(refused.map((o) => o.code))).toEqual(new Set(["OVERLOADED"]));
    // Refused before they started: in each round every refusal came back before any accepted call did.
    for (const round of rounds_) {
      const fastestAccepted = Math.min(...round.filter((o) => o.ok).map((o) => o.ms));
      expect(Math.max(...round.filter((o) => !o.ok).map((o) => o.ms))).toBeLessThan(fastestAccepted);
    }
    expect(rssAfter - rssBefore).toBeLessThan(64);
    // The agent reports its refusals on /healthz, and serves normally afterwards.
    const health = (await (await fetch(agent.url.replace(/\/mcp$/, "/healthz"))).json()) as { overloaded: number; calls: number };
    expect(health).toMatchObject({ overloaded: refused.length, calls: 0 });
    expect((await client.callTool("busy", "sleep", { ms: 0 })).isError).toBeFalsy();
  });

  it("a replica at its limit sends the excess to another replica: nothing is refused while one has room", async () => {
    await probe("pair", ["--max-concurrent-calls", "4"]);
    await probe("pair", ["--max-concurrent-calls", "8"]);
    const client = await meshClient("pair", 2);
    // Round-robin offers 6 to each; the first refuses 2 (its limit is 4), which go to the second.
    // 2 s each: long enough that all 12 are in flight at once, even on a busy machine.
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => client.call("pair", "sleep", { ms: 2_000 })));
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    const perInstance = new Map<string, number>();
    for (const r of results) {
      const id = (r as PromiseFulfilledResult<{ instance: string }>).value.instance;
      perInstance.set(id, (perInstance.get(id) ?? 0) + 1);
    }
    expect([...perInstance.values()].sort((a, b) => a - b)).toEqual([4, 8]);
  });
});

describe("caller-side limits", () => {
  it("per instance: a bounded number of calls at once, a bounded queue, the excess refused at once, the deadline enforced while queued", async () => {
    const agent = await probe("lane");
    const client = new MeshClient({ consul: consul.client, callerName: "test", maxConcurrentPerInstance: 2, maxQueuedPerInstance: 3 });
    clients.push(client);
    await untilInstances(client, "lane", 1);
    await client.callTool("lane", "sleep", { ms: 0 });
    const timed = (p: Promise<unknown>) => {
      const started = performance.now();
      return p.then(
        () => ({ ok: true, code: "", ms: performance.now() - started }),
        (e: unknown) => ({ ok: false, code: isMeshError(e) ? e.code : String(e), ms: performance.now() - started }),
      );
    };
    const calls = Array.from({ length: 10 }, () => timed(client.callTool("lane", "sleep", { ms: 300 })));
    const outcomes = await Promise.all(calls);
    const ok = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    expect(ok).toHaveLength(5); // 2 running + 3 queued
    expect(refused.every((o) => o.code === "OVERLOADED")).toBe(true);
    // Refused at once: before even the first accepted call ended.
    expect(Math.max(...refused.map((o) => o.ms))).toBeLessThan(Math.min(...ok.map((o) => o.ms)));
    // The queued ones ran after the first two: the limit held.
    expect(Math.max(...ok.map((o) => o.ms))).toBeGreaterThanOrEqual(3 * 300 - 50);

    // A call whose deadline passes while it waits never reaches the agent.
    const busy = [client.callTool("lane", "sleep", { ms: 500 }), client.callTool("lane", "sleep", { ms: 500 })];
    let busyDone = false;
    const busyEnded = Promise.all(busy).then(() => (busyDone = true));
    const late = await timed(client.callTool("lane", "context", {}, { timeoutMs: 150 }));
    expect(late).toMatchObject({ ok: false, code: "TIMEOUT" });
    expect(busyDone).toBe(false); // it failed at its deadline, not once the lane was free
    await busyEnded;
    const contextCalls = agent.logs().filter((l) => l["msg"] === "tool call" && l["tool"] === "context");
    expect(contextCalls).toHaveLength(0);
    // Waiting in this caller's own queue is no fault of the instance.
    expect(client.health.ejected()).toEqual([]);
  });
});

describe("passive health", () => {
  it("a hung replica (SIGSTOP) is routed around within the call deadline; calls keep succeeding, and it is re-admitted when it answers again", async () => {
    const [a, b] = [await probe("hung"), await probe("hung")];
    const client = new MeshClient({ consul: consul.client, callerName: "test", health: { cooldownMs: 1_000 } });
    clients.push(client);
    await untilInstances(client, "hung", 2);
    const tried: string[] = [];
    const servedBy = async () =>
      (await client.call("hung", "context", {}, { timeoutMs: 3_000, onInstance: (id) => tried.push(id) })).instance;
    expect(new Set([await servedBy(), await servedBy()])).toEqual(new Set([a.instanceId, b.instanceId]));

    a.process.signal("SIGSTOP");
    try {
      tried.length = 0;
      const served: string[] = [];
      for (let i = 0; i < 20; i++) served.push(await servedBy()); // throws if any call fails
      // One call tried the hung replica (for half its 3 s budget) and went on; the rest never tried it.
      expect(served.every((id) => id === b.instanceId)).toBe(true);
      expect(tried.filter((id) => id === a.instanceId)).toHaveLength(1);
      expect(client.health.ejected()).toEqual([a.instanceId]);
      // Consul's check (1 s interval, its own timeout) may not even have noticed yet: that is the point.
    } finally {
      a.process.signal("SIGCONT");
    }
    // After the cool-down a trial call goes to it again and succeeds: back in rotation.
    await eventually(async () => (await servedBy()) === a.instanceId, { timeoutMs: 5_000, what: "a call served by the recovered replica" });
    expect(client.health.ejected()).toEqual([]);
  });

  it("a dead replica is ejected on its first connection error, before Consul notices: no later call tries it", async () => {
    const [a, b] = [await probe("dead"), await probe("dead")];
    const client = await meshClient("dead", 2);
    const tried: string[] = [];
    const call = () => client.call("dead", "context", {}, { timeoutMs: 3_000, onInstance: (id) => tried.push(id) });
    await call();
    await call();
    a.process.signal("SIGKILL");
    await a.process.exited;
    tried.length = 0;
    for (let i = 0; i < 10; i++) expect((await call()).instance).toBe(b.instanceId);
    // The dead one was tried at most once (then ejected), even though it may still be in the catalog.
    expect(tried.filter((id) => id === a.instanceId).length).toBeLessThanOrEqual(1);
  });
});

describe("idempotency keys", () => {
  const ledgerLines = (file: string) =>
    readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; pid: number });

  it("a repeated key returns the first result, from any replica, without running the tool again", async () => {
    const ledger = join(mkdtempSync(join(tmpdir(), "toolmesh-ledger-")), "ledger.jsonl");
    writeFileSync(ledger, "");
    const env = { PROBE_NAME: "keyed", PROBE_LEDGER: ledger };
    running.push(await spawnAgent(PROBE, consul.address, { env }), await spawnAgent(PROBE, consul.address, { env }));
    const client = await meshClient("keyed", 2);
    const first = await client.call("keyed", "effect", { ms: 0, id: "pay-1" }, { idempotencyKey: "key-pay-1" });
    const again = await client.call("keyed", "effect", { ms: 0, id: "pay-1" }, { idempotencyKey: "key-pay-1" });
    expect(again.instance).not.toBe(first.instance); // round-robin: the other replica
    expect(again.result).toEqual(first.result);
    expect(ledgerLines(ledger).filter((l) => l.id === "pay-1")).toHaveLength(1);
    // Another key, or no key, runs again.
    await client.call("keyed", "effect", { ms: 0, id: "pay-1" }, { idempotencyKey: "key-pay-2" });
    await client.call("keyed", "effect", { ms: 0, id: "pay-1" });
    expect(ledgerLines(ledger).filter((l) => l.id === "pay-1")).toHaveLength(3);
    // A call refused before it ran (arguments nested too deep) leaves its key free: a repeat
    // with good arguments runs at once instead of waiting for the refused one's claim.
    let deep: unknown = "x";
    for (let i = 0; i < 40; i++) deep = [deep];
    await expect(
      client.callTool("keyed", "effect", { ms: 0, id: deep }, { idempotencyKey: "key-pay-4", timeoutMs: 60_000 }),
    ).rejects.toThrow(/nest deeper than 32 levels/);
    await client.callTool("keyed", "effect", { ms: 0, id: "pay-4" }, { idempotencyKey: "key-pay-4", timeoutMs: 2_000 });
    expect(ledgerLines(ledger).filter((l) => l.id === "pay-4")).toHaveLength(1);
    // Concurrent repeats: one runs, the others wait for its result.
    const burst = await Promise.all(
      Array.from({ length: 6 }, () => client.callTool("keyed", "effect", { ms: 300, id: "pay-3" }, { idempotencyKey: "key-pay-3" })),
    );
    expect(new Set(burst.map((r) => JSON.stringify(r.structuredContent))).size).toBe(1);
    expect(ledgerLines(ledger).filter((l) => l.id === "pay-3")).toHaveLength(1);
  });

  it("with a key, a non-idempotent call whose replica dies mid-call fails over instead of 'delivery unknown'", async () => {
    const ledger = join(mkdtempSync(join(tmpdir(), "toolmesh-ledger-")), "ledger.jsonl");
    writeFileSync(ledger, "");
    // A dead holder's claim is taken over once its lease lapses (shortened here from 10 s).
    const env = { PROBE_NAME: "failover", PROBE_LEDGER: ledger, MESH_CLAIM_LEASE_MS: "2000" };
    const agents = [await spawnAgent(PROBE, consul.address, { env }), await spawnAgent(PROBE, consul.address, { env })];
    running.push(...agents);
    const client = await meshClient("failover", 2);
    await client.callTool("failover", "context", {});
    await client.callTool("failover", "context", {});

    // Without a key the caller cannot know whether it ran: delivery unknown.
    let target: string | undefined;
    const unkeyed = client.call(
      "failover",
      "effect",
      { ms: 1_500, id: "nokey" },
      { timeoutMs: 8_000, onInstance: (id) => (target ??= id) },
    );
    // Killed mid-call: once its handler has started (no effect ran on these two before).
    (await untilLogged(() => agents.find((a) => a.instanceId === target), "effect started")).process.signal("SIGKILL");
    await expect(unkeyed).rejects.toMatchObject({ code: "DELIVERY_UNKNOWN" });

    // Restore two replicas, then the same with a key: it runs (once) on the survivor.
    const replacement = await spawnAgent(PROBE, consul.address, { env });
    running.push(replacement);
    const live = [agents.find((a) => a.instanceId !== target)!, replacement];
    // Exactly the two live ones (on a busy machine the killed one can still be listed for a moment).
    await eventually(
      async () => {
        const ids = ((await client.catalog.instances("failover")) as { id: string }[]).map((i) => i.id).sort();
        return JSON.stringify(ids) === JSON.stringify(live.map((a) => a.instanceId).sort());
      },
      { timeoutMs: 10_000, what: "the survivor and the replacement, and only them, in the catalog" },
    );
    let keyedTarget: string | undefined;
    const keyed = client.call(
      "failover",
      "effect",
      { ms: 1_500, id: "withkey" },
      { timeoutMs: 8_000, idempotencyKey: "withkey-1", onInstance: (id) => (keyedTarget ??= id) },
    );
    (await untilLogged(() => live.find((a) => a.instanceId === keyedTarget), "effect started")).process.signal("SIGKILL");
    const outcome = await keyed;
    expect(outcome.instance).not.toBe(keyedTarget);
    expect(ledgerLines(ledger).filter((l) => l.id === "withkey")).toHaveLength(1);
  });
});

it("idempotency records no repeat can use are swept; live ones and ones claimed meanwhile stay", async () => {
  const prefix = "toolmesh/idempotency/sweep-test/";
  const now = Date.now();
  const put = (k: string, v: unknown) => consul.client.kvSet(prefix + k, JSON.stringify(v));
  await put("done-old", { state: "done", tool: "t", instance: "i", result: {}, expiresAt: now - 1 });
  await put("done-live", { state: "done", tool: "t", instance: "i", result: {}, expiresAt: now + 60_000 });
  await put("running-abandoned", { state: "running", tool: "t", instance: "i", leaseUntil: now - 700_000 });
  await put("running-live", { state: "running", tool: "t", instance: "i", leaseUntil: now + 5_000 });
  await put("released", null);
  const deleted = await sweepIdempotencyRecords(consul.client, prefix, 600_000, now);
  expect(deleted).toBe(3);
  expect((await consul.client.kvKeys(prefix)).sort()).toEqual([`${prefix}done-live`, `${prefix}running-live`]);
});

describe("sticky sessions", () => {
  it("a stateful agent's session stays on one replica while it is healthy, and moves with its state when it dies", async () => {
    const env = { PROBE_NAME: "sticky", PROBE_STATEFUL: "1" };
    const agents = await Promise.all([1, 2, 3].map(() => spawnAgent(PROBE, consul.address, { env })));
    running.push(...agents);
    const client = await meshClient("sticky", 3);
    const session = (id: string) => ({ context: rootContext({ caller: "test", sessionId: id }) });

    const served = new Set<string>();
    for (const note of ["a", "b", "c", "d", "e"]) served.add((await client.call("sticky", "remember", { note }, session("s-1"))).instance);
    expect(served.size).toBe(1); // every call of the session on one replica
    const [home] = served;
    // Other sessions spread over the replicas.
    const homes = new Set<string>();
    for (let i = 0; i < 12; i++) homes.add((await client.call("sticky", "recall", {}, session(`other-${i}`))).instance);
    expect(homes.size).toBeGreaterThan(1);

    agents.find((a) => a.instanceId === home)!.process.signal("SIGKILL");
    const moved = await client.call("sticky", "recall", {}, session("s-1"));
    expect(moved.instance).not.toBe(home);
    expect(moved.result.structuredContent).toMatchObject({ notes: ["a", "b", "c", "d", "e"], source: "shared-state" });
    // ...and it stays on its new replica, which now has it in memory.
    const again = await client.call("sticky", "recall", {}, session("s-1"));
    expect(again.instance).toBe(moved.instance);
    expect(again.result.structuredContent).toMatchObject({ source: "memory" });
  });
});
