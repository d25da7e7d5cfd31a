import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { spawnAgent, untilLogged, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
let consul: TestConsul;
let client: MeshClient;
const running: TestAgent[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
  running.push(await spawnAgent("hr", consul.address));
  client = new MeshClient({ consul: consul.client, callerName: "test", catalogMode: "all" });
  await eventually(
    async () => {
      await client.start();
      return client.catalog.agent("hr")?.instances.length === 1;
    },
    { timeoutMs: 3_000, what: "hr in the catalog" },
  );
});
afterAll(async () => {
  await client.close();
  await Promise.all(running.map((a) => a.process.stop(2_000)));
  await consul.stop();
});

async function getEmployee(): Promise<string> {
  const { result, instance } = await client.call("hr", "get_employee", { employee_id: "E1002" }, { timeoutMs: 5_000 });
  expect(result.isError).toBeFalsy();
  return instance;
}

it("a second replica receives calls as soon as it is ready, without restarting the caller; a SIGKILLed one costs no call and leaves the catalog", async () => {
  const [first] = running;
  const second = await spawnAgent("hr", consul.address);
  running.push(second);
  // The running caller picks the new replica up by itself (its catalog follows Consul).
  await eventually(async () => (await getEmployee()) === second.instanceId, {
    timeoutMs: 5_000,
    intervalMs: 20,
    what: "a call served by the new replica",
  });

  // Steady calls while one replica dies: every call must succeed (get_employee is read-only).
  let stop = false;
  const served: string[] = [];
  const failures: unknown[] = [];
  const load = (async () => {
    while (!stop) {
      try {
        served.push(await getEmployee());
      } catch (e) {
        failures.push(e);
      }
    }
  })();
  await eventually(() => served.length >= 10, { timeoutMs: 5_000, what: "calls flowing to both replicas" });
  first!.process.signal("SIGKILL");
  const killedAt = served.length;
  await eventually(() => !client.catalog.agent("hr")!.instances.some((i) => i.id === first!.instanceId), {
    timeoutMs: 5_000,
    what: "the dead replica to leave the catalog",
  });
  // Calls go on after it left: the last ones all on the survivor.
  const leftAt = served.length;
  await eventually(() => served.length >= Math.max(leftAt, killedAt) + 10, { timeoutMs: 5_000, what: "calls after the dead replica left" });
  stop = true;
  await load;
  expect(failures.map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)))).toEqual([]);
  expect(served.length).toBeGreaterThan(killedAt + 5);
  expect(served.slice(-5).every((i) => i === second.instanceId)).toBe(true);
});

it("a call in flight on a replica that dies: a read-only one completes elsewhere, a side effect reports delivery unknown", async () => {
  const probes = await Promise.all([spawnAgent(PROBE, consul.address), spawnAgent(PROBE, consul.address)]);
  running.push(...probes);
  const probeClient = new MeshClient({ consul: consul.client, callerName: "test", catalogMode: "all" });
  await eventually(
    async () => {
      await probeClient.start();
      return probeClient.catalog.agent("probe")?.instances.length === 2 && probeClient.catalog.agent("probe")!.tools.length > 0;
    },
    { timeoutMs: 4_000, what: "both probes in the catalog" },
  );
  // Kills the instance a call went to once its handler has started (the probe logs that).
  const killWhereItRuns = (tool: string, args: Record<string, unknown>) => {
    let target: string | undefined;
    const call = probeClient.call("probe", tool, args, { timeoutMs: 30_000, onInstance: (id) => (target ??= id) });
    const killed = untilLogged(() => probes.find((p) => p.instanceId === target), `${tool} started`).then((p) =>
      p.process.signal("SIGKILL"),
    );
    return { call, killed, target: () => target };
  };
  try {
    const readOnly = killWhereItRuns("sleep", { ms: 3_000 });
    const done = await readOnly.call;
    await readOnly.killed;
    expect(done.result.isError).toBeFalsy();
    expect(done.instance).not.toBe(readOnly.target());

    // The survivor now takes the side effect; kill it mid-call too.
    const effect = killWhereItRuns("effect", { ms: 3_000 });
    const err = await effect.call.catch((e: unknown) => e);
    await effect.killed;
    expect(err).toMatchObject({ code: "DELIVERY_UNKNOWN" });
    expect((err as Error).message).toMatch(new RegExp(`^Delivery unknown: probe\\.effect on ${effect.target()} may or may not have run`));
  } finally {
    await probeClient.close();
  }
});

// Last: it stops this file's Consul.
it("with Consul stopped, a running caller keeps serving from its last-known catalog", async () => {
  const known = client.catalog.agent("hr")!.instances.map((i) => i.id);
  await consul.agent.stop();
  await eventually(() => client.catalog.lastError, { timeoutMs: 5_000, what: "the catalog to notice the outage" });
  for (let i = 0; i < 5; i++) expect(known).toContain(await getEmployee());
  expect(client.catalog.agent("hr")!.instances.map((i) => i.id)).toEqual(known);
});
