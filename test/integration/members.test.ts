// Servers a user adds with `mesh register`, good and bad: a web server that is not MCP, one
// that accepts connections and never answers, a third-party MCP server. None may take a
// caller down, stall a command past its deadline, or receive the mesh's credentials.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { DEFAULT_TOOLS_TIMEOUT_MS } from "../../src/discovery/catalog.ts";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";
import { startForeignServer, startPlainServer, startStalledServer, type ForeignServer } from "../helpers/foreign.ts";

const MESH_TOKEN = "mesh-wide-secret-token-0123456789";
let consul: TestConsul;
let c: string[];
let hr: TestAgent;
let finance: TestAgent;
let plain: Awaited<ReturnType<typeof startPlainServer>>;
let stalled: Awaited<ReturnType<typeof startStalledServer>>;
let foreign: ForeignServer;
let caller: MeshClient;

beforeAll(async () => {
  consul = await startTestConsul();
  c = ["--consul", consul.address];
  [hr, finance, plain, stalled, foreign] = await Promise.all([
    spawnAgent("hr", consul.address, { env: { MESH_TOKEN } }),
    spawnAgent("finance", consul.address, { env: { MESH_TOKEN } }),
    startPlainServer(),
    startStalledServer(),
    startForeignServer(),
  ]);
  caller = new MeshClient({ consul: consul.client, callerName: "test", token: () => MESH_TOKEN });
  await untilInstances(caller, "hr", 1);
});
afterAll(async () => {
  await caller?.close();
  await Promise.all([hr?.process.stop(2_000), finance?.process.stop(2_000), foreign?.stop()]);
  plain?.server.close();
  await stalled?.close();
  await consul?.stop();
});

/** No command prints a stack trace, whatever the input. */
function noStack(r: { stderr: string }): void {
  expect(r.stderr).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
}

const env = { MESH_TOKEN };

describe("a server that is not MCP", () => {
  it("mesh register probes it and refuses; --force registers it with a warning", async () => {
    const refused = await mesh(["register", "--name", "ext-plain", "--url", plain.url, ...c], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/does not answer MCP: .*does not speak MCP/);
    expect(refused.stderr).toContain("Nothing was registered");
    expect((await consul.client.healthService("ext-plain")).value).toEqual([]);

    const forced = await mesh(["register", "--name", "ext-plain", "--url", plain.url, "--force", ...c], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(/warning: .*does not answer MCP/);
    // It accepts TCP connections, so Consul calls it healthy once its check has run.
    await eventually(async () => (await consul.client.healthService("ext-plain", { passing: true })).value.length === 1, {
      timeoutMs: 10_000,
      what: "ext-plain passing its TCP check",
    });
  });

  it("is named with the reason in mesh agents, and every other command keeps working", async () => {
    const agents = await mesh(["agents", ...c], env);
    noStack(agents);
    expect(agents.code, agents.stderr).toBe(0);
    expect(agents.stdout).toMatch(/^ext-plain\s+\S+\s+127\.0\.0\.1:\d+\s+passing, not used/m);
    expect(agents.stdout).toMatch(/Not used:\n(.*\n)*\s+ext-plain-\S+: .*does not speak MCP/);
    const json = JSON.parse((await mesh(["agents", "--json", ...c], env)).stdout) as {
      agents: { name: string; instances: { usable: boolean; problem?: string }[] }[];
    };
    expect(json.agents.find((a) => a.name === "ext-plain")?.instances[0]).toMatchObject({
      usable: false,
      problem: expect.stringMatching(/MCP/),
    });

    const tools = await mesh(["tools", ...c], env);
    expect(tools.code, tools.stderr).toBe(0);
    expect(tools.stdout).toContain("hr.get_employee(");
    const call = await mesh(["call", "hr.get_employee", "--arg", "employee_id=E1002", ...c], env);
    expect(call.code, call.stderr).toBe(0);
    const bad = await mesh(["call", "ext-plain.anything", ...c], env);
    noStack(bad);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/no instance is usable: .*does not speak MCP/);
    // A long-running caller in this process too.
    await eventually(
      async () => (await caller.catalog.instances("ext-plain")).length === 0 && caller.catalog.agent("ext-plain")?.unusable.length === 1,
      {
        timeoutMs: 8_000,
        what: "the caller to keep ext-plain out of rotation",
      },
    );
  });

  it("joining an existing agent is refused; forced in, it is kept out of hr's rotation and hr's callers never notice", async () => {
    const refused = await mesh(["register", "--name", "hr", "--url", plain.url, ...c], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("does not answer MCP");
    const other = await mesh(["register", "--name", "hr", "--url", foreign.url, ...c], env);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/agent "hr" already has 1 instance\(s\) .* not a replica/);

    expect((await mesh(["register", "--name", "hr", "--url", plain.url, "--force", "--id", "hr-plain", ...c], env)).code).toBe(0);
    await eventually(() => caller.catalog.agent("hr")?.unusable.some((u) => u.id === "hr-plain"), {
      timeoutMs: 8_000,
      what: "hr-plain checked and kept out",
    });
    expect((await caller.catalog.instances("hr")).map((i) => i.id)).toEqual([hr.instanceId]);
    for (let i = 0; i < 5; i++) {
      const r = await mesh(["call", "hr.get_employee", "--arg", "employee_id=E1003", ...c], env);
      expect(r.code, r.stderr).toBe(0);
    }
    // finance → hr, a long-running caller inside another agent.
    const pay = await caller.callTool("finance", "compute_net_pay", { employee_id: "E1002" });
    expect(pay.isError ?? false).toBe(false);
    const agents = await mesh(["agents", ...c], env);
    expect(agents.stdout).toMatch(/^hr\s+hr-plain\s+\S+\s+passing, not used/m);
    expect((await mesh(["deregister", "hr-plain", ...c], env)).code).toBe(0);
  });
});

describe("a server that accepts connections and never answers", () => {
  it("costs mesh agents one bounded tool-list wait, and a call to another agent nothing", { timeout: 60_000 }, async () => {
    expect((await mesh(["register", "--name", "stall", "--url", stalled.url, "--force", ...c], env)).code).toBe(0);
    // Its TCP check passes (it accepts connections) once it has run.
    await eventually(async () => (await consul.client.healthService("stall", { passing: true })).value.length === 1, {
      timeoutMs: 10_000,
      what: "stall passing its TCP check",
    });
    // Bounded: it ends, and says the stalled one gave no tool list in time.
    const agents = await mesh(["agents", ...c], env);
    expect(agents.code, agents.stderr).toBe(0);
    expect(agents.stdout).toMatch(/stall-\S+: .*(no answer|within \d+ ms)/);

    // A deadline shorter than the stalled one's tool-list wait: met, so that wait cost it nothing.
    const shorter = String(DEFAULT_TOOLS_TIMEOUT_MS - 1_000);
    const call = await mesh(["call", "hr.get_employee", "--arg", "employee_id=E1002", "--timeout", shorter, ...c], env);
    expect(call.code, call.stderr).toBe(0);

    const stuck = await mesh(["call", "stall.anything", "--timeout", "2000", ...c], env);
    expect(stuck.code).toBe(3); // its deadline, not a hang
    noStack(stuck);
    expect((await mesh(["deregister", "stall", ...c], env)).code).toBe(0);
  });
});

describe("a third-party MCP server", () => {
  it("never receives the mesh-wide token; a token set for it by name is sent", async () => {
    expect((await mesh(["register", "--name", "foreign", "--url", foreign.url, ...c], env)).code).toBe(0);
    const r = await mesh(["call", "foreign.add", '{"a":2,"b":3}', ...c], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("5");
    const seen = foreign.events.filter((e) => e["event"] === "request");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.map((e) => e["authorization"])).not.toContain(`Bearer ${MESH_TOKEN}`);
    expect(seen.every((e) => e["authorization"] === null)).toBe(true);

    const own = "foreign-server-own-token-0123456789";
    const named = await mesh(["call", "foreign.add", '{"a":1,"b":1}', ...c], { ...env, MESH_TOKEN_FOREIGN: own });
    expect(named.code, named.stderr).toBe(0);
    expect(foreign.events.filter((e) => e["event"] === "request").at(-1)?.["authorization"]).toBe(`Bearer ${own}`);
  });

  it("a call past its deadline is really cancelled at the server, and reported as delivery unknown naming the instance", async () => {
    const r = await mesh(["call", "foreign.slow", '{"ms":8000}', "--timeout", "1000", ...c], env);
    expect(r.code).toBe(3); // at its deadline (the message below), not after the 8 s
    expect(r.stderr).toMatch(
      /Delivery unknown: foreign\.slow on foreign-\S+ did not answer within its deadline \(1000 ms\)\. It may or may not have run/,
    );
    expect(r.stderr).not.toContain("the call was cancelled at the agent");
    await eventually(() => foreign.events.some((e) => e["event"] === "cancelled"), {
      timeoutMs: 3_000,
      what: "notifications/cancelled at the server",
    });
    await eventually(() => foreign.events.find((e) => e["event"] === "slow-ended")?.["cancelled"] === true, {
      timeoutMs: 3_000,
      what: "the server's handler to stop early",
    });
  });
});

describe("unknown and unhealthy agents", () => {
  it("an agent Consul does not know is a usage error (2); one with no healthy instance is a mesh error (3)", async () => {
    const unknown = await mesh(["call", "nope.tool", ...c], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown agent "nope": Consul has no such service\. Agents: .*finance.*hr/);
    expect((await mesh(["tools", "nope", ...c], env)).code).toBe(2);

    // Registered, but its only instance fails its health check (nothing listens there).
    const down = await mesh(["register", "--name", "down", "--url", "http://127.0.0.1:9/mcp", "--force", ...c], env);
    expect(down.code, down.stderr).toBe(0);
    const call = await mesh(["call", "down.tool", ...c], env);
    expect(call.code).toBe(3);
    expect(call.stderr).toMatch(/Agent "down" is registered .* no instance/);
    const tools = await mesh(["tools", "down", ...c], env);
    expect(tools.code).toBe(3);
    const agents = await mesh(["agents", ...c], env);
    expect(agents.stdout).toMatch(/^down\s+\S+\s+127\.0\.0\.1:9\s/m);
    expect(agents.stdout).not.toContain("undefined");
  });

  it("mesh register refuses port 0", async () => {
    const r = await mesh(["register", "--name", "zero", "--url", "http://127.0.0.1:0/mcp", ...c], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("port 0");
  });
});
