import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdempotencyLedger } from "../../src/agent/idempotency.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { createLogger } from "../../src/logger.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { ConsulKvState } from "../../src/state/sharedState.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

let consul: TestConsul;
beforeAll(async () => {
  consul = await startTestConsul();
});
afterAll(async () => {
  await consul.stop();
});

it("ConsulKvState: 40 concurrent read-modify-write updates from separate clients lose none", async () => {
  const clients = Array.from({ length: 4 }, () => new ConsulClient({ address: consul.address }));
  const states = clients.map((c) => new ConsulKvState(c, "test/counter"));
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      states[i % 4]!.update<{ n: number; by: number[] }>("c", (cur) => ({ n: (cur?.n ?? 0) + 1, by: [...(cur?.by ?? []), i] })),
    ),
  );
  const final = await states[0]!.get<{ n: number; by: number[] }>("c");
  expect(final?.n).toBe(40);
  expect(new Set(final?.by).size).toBe(40);
  for (const c of clients) c.destroy();
});

it("an update that throws (a business rule) writes nothing", async () => {
  const state = new ConsulKvState(consul.client, "test/abort");
  await state.update("k", () => ({ v: 1 }));
  await expect(
    state.update<{ v: number }>("k", () => {
      throw new Error("rule says no");
    }),
  ).rejects.toThrow("rule says no");
  expect(await state.get("k")).toEqual({ v: 1 });
});

it("an unreachable Consul is a retryable MeshError naming the address and what to do", async () => {
  const client = new ConsulClient({ address: `${randomLoopback()}:8500` });
  const err = await client.healthService("hr").catch((e: unknown) => e);
  client.destroy();
  expect(isMeshError(err)).toBe(true);
  expect(err).toMatchObject({ code: "CONSUL_UNREACHABLE", retryable: true });
  expect((err as Error).message).toMatch(
    /^Consul at http:\/\/127\.[\d.]+:8500 is unreachable \(ECONNREFUSED\) while trying to read health of service "hr"\. Start one with "mesh up" or set CONSUL_HTTP_ADDR\.$/,
  );
});

it("a blocking query returns when the watched service changes, with a newer index", async () => {
  const first = await consul.client.healthService("watched");
  const waiting = consul.client.healthService("watched", { index: first.index, wait: "10s" });
  await consul.client.registerService({ id: "watched-1", name: "watched", address: "127.0.0.1", port: 1, tags: ["mcp"], meta: {} });
  const changed = await waiting;
  expect(Number(changed.index)).toBeGreaterThan(Number(first.index));
  expect(changed.value.map((e) => e.id)).toEqual(["watched-1"]);
  await consul.client.deregisterService("watched-1");
});

describe("fencing: an idempotency claim guards the effects made under it", () => {
  const logger = createLogger({ name: "fence-test", level: "silent" });
  const ledgerOn = (instance: string, leaseMs = 60_000) =>
    new IdempotencyLedger({
      agent: "fenced",
      instance: () => instance,
      state: new ConsulKvState(consul.client, "test/fence/keys"),
      leaseMs,
      logger,
    });
  const call = (owner = "token:a") => ({ tool: "book", args: { n: 1 }, deadline: Date.now() + 10_000, traceId: "t".repeat(32), owner });
  const book = { get: <T>(k: string) => new ConsulKvState(consul.client, "test/fence/state").get<T>(k) };
  const effect = () =>
    new ConsulKvState(consul.client, "test/fence/state").update<{ n: number }>("bookings", (cur) => ({ n: (cur?.n ?? 0) + 1 }));
  const ok = { content: [{ type: "text" as const, text: "booked" }] };

  it("a holder whose claim was taken over meanwhile books nothing and does not overwrite the taker's record", async () => {
    const key = "fence-key-0001";
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    const first = ledgerOn("a").run(key, call(), async () => {
      await gate; // paused here, as a SIGSTOPped holder would be
      await effect();
      return ok;
    });
    // Another replica takes the key over (as after the lease lapsed): any write to the claim changes its version.
    await eventually(async () => (await consul.client.kvKeys("test/fence/keys/")).length === 1, {
      timeoutMs: 10_000,
      what: "the claim written",
    });
    const [claimKey] = await consul.client.kvKeys("test/fence/keys/");
    const claim = JSON.parse((await consul.client.kvGet(claimKey!))!.value) as Record<string, unknown>;
    const taker = { ...claim, instance: "b", leaseUntil: Date.now() + 60_000 };
    expect(await consul.client.kvSet(claimKey!, JSON.stringify(taker))).toBe(true);
    resume();
    await expect(first).rejects.toMatchObject({ code: "CLAIM_LOST", retryable: true });
    expect(await book.get("bookings")).toBeUndefined();
    expect(JSON.parse((await consul.client.kvGet(claimKey!))!.value)).toMatchObject({ instance: "b", state: "running" });
  });

  it("a repeat waits for a holder whose effect committed, then gets its result; the effect is not run again", async () => {
    await consul.client.kvDelete("test/fence/", { recurse: true });
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    const first = ledgerOn("a", 600).run("fence-key-0002", call(), async () => {
      await effect();
      await gate; // booked, not yet answered
      return ok;
    });
    await eventually(async () => (await book.get<{ n: number }>("bookings"))?.n === 1, { timeoutMs: 10_000, what: "the first booking" });
    const b = ledgerOn("b", 600);
    await expect(b.run("fence-key-0002", { ...call(), deadline: Date.now() + 1_000 }, async () => (await effect(), ok))).rejects.toThrow(
      /still running on a/,
    );
    resume();
    expect(await first).toEqual(ok);
    expect(await b.run("fence-key-0002", call(), async () => (await effect(), ok))).toEqual(ok);
    expect((await book.get<{ n: number }>("bookings"))?.n).toBe(1);
  });

  it("a lapsed claim whose effect committed is never taken over: the repeat says so and books nothing", async () => {
    await consul.client.kvDelete("test/fence/", { recurse: true });
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    const first = ledgerOn("a").run("fence-key-0004", call(), async () => {
      await effect();
      await gate;
      return ok;
    });
    await eventually(async () => (await book.get<{ n: number }>("bookings"))?.n === 1, { timeoutMs: 10_000, what: "the first booking" });
    // The holder stops renewing (its lease lapses), as if it died right after booking.
    const [claimKey] = await consul.client.kvKeys("test/fence/keys/");
    const claim = JSON.parse((await consul.client.kvGet(claimKey!))!.value) as Record<string, unknown>;
    expect(claim).toMatchObject({ state: "running", applied: true });
    await consul.client.kvSet(claimKey!, JSON.stringify({ ...claim, leaseUntil: Date.now() - 1 }));
    const b = ledgerOn("b");
    await expect(b.run("fence-key-0004", { ...call(), deadline: Date.now() + 500 }, async () => (await effect(), ok))).rejects.toThrow(
      /its effect is committed.*will not run again/,
    );
    // A caller that sent no deadline is answered too, after one more lease for the holder to come back.
    await expect(
      ledgerOn("c", 600).run("fence-key-0004", { ...call(), deadline: undefined }, async () => (await effect(), ok)),
    ).rejects.toThrow(/its effect is committed/);
    expect((await book.get<{ n: number }>("bookings"))?.n).toBe(1);
    resume();
    await first;
  });

  it("a key is the caller's own: another owner with the same key runs its own call", async () => {
    await consul.client.kvDelete("test/fence/", { recurse: true });
    const l = ledgerOn("a");
    await l.run("fence-key-0003", call("token:a"), async () => (await effect(), ok));
    await l.run("fence-key-0003", call("token:a"), async () => (await effect(), ok));
    await l.run("fence-key-0003", call("token:b"), async () => (await effect(), ok));
    expect((await book.get<{ n: number }>("bookings"))?.n).toBe(2);
  });
});
