import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { ROOT, freePort, mesh } from "../helpers/cli.ts";
import { randomLoopback, startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

let consul: TestConsul;
const agents: TestAgent[] = [];
let c: string[];

beforeAll(async () => {
  consul = await startTestConsul();
  c = ["--consul", consul.address];
  agents.push(await spawnAgent("hr", consul.address), await spawnAgent("finance", consul.address));
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "hr passing",
  });
  await eventually(async () => (await consul.client.healthService("finance", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "finance passing",
  });
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.process.stop()));
  await consul.stop();
});

/** No command prints a stack trace, whatever the input. */
function noStack(r: { stderr: string }): void {
  expect(r.stderr).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
}

describe("discovery commands", () => {
  it("mesh agents lists agents, instances, health and tool counts (table and --json)", async () => {
    const table = await mesh(["agents", ...c]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^AGENT\s+INSTANCE\s+ADDRESS\s+HEALTH\s+TOOLS/m);
    expect(table.stdout).toMatch(new RegExp(`^hr\\s+${agents[0]!.instanceId}\\s+127\\.0\\.0\\.1:\\d+\\s+passing\\s+7\\s`, "m"));
    const json = JSON.parse((await mesh(["agents", "--json", ...c])).stdout) as {
      agents: { name: string; tools: number; instances: { status: string }[] }[];
    };
    expect(json.agents.map((a) => [a.name, a.tools, a.instances.map((i) => i.status)])).toEqual([
      ["finance", 6, ["passing"]],
      ["hr", 7, ["passing"]],
    ]);
  });

  it("mesh tools shows each tool's description and input schema", async () => {
    const text = await mesh(["tools", "hr", ...c]);
    expect(text.stdout).toContain(
      'hr.request_leave(employee_id*: string, leave_type*: "vacation"|"sick"|"personal"|"parental", start_date*: string, end_date*: string, reason: string)',
    );
    const json = JSON.parse((await mesh(["tools", "--json", ...c])).stdout) as {
      tools: { agent: string; name: string; inputSchema: { required?: string[] } }[];
    };
    expect(json.tools.find((t) => t.agent === "finance" && t.name === "submit_expense")?.inputSchema.required).toEqual(
      expect.arrayContaining(["employee_id", "department", "category", "amount", "description"]),
    );
  });

  it("mesh status reports Consul, its leader and the counts", async () => {
    const s = JSON.parse((await mesh(["status", "--json", ...c])).stdout) as Record<string, unknown>;
    expect(s).toMatchObject({
      consul: { address: consul.address, reachable: true, leader: `${consul.bind}:8300` },
      agents: 2,
      instances: 2,
      tools: 13,
      lastDiscoveryError: null,
    });
  });
});

describe("mesh call", () => {
  it("calls through discovery and prints the structured result, the instance and the trace id", async () => {
    const r = await mesh(["call", "finance.compute_net_pay", "--arg", "employee_id=E1002", "--arg", "period=annual", ...c]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ employeeId: "E1002", period: "annual", gross: 192_000 });
    expect(r.stderr).toMatch(new RegExp(`^finance.compute_net_pay answered by ${agents[1]!.instanceId} · trace [0-9a-f]{32}$`, "m"));
  });

  it("a business error exits 1 with the tool's message", async () => {
    const r = await mesh(["call", "hr.get_employee", '{"employee_id":"E9999"}', ...c]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('mesh: Unknown employee id "E9999"');
    noStack(r);
  });

  it.each([
    [["call", "payroll.run"], /Unknown agent "payroll": Consul has no such service\. Agents: finance, hr /],
    [["call", "hr.fire"], /Agent "hr" has no tool "fire"\. Its tools: ask, find_employee, /],
    [["call", "hrget_employee"], /"hrget_employee" is not agent\.tool/],
    [["call", "hr.get_employee", "{employee_id: E1}"], /The arguments are not valid JSON .* Quote them for the shell/],
    [["call", "hr.get_employee", "[1,2]"], /The arguments must be a JSON object/],
    [["call", "hr.get_employee", '{"employee_id": 5}'], /do not match its input schema: data\/employee_id must be string/],
    [["call", "hr.get_employee"], /do not match its input schema: data must have required property 'employee_id'/],
    [["call", "hr.get_employee", "--arg", "employee_id"], /--arg "employee_id" is not key=value/],
    [
      ["call", "hr.get_employee", "--timeout", "soon", "--arg", "employee_id=E1002"],
      /--timeout must be a whole number of milliseconds from 1 to 86400000/,
    ],
    [
      ["call", "hr.get_employee", "--timeout", "99999999999", "--arg", "employee_id=E1002"],
      /--timeout must be a whole number of milliseconds from 1 to 86400000 \(24 h\); got "99999999999"/,
    ],
    [["call", "hr.get_employee", "--timeout", "0", "--arg", "employee_id=E1002"], /--timeout must be a whole number/],
    [["call", "hr.get_employee", nested(5_000)], /cannot be sent: arguments nest deeper than 32 levels/],
    [["call", "hr.get_employee", nested(40)], /cannot be sent: arguments nest deeper than 32 levels/],
    [
      ["call", "hr.get_employee", "--args-file", "/nonexistent/args.json"],
      /Cannot read the arguments from \/nonexistent\/args\.json: ENOENT/,
    ],
    [["call", "hr.get_employee", "{}", "--args-file", "x.json"], /Give the arguments once/],
    [["call", "finance.submit_expense", "{}", "--idempotency-key", "short"], /--idempotency-key "short" is invalid/],
    [["frobnicate"], /unknown command 'frobnicate'/],
  ])("bad input %j exits 2 with a clear message", async (args, message) => {
    const r = await mesh([...(args as string[]), ...c]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    noStack(r);
  });
});

/** Tool arguments whose employee_id is nested `depth` arrays deep, as JSON text (too deep to build as a value and stringify). */
function nested(depth: number): string {
  return `{"employee_id":${"[".repeat(depth)}"x"${"]".repeat(depth)}}`;
}

describe("mesh ask --yes: the exit code says whether what was asked was done", () => {
  type Asked = {
    kind: string;
    complete?: boolean;
    failures?: { kind: string; agent?: string; tool?: string; changes: boolean; message: string }[];
  };
  const balance = async () =>
    (
      JSON.parse((await mesh(["call", "hr.get_leave_balance", '{"employee_id":"E1002"}', "--json", ...c])).stdout) as {
        structuredContent: { balances: { vacation: { remaining: number } } };
      }
    ).structuredContent.balances.vacation.remaining;

  it("another caller's session is refused with exit 1 and its message, not an internal error", async () => {
    const now = new Date().toISOString();
    const theirs = { id: "taken-session", owner: "token:0123456789abcdef", history: [], facts: {}, createdAt: now, updatedAt: now };
    await consul.client.kvSet("toolmesh/sessions/taken-session", JSON.stringify(theirs));
    const r = await mesh(["ask", "Who is Bob Okafor's manager?", "--session", "taken-session", ...c]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^mesh: Session "taken-session" is not yours: this session belongs to another caller/m);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it("a booking the agent refuses exits 1, says it on stderr, and --json says what was not done", async () => {
    const before = await balance();
    const booking = "Book 2 days of vacation for Bob Okafor starting 2027-01-04";
    const r = await mesh(["ask", booking, "--yes", ...c]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^mesh: hr\.request_leave was refused \(nothing was changed\): Only leave in 2026 can be booked now/m);
    const json = await mesh(["ask", booking, "--yes", "--json", ...c]);
    expect(json.code).toBe(1);
    const out = JSON.parse(json.stdout) as Asked;
    expect(out).toMatchObject({ kind: "answer", complete: false });
    expect(out.failures).toEqual([
      expect.objectContaining({
        kind: "business",
        agent: "hr",
        tool: "request_leave",
        changes: true,
        message: expect.stringMatching(/^Only leave in 2026/),
      }),
    ]);
    expect(await balance()).toBe(before);
    // What was done is still exit 0, and says so.
    const ok = await mesh(["ask", "Who is Bob Okafor's manager?", "--json", ...c]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ kind: "answer", complete: true, failures: [] });
  });

  it("with hr hung (SIGSTOP), a booking for someone only hr knows exits 3 (a mesh failure), not 0", async () => {
    const hr = agents[0]!;
    const before = await balance();
    hr.process.signal("SIGSTOP");
    try {
      const r = await mesh([
        "ask",
        "Book 2 days of vacation for Bob Okafor starting 2026-11-16",
        "--yes",
        "--json",
        "--timeout",
        "8000",
        ...c,
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      const out = JSON.parse(r.stdout) as Asked;
      expect(out.complete).toBe(false);
      expect(out.failures).toContainEqual(expect.objectContaining({ kind: "mesh", message: expect.stringMatching(/hr /) }));
      expect(r.stderr).toMatch(/^mesh: .*hr /m);
    } finally {
      hr.process.signal("SIGCONT");
    }
    await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
      timeoutMs: 10_000,
      what: "hr passing again after SIGCONT",
    });
    expect(await balance()).toBe(before);
  }, 40_000);
});

describe("mesh call input and configuration", () => {
  it("reads the arguments from a file (--args-file) or standard input (-)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "toolmesh-args-"));
    const file = join(dir, "args.json");
    writeFileSync(file, JSON.stringify({ employee_id: "E1002" }));
    const fromFile = await mesh(["call", "hr.get_employee", "--args-file", file, "--json", ...c]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ structuredContent: { employee: { id: "E1002" } } });
    const fromStdin = await mesh(["call", "hr.find_employee", "-", "--json", ...c], {}, JSON.stringify({ query: "okafor" }));
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(JSON.parse(fromStdin.stdout)).toMatchObject({ structuredContent: { employees: [{ id: "E1002" }] } });
  });

  it("a malformed MESH_TOKEN is a configuration error (exit 2) naming the variable, before anything is sent", async () => {
    for (const variable of ["MESH_TOKEN", "MESH_TOKEN_HR"]) {
      const r = await mesh(["call", "hr.get_employee", "--arg", "employee_id=E1002", ...c], { [variable]: "short" });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^mesh: ${variable}: each token must be at least 16 visible ASCII characters`));
      noStack(r);
    }
  });
});

describe("mesh gateway flags", () => {
  it.each([
    [["--port", "abc"], /^mesh: --port must be a port number from 0 \(any free port\) to 65535; got "abc"\.\n$/],
    [["--port", "99999"], /^mesh: --port must be a port number from 0 \(any free port\) to 65535; got "99999"\.\n$/],
    [
      ["--host", "10.255.255.1", "--port", "0"],
      /^mesh: Cannot listen on 10\.255\.255\.1:0: 10\.255\.255\.1 is not an address of this machine/,
    ],
    [["--max-sessions", "none"], /^mesh: --max-sessions \/ MESH_MAX_SESSIONS must be a whole number from 1 to 1000000; got "none"\.\n$/],
    [["--allowed-hosts", "ok.example.com,bad host"], /^mesh: --allowed-hosts: "bad host" is not a host name/],
    [
      ["--max-calls-per-instance", "0"],
      /^mesh: --max-calls-per-instance \/ MESH_MAX_CALLS_PER_INSTANCE must be a whole number from 1 to 1000000; got "0"\.\n$/,
    ],
  ])("%j is a usage error with one clear line (exit 2)", async (args, message) => {
    const r = await mesh(["gateway", ...(args as string[]), ...c]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("a port in use is one clear line too, and --allowed-hosts is accepted", async () => {
    const busy = createNetServer().listen(0, "127.0.0.1");
    await new Promise((r) => busy.once("listening", r));
    const port = (busy.address() as { port: number }).port;
    const r = await mesh(["gateway", "--port", String(port), "--allowed-hosts", "mesh.example.com", ...c]);
    busy.close();
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `mesh: Cannot listen on 127.0.0.1:${port}: port ${port} on 127.0.0.1 is already in use by another process; choose another port (or 0 for any free one).\n`,
    );
  });
});

describe("register any MCP server", () => {
  let everything: ChildProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    // The reference server from npm, in its Streamable HTTP mode: not built with toolmesh.
    everything = spawn(process.execPath, ["node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "ignore", "pipe"],
    });
    await new Promise<void>((resolve) => everything.stderr!.on("data", (d: Buffer) => d.toString().includes("listening") && resolve()));
  });
  afterAll(() => {
    everything.kill();
  });

  it("mesh register makes its tools discoverable and callable; mesh deregister removes them", async () => {
    const url = `http://127.0.0.1:${port}/mcp`;
    const reg = await mesh(["register", "--name", "everything", "--url", url, "--tag", "demo", ...c]);
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toContain(`Registered everything (id everything-127.0.0.1-${port})`);
    await eventually(async () => (await consul.client.healthService("everything", { passing: true })).value.length === 1, {
      timeoutMs: 8_000,
      what: "everything passing (TCP check)",
    });
    // What the probe found is kept in the registration: callers do not probe it again.
    const [entry] = (await consul.client.healthService("everything", { passing: true })).value;
    expect(entry!.meta["mcp_protocols"]).toMatch(/^\d{4}-\d\d-\d\d(,\d{4}-\d\d-\d\d)*$/);

    const tools = await mesh(["tools", "everything", ...c]);
    expect(tools.code).toBe(0);
    expect(tools.stdout).toMatch(/^everything\.echo\(message\*: string\)/m);

    const echo = await mesh(["call", "everything.echo", "--arg", "message=hello mesh", ...c]);
    expect(echo.code, echo.stderr).toBe(0);
    expect(echo.stdout).toContain("Echo: hello mesh");

    const dereg = await mesh(["deregister", "everything", ...c]);
    expect(dereg.code).toBe(0);
    expect(dereg.stdout).toContain(`Deregistered everything-127.0.0.1-${port}.`);
    const after = await mesh(["tools", "everything", ...c]);
    expect(after.code).toBe(2);
    expect(after.stderr).toContain('Unknown agent "everything"');
  });

  it.each([
    [["--name", "Everything!", "--url", "http://127.0.0.1:1/mcp"], /--name "Everything!" is invalid/],
    [["--name", "x", "--url", "ftp://127.0.0.1/mcp"], /--url must be http or https/],
    [["--name", "x", "--url", "http://user:pw@127.0.0.1:1/mcp"], /must not carry credentials/],
    [["--name", "x", "--url", "not a url"], /is not a URL/],
    [["--name", "x", "--url", "http://127.0.0.1:1/mcp", "--check", "sometimes"], /argument 'sometimes' is invalid/],
  ])("refuses %j with a clear message (exit 2)", async (args, message) => {
    const r = await mesh(["register", ...(args as string[]), ...c]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });

  it("refuses to replace a different server registered under the same id", async () => {
    const r = await mesh(["register", "--name", "imposter", "--id", agents[0]!.instanceId, "--url", "http://127.0.0.1:9/mcp", ...c]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Service id "${agents[0]!.instanceId}" is already registered for hr`);
  });
});

it("with Consul unreachable, commands fail with the address and how to start one (exit 3)", async () => {
  const addr = `http://${randomLoopback()}:8500`;
  const r = await mesh(["agents", "--consul", addr]);
  expect(r.code).toBe(3);
  expect(r.stderr).toBe(
    `mesh: Consul at ${addr} is unreachable (ECONNREFUSED) while trying to read the raft leader. Start one with "mesh up" or set CONSUL_HTTP_ADDR.\n`,
  );
  // mesh tasks wait rides out an outage once it has seen its task, not a Consul that never answered (a wrong address).
  const wait = await mesh(["tasks", "wait", "finance", "0b4a18da-430a-4287-812d-31a743940e99", "--consul", addr]);
  expect(wait.code).toBe(3);
  expect(wait.stderr).toMatch(/^mesh: Consul at .* is unreachable/);
});
