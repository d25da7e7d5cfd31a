// Two Consul datacenters joined over the WAN (one server each, on their own loopback
// addresses), an hr agent in each: a caller in dc1 calls dc1's hr while it is healthy, and when
// dc1 has none (its hr SIGKILLed) sends read-only calls to dc2's hr (MESH_FAILOVER_DCS=dc2) and
// refuses state-changing ones with a clear error, sending nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul, type DevConsul } from "../../src/consul/devAgent.ts";
import { parseFailoverDatacenters } from "../../src/discovery/failover.ts";
import type { MeshError } from "../../src/protocol/errors.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { randomLoopback } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

let dc1: DevConsul;
let dc2: DevConsul;
let consul1: ConsulClient;
let consul2: ConsulClient;
let hr1: TestAgent;
let hr2: TestAgent;
let caller: MeshClient;

beforeAll(async () => {
  const binary = await resolveConsulBinary();
  const [a, b] = [randomLoopback(), randomLoopback()];
  [dc1, dc2] = await Promise.all([
    startDevConsul({ bindAddress: a, binary, datacenter: "dc1", joinWan: [] }),
    startDevConsul({ bindAddress: b, binary, datacenter: "dc2", joinWan: [a] }),
  ]);
  consul1 = new ConsulClient({ address: dc1.address });
  consul2 = new ConsulClient({ address: dc2.address });
  // The WAN pool formed: dc1's servers route queries to dc2.
  await eventually(
    async () => {
      const res = await fetch(`${dc1.address}/v1/catalog/datacenters`);
      return ((await res.json()) as string[]).includes("dc2");
    },
    { timeoutMs: 15_000, what: "dc1 to see dc2 over the WAN" },
  );
  [hr1, hr2] = await Promise.all([spawnAgent("hr", dc1.address), spawnAgent("hr", dc2.address)]);
  caller = new MeshClient({ consul: consul1, callerName: "test", failoverDatacenters: ["dc2"] });
}, 120_000);

afterAll(async () => {
  await caller?.close();
  await Promise.all([hr1?.process.stop(2_000), hr2?.process.stop(2_000)]);
  consul1?.destroy();
  consul2?.destroy();
  await Promise.all([dc1?.stop(), dc2?.stop()]);
});

/** The calls of `tool` an instance has served so far, whatever their outcome (its /metrics). */
async function served(agent: TestAgent, tool: string): Promise<number> {
  const text = await (await fetch(agent.url.replace(/\/mcp$/, "/metrics"))).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith("toolmesh_tool_calls_total{") && l.includes(`tool="${tool}"`))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}

const READ = ["hr", "get_employee", { employee_id: "E1002" }] as const;
const WRITE = [
  "hr",
  "request_leave",
  { employee_id: "E1002", leave_type: "vacation", start_date: "2026-12-14", end_date: "2026-12-15" },
] as const;

describe("failover across datacenters", () => {
  it("calls this datacenter's hr while it is healthy; with none here, a read-only call is served by dc2's and a state-changing one is refused, unsent", async () => {
    // dc1 has a healthy hr: both kinds of call stay home.
    const local = await caller.call(...READ, { timeoutMs: 10_000 });
    expect(local.result.isError).toBeFalsy();
    expect(local.instance).toBe(hr1.instanceId);
    const booked = await caller.call(...WRITE, { timeoutMs: 10_000 });
    expect(booked.result.isError, JSON.stringify(booked.result.content)).toBeFalsy();
    expect(booked.instance).toBe(hr1.instanceId);

    // dc1's only hr dies; once dc1's health view has none, reads cross to dc2.
    hr1.process.kill(); // SIGKILL
    await eventually(async () => (await consul1.healthService("hr", { passing: true })).value.length === 0, {
      timeoutMs: 10_000,
      what: "dc1 to have no passing hr",
    });
    const readsBefore = await served(hr2, "get_employee");
    const remote = await eventually(
      async () => {
        const r = await caller.call(...READ, { timeoutMs: 10_000 });
        return r.instance === hr2.instanceId ? r : undefined;
      },
      { timeoutMs: 10_000, what: "a read-only call served by dc2's hr" },
    );
    expect(remote.value.result.isError).toBeFalsy();
    expect(JSON.stringify(remote.value.result.structuredContent)).toContain("E1002");

    const refused = await caller.call(...WRITE, { timeoutMs: 10_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMeshError(refused), String(refused)).toBe(true);
    const err = refused as MeshError;
    expect(err.code).toBe("NO_HEALTHY_INSTANCE");
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/hr\.request_leave is not read-only, so it is not sent to dc2/);
    expect(err.message).toMatch(/per datacenter/);
    expect(err.details).toMatchObject({ failoverDatacenter: "dc2", failoverRefused: "not read-only" });
    // With an idempotency key too: dc2's KV could not deduplicate it against dc1's claims.
    await expect(caller.call(...WRITE, { timeoutMs: 10_000, idempotencyKey: "leave-dc-1" })).rejects.toMatchObject({
      code: "NO_HEALTHY_INSTANCE",
      details: { failoverRefused: "not read-only" },
    });
    // The CLI in dc1, as a user runs it: the read crosses (exit 0), the write is refused (exit 3).
    const cli = { CONSUL_HTTP_ADDR: dc1.address, MESH_FAILOVER_DCS: "dc2" };
    const read = await mesh(["call", "hr.get_employee", JSON.stringify(READ[2])], cli);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toContain("E1002");
    const write = await mesh(["call", "hr.request_leave", JSON.stringify(WRITE[2])], cli);
    expect(write.code, write.stdout).toBe(3);
    expect(write.stderr).toMatch(/hr\.request_leave is not read-only, so it is not sent to dc2/);
    // Without the setting, nothing crosses: hr is unknown in dc1.
    const unset = await mesh(["call", "hr.get_employee", JSON.stringify(READ[2])], {
      CONSUL_HTTP_ADDR: dc1.address,
      MESH_FAILOVER_DCS: "",
    });
    expect(unset.code).not.toBe(0);

    // dc2's hr served the read-only calls, and never saw the refused ones.
    expect((await served(hr2, "get_employee")) - readsBefore).toBe(2);
    expect(await served(hr2, "request_leave")).toBe(0);
  });

  it("says which datacenters it asked when none has the agent, and names a datacenter the WAN does not know", async () => {
    const lonely = new MeshClient({ consul: consul1, callerName: "test", failoverDatacenters: ["dc9", "dc2"] });
    try {
      const e = await lonely.call("finance", "get_budget", {}, { timeoutMs: 10_000 }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isMeshError(e), String(e)).toBe(true);
      expect((e as MeshError).code).toBe("NO_HEALTHY_INSTANCE");
      expect((e as MeshError).message).toMatch(
        /None in the failover datacenters either \(dc9: .*datacenter.*; dc2: no passing instance\)/i,
      );
    } finally {
      await lonely.close();
    }
  });

  it("reads MESH_FAILOVER_DCS as an ordered list and refuses a name Consul would not accept", () => {
    expect(parseFailoverDatacenters(" dc2, eu-west_1 ,dc2")).toEqual(["dc2", "eu-west_1"]);
    expect(parseFailoverDatacenters("")).toEqual([]);
    expect(parseFailoverDatacenters(undefined)).toEqual([]);
    expect(() => parseFailoverDatacenters("dc2,dc 3")).toThrow(/MESH_FAILOVER_DCS: "dc 3" is not a Consul datacenter name/);
  });
});
