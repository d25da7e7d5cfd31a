import type { CallToolResult } from "@modelcontextprotocol/client";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { ConsulClient } from "../../src/consul/client.ts";
import { connectHttp } from "../helpers/agents.ts";
import { randomLoopback, startTestConsul } from "../helpers/consul.ts";
import { bound, eventually } from "../helpers/eventually.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

interface UpEvent {
  event: string;
  consul?: { address: string; started: boolean; dataDir: string | null };
  agents?: { agent: string; instanceId: string; url: string; pid: number }[];
  calls?: { agent: string; tool: string; instance: string; ok: boolean; text: string }[];
  gateway?: { url: string; console: string; pid: number };
}

it("npm start's 'mesh up' brings up Consul and every agent, answers a client, and stops everything on Ctrl-C", async () => {
  const consulHost = randomLoopback();
  const consulAddr = `http://${consulHost}:8500`;
  const dataDir = mkdtempSync(join(tmpdir(), "mesh-data-"));
  // What `npm start` runs, with its own Consul address and free ports so tests never collide.
  const child = spawn(
    process.execPath,
    [
      "orchestrator/cli/main.ts",
      "up",
      "--json",
      "--base-port",
      "0",
      "--consul",
      consulAddr,
      "--log-dir",
      mkdtempSync(join(tmpdir(), "mesh-up-")),
      "--data-dir",
      dataDir,
    ],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const events: UpEvent[] = [];
  const waiters: { name: string; resolve: (e: UpEvent) => void }[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const e = JSON.parse(line) as UpEvent;
    events.push(e);
    for (const w of waiters.filter((w) => w.name === e.event)) w.resolve(e);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  // Each phase has its own deadline (scaled for a busy machine), well inside the test's, and fails saying what it saw.
  const next = (name: string, idleMs = 20_000, timeoutMs = bound(idleMs)) =>
    new Promise<UpEvent>((resolve, reject) => {
      const seen = events.find((e) => e.event === name);
      if (seen) return resolve(seen);
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no "${name}" event from mesh up within ${timeoutMs} ms. Events: ${JSON.stringify(events).slice(0, 2_000)} stderr: ${stderr}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({ name, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      void exited.then((code) => reject(new Error(`mesh up exited (${code}) before "${name}": ${stderr}`)));
    });

  try {
    const up = await next("up");
    // Its Consul keeps its data, and mesh up says where.
    expect(up.consul).toMatchObject({ address: consulAddr, started: true, dataDir: join(dataDir, `${consulHost}-8500`) });
    expect(up.agents!.map((a) => a.agent).sort()).toEqual(["finance", "hr", "hr", "knowledge", "orchestrator"]);

    // The sample: hr's two replicas take turns, finance reaches hr through Consul.
    const demo = await next("demo");
    const calls = demo.calls!;
    const hrInstances = new Set(calls.filter((c) => c.agent === "hr").map((c) => c.instance));
    expect(hrInstances.size).toBe(2);
    expect(calls.find((c) => c.tool === "compute_net_pay")).toMatchObject({ ok: true, text: expect.stringContaining("Bob Okafor") });
    expect(calls.find((c) => c.agent === "orchestrator")).toMatchObject({
      ok: true,
      text: expect.stringMatching(
        /^Bob Okafor's manager: Alice Chen \(E1001\)\.\n.*net 15667\.94 USD.*— hr\.get_employee, finance\.compute_net_pay/s,
      ),
    });
    // run_payroll ran as a task, polled to its end.
    expect(calls.find((c) => c.tool === "run_payroll")).toMatchObject({
      ok: true,
      text: expect.stringMatching(/^task [0-9a-f-]{36}: completed after \d+ status updates — Payroll \d{4}-\d{2}: 51 employees/),
    });
    expect(calls.filter((c) => !c.ok).map((c) => c.tool)).toEqual(["get_employee"]); // the deliberate business error

    // Any MCP client can use the printed endpoints.
    const hrUrl = up.agents!.find((a) => a.agent === "hr")!.url;
    const client = await connectHttp(hrUrl);
    const r = (await client.callTool({ name: "ask", arguments: { question: "Who reports to Alice Chen?" } })) as CallToolResult;
    expect(r.isError).toBeFalsy();
    expect((r.structuredContent as { answer: string }).answer).toMatch(/^7 people report to Alice Chen/);
    await client.close();
    // The gateway: every agent's tools on one endpoint, and the console beside it.
    expect(up.gateway!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const gw = await connectHttp(up.gateway!.url);
    expect((await gw.listTools()).tools.map((t) => t.name)).toEqual(expect.arrayContaining(["hr__ask", "finance__compute_net_pay"]));
    await gw.close();
    expect(up.gateway!.console).toBe(up.gateway!.url.replace(/\/mcp$/, "/ui"));
    expect(await (await fetch(up.gateway!.console)).text()).toMatch(/<title>toolmesh console<\/title>/);

    child.kill("SIGINT");
    await next("down");
    expect(await exited).toBe(0);
    for (const a of [...up.agents!, up.gateway!]) expect(() => process.kill(a.pid, 0), `${a.url} still running`).toThrow();
    const consul = new ConsulClient({ address: consulAddr });
    await expect(consul.leader({ timeoutMs: 1_000 })).rejects.toThrow(/unreachable/);
    consul.destroy();
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}, 180_000);

it("mesh up --help documents its options and exits 0; a bad flag is a usage error (exit 2)", async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn(process.execPath, ["orchestrator/cli/main.ts", ...args], { cwd: root });
      let out = "";
      c.stdout.on("data", (d: Buffer) => (out += d.toString()));
      c.stderr.on("data", (d: Buffer) => (out += d.toString()));
      c.on("exit", (code) => resolve({ code, out }));
    });
  const help = await run(["up", "--help"]);
  expect(help.code).toBe(0);
  for (const flag of ["--consul", "--base-port", "--once", "--json", "--data-dir", "--no-data-dir"]) expect(help.out).toContain(flag);
  const bad = await run(["up", "--base-port", "seventy"]);
  expect(bad.code).toBe(2);
  expect(bad.out).toContain('--base-port must be a whole number from 0 to 65000; got "seventy"');
  // --consul takes a list as CONSUL_HTTP_ADDR does; a bad entry names itself and its list, and nothing starts.
  expect(help.out.replace(/\s+/g, " ")).toContain("--consul <addr> Consul HTTP address, or several comma-separated");
  const badList = await run(["up", "--once", "--consul", "127.0.0.1:8500,http://"]);
  expect(badList.code, badList.out).toBe(2);
  expect(badList.out).toContain('Consul address "http://" is not a valid address.');
  expect(badList.out).toContain('(in the address list "127.0.0.1:8500,http://": give one address, or several separated by commas');
  const emptyList = await run(["up", "--once", "--consul", " , "]);
  expect(emptyList.code, emptyList.out).toBe(2);
  expect(emptyList.out).toContain('Consul address " , " is empty.');
  const unknown = await run(["serve", "payroll"]);
  expect(unknown.code).toBe(2);
  expect(unknown.out).toContain('Unknown agent "payroll". Agents: hr, finance, knowledge, orchestrator.');
});

it("mesh up takes a comma-separated Consul address list: the first that answers is used, and every agent and the gateway get the whole list", async () => {
  const { meshUp } = await import("../../orchestrator/launcher/meshUp.ts");
  const consul = await startTestConsul();
  // The first address (the host's own agent) does not answer; the second does.
  const down = `http://${randomLoopback()}:8500`;
  const lines: string[] = [];
  const mesh = await meshUp({
    consul: `${down}, ${consul.address}`,
    basePort: 0,
    logDir: mkdtempSync(join(tmpdir(), "toolmesh-up-")),
    topology: [{ agent: "hr", replicas: 1 }],
    onProgress: (l) => void lines.push(l),
  });
  try {
    expect(mesh).toMatchObject({ startedConsul: false, consulAddress: consul.address, consulAddresses: [down, consul.address] });
    expect(lines).toContain(`using the Consul agent already running at ${consul.address} (${down} did not answer)`);
    // hr registered through the list (it is passing: meshUp waited for it), and the gateway reads through it.
    const gw = await connectHttp(mesh.gateway!.url);
    expect((await gw.listTools()).tools.map((t) => t.name)).toContain("hr__get_employee");
    await gw.close();
    for (const p of [...mesh.instances, mesh.gateway!]) {
      expect(readFileSync(`/proc/${p.pid}/environ`, "utf8").split("\0")).toContain(`CONSUL_HTTP_ADDR=${down},${consul.address}`);
    }
  } finally {
    await mesh.stop();
    await consul.stop();
  }
}, 120_000);

it("mesh up starts an agent again when it dies, and it is back in Consul; stopping is not dying", async () => {
  const { meshUp } = await import("../../orchestrator/launcher/meshUp.ts");
  const { RESTART_FIRST_DELAY_MS } = await import("../../orchestrator/launcher/supervise.ts");
  const lines: string[] = [];
  const mesh = await meshUp({
    consul: `http://${randomLoopback()}:8500`,
    basePort: 0,
    logDir: mkdtempSync(join(tmpdir(), "toolmesh-up-")),
    topology: [{ agent: "knowledge", replicas: 1 }],
    onProgress: (l) => void lines.push(l),
  });
  const consul = new ConsulClient({ address: mesh.consulAddress });
  try {
    const inst = mesh.instances[0]!;
    const firstPid = inst.pid;
    inst.process.signal("SIGKILL");
    const passing = async () => (await consul.healthService("knowledge", { passing: true })).value.map((e) => e.id);
    await eventually(async () => inst.pid !== firstPid && (await passing()).includes(inst.instanceId), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: "knowledge started again and passing",
    }).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; progress: ${lines.join(" | ")}`);
    });
    expect(lines.some((l) => /^knowledge exited \(code null\); starting it again in 1 s/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith("knowledge is back"))).toBe(true);
    const client = await connectHttp(inst.url);
    const r = (await client.callTool({ name: "list_documents", arguments: {} })) as CallToolResult;
    expect(r.isError).toBeFalsy();
    await client.close();
  } finally {
    consul.destroy();
    await mesh.stop();
  }
  // Stopping is not dying: nothing restarts after stop(). The wait is the scenario: past the
  // delay after which a restart would have been announced.
  await new Promise((r) => setTimeout(r, RESTART_FIRST_DELAY_MS + 500));
  expect(lines.filter((l) => l.includes("starting it again"))).toHaveLength(1);
});

it("mesh up notices when its Consul dev agent dies, starts it again, and the agents are back in it", async () => {
  const { meshUp } = await import("../../orchestrator/launcher/meshUp.ts");
  const lines: string[] = [];
  const mesh = await meshUp({
    consul: `http://${randomLoopback()}:8500`,
    basePort: 0,
    logDir: mkdtempSync(join(tmpdir(), "toolmesh-up-")),
    topology: [{ agent: "knowledge", replicas: 1 }],
    onProgress: (l) => void lines.push(l),
  });
  const consul = new ConsulClient({ address: mesh.consulAddress });
  try {
    const firstPid = mesh.consulPid!;
    process.kill(firstPid, "SIGKILL");
    const inst = mesh.instances[0]!;
    await eventually(
      async () => {
        const back = mesh.consulPid !== firstPid && (await consul.healthService("knowledge", { passing: true }));
        return back && back.value.some((e) => e.id === inst.instanceId);
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "Consul and knowledge back" },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; progress: ${lines.join(" | ")}`);
    });
    expect(
      lines.some((l) => /^the Consul dev agent exited \(code null\); starting it again in 1 s/.test(l)),
      lines.join("\n"),
    ).toBe(true);
    expect(
      lines.some((l) => l.startsWith("Consul is back at ")),
      lines.join("\n"),
    ).toBe(true);
  } finally {
    consul.destroy();
    await mesh.stop();
  }
}, 180_000);

it("mesh up keeps its Consul's data across restarts of that Consul: a booking survives Consul being killed and started again", async () => {
  const { meshUp } = await import("../../orchestrator/launcher/meshUp.ts");
  const lines: string[] = [];
  const host = randomLoopback();
  const dataDir = mkdtempSync(join(tmpdir(), "toolmesh-data-"));
  const mesh = await meshUp({
    consul: `http://${host}:8500`,
    basePort: 0,
    logDir: mkdtempSync(join(tmpdir(), "toolmesh-up-")),
    topology: [{ agent: "hr", replicas: 1 }],
    gateway: false,
    dataDir,
    onProgress: (l) => void lines.push(l),
  });
  const consul = new ConsulClient({ address: mesh.consulAddress });
  const hr = mesh.instances[0]!;
  const client = await connectHttp(hr.url);
  const remaining = async () =>
    (
      (await client.callTool({ name: "get_leave_balance", arguments: { employee_id: "E1002" } })) as CallToolResult & {
        structuredContent: { balances: { vacation: { remaining: number } } };
      }
    ).structuredContent.balances.vacation.remaining;
  try {
    expect(mesh.consulDataDir).toBe(join(dataDir, `${host}-8500`));
    expect(lines.some((l) => l.includes(`keeping its data in ${mesh.consulDataDir}`))).toBe(true);
    const before = await remaining();
    const booked = (await client.callTool({
      name: "request_leave",
      arguments: { employee_id: "E1002", leave_type: "vacation", start_date: "2026-12-21", end_date: "2026-12-22" },
    })) as CallToolResult;
    expect(booked.isError, JSON.stringify(booked.content)).toBeFalsy();
    expect(await remaining()).toBe(before - 2);

    const firstPid = mesh.consulPid!;
    process.kill(firstPid, "SIGKILL");
    await eventually(async () => mesh.consulPid !== firstPid && (await consul.leader({ timeoutMs: 1_000 })), {
      timeoutMs: 20_000,
      what: `Consul started again by mesh up; progress: ${lines.join(" | ")}`,
    });
    expect(lines.some((l) => l.startsWith(`Consul is back at ${mesh.consulAddress}`) && l.includes(mesh.consulDataDir!))).toBe(true);
    // The booking is still there (hr reads it from Consul KV), and so is hr's registration: nothing was lost.
    expect(await remaining()).toBe(before - 2);
    expect((await consul.kvKeys("toolmesh/state/hr/")).some((k) => k.includes("E1002"))).toBe(true);
    await eventually(async () => (await consul.healthService("hr", { passing: true })).value.some((e) => e.id === hr.instanceId), {
      timeoutMs: 10_000,
      what: "hr passing in the restarted Consul",
    });
  } finally {
    await client.close();
    consul.destroy();
    await mesh.stop();
  }
}, 180_000);
