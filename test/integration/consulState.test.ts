import { afterAll, beforeAll, expect, it } from "vitest";
import { ConsulClient } from "../../src/consul/client.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { ConsulKvState } from "../../src/state/sharedState.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";

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
