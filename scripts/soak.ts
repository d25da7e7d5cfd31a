#!/usr/bin/env node
// Soak run: `npm run soak [-- --minutes 30]`. Brings up the local mesh (`mesh up`) and the
// gateway, then for the set time makes calls in bursts (through the gateway, agent to agent,
// the orchestrator, A2A) separated by idle gaps longer than the agents' idle-session timeout, and
// floods one hr replica with sessions now and then so its session cap evicts the callers'.
// A console viewer follows the gateway's live stream the whole time (so every call through the
// gateway reports its hops) and reads its tasks list after each burst.
// Reports restarts (must be 0), failed calls, and each process's memory over time; writes
// the report to bench/results/soak.md and exits 1 if anything restarted or failed.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
  type CallToolResult,
} from "@modelcontextprotocol/client";
// A 2025-11-25 client, as most LLM clients still are: the v1 SDK (a dev dependency).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { MeshClient } from "../src/client/meshClient.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { describeError } from "../src/protocol/errors.ts";
import { meshUp } from "../orchestrator/launcher/meshUp.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    "idle-ms": { type: "string", default: "60000" },
    "max-sessions": { type: "string", default: "32" },
    consul: { type: "string", default: `http://127.77.${Math.floor(Math.random() * 250) + 1}.9:8500` },
    out: { type: "string", default: "bench/results/soak.md" },
  },
});
const minutes = Number(values.minutes);
const idleMs = Number(values["idle-ms"]);
const maxSessions = Number(values["max-sessions"]);
if (!(minutes > 0) || !(idleMs >= 1_000) || !(maxSessions >= 4)) {
  process.stderr.write("soak: --minutes must be > 0, --idle-ms ≥ 1000, --max-sessions ≥ 4\n");
  process.exit(2);
}

// Agents and gateway close idle sessions after idleMs and keep maxSessions: shortened timers.
process.env["MESH_SESSION_IDLE_MS"] = String(idleMs);
process.env["MESH_MAX_SESSIONS"] = String(maxSessions);
const started = Date.now();
const say = (line: string) => process.stderr.write(`[soak +${Math.round((Date.now() - started) / 1_000)}s] ${line}\n`);

const logDir = mkdtempSync(join(tmpdir(), "toolmesh-soak-"));
const restarts: string[] = [];
const mesh = await meshUp({
  consul: values.consul,
  basePort: 0,
  logDir,
  gateway: false, // the soak runs its own, below
  onProgress: (line) => {
    if (/exited \(code/.test(line)) restarts.push(`${new Date().toISOString()} ${line}`);
    say(line);
  },
});
say(`mesh up: ${mesh.instances.map((i) => i.instanceId).join(", ")}; logs in ${logDir}`);

// The gateway, as `mesh gateway` runs it.
let gatewayExit: string | undefined;
const gateway: ChildProcess = spawn(process.execPath, ["orchestrator/gateway/main.ts", "--port", "0", "--consul", mesh.consulAddress], {
  stdio: ["ignore", "pipe", "pipe"],
  env: process.env,
});
let finished = false;
gateway.on("exit", (code, signal) => {
  if (finished) return;
  gatewayExit = `gateway exited (code ${code}, signal ${signal})`;
  restarts.push(`${new Date().toISOString()} ${gatewayExit}`);
});
const gatewayLog: string[] = [];
gateway.stderr!.on("data", (d: Buffer) => gatewayLog.push(d.toString()));
const gatewayUrl = await new Promise<string>((resolve, reject) => {
  createInterface({ input: gateway.stdout! }).on("line", (line) => {
    if (line.includes('"gateway ready"')) resolve((JSON.parse(line) as { url: string }).url);
  });
  gateway.once("exit", () => reject(new Error(`the gateway exited before it was ready: ${gatewayLog.join("")}`)));
});
say(`gateway at ${gatewayUrl}`);

const consul = new ConsulClient({ address: mesh.consulAddress });
const caller = new MeshClient({ consul, callerName: "soak" });
// An LLM client of the gateway. The gateway closes its idle session too (same timeout); as
// the spec asks of a client, on 404 it starts a new session and sends the request again.
let client = connectGateway();
let clientSessions = 1;
// A 2026-07-28 client of the gateway: no session to lose.
const modern = new ModernClient({ name: "soak-modern", version: "1" }, { versionNegotiation: { mode: "auto" } });
await modern.connect(new ModernTransport(new URL(gatewayUrl)));
function connectGateway(): Promise<Client> {
  const c = new Client({ name: "soak", version: "1" });
  return c.connect(new StreamableHTTPClientTransport(new URL(gatewayUrl))).then(() => c);
}
async function viaGateway(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  const current = client;
  try {
    return (await (await current).callTool({ name, arguments: args })) as unknown as CallToolResult;
  } catch (e) {
    const gone = e instanceof StreamableHTTPError && e.code === 404;
    // A call in flight on the old client when another closed it: its session was gone too.
    const closedUnder = e instanceof McpError && e.code === ErrorCode.ConnectionClosed && client !== current;
    if (!gone && !closedUnder) throw e;
    // One new session for every call that found the old one gone.
    if (client === current) {
      void (await current).close().catch(() => undefined);
      client = connectGateway();
      clientSessions++;
    }
    return (await (await client).callTool({ name, arguments: args })) as unknown as CallToolResult;
  }
}

interface Outcome {
  path: string;
  ok: boolean;
  error?: string;
}
const outcomes: Outcome[] = [];
const record = async (path: string, fn: () => Promise<CallToolResult>) => {
  try {
    const r = await fn();
    outcomes.push(r.isError ? { path, ok: false, error: JSON.stringify(r.content).slice(0, 200) } : { path, ok: true });
  } catch (e) {
    outcomes.push({ path, ok: false, error: describeError(e).slice(0, 200) });
  }
};

// A console viewer: the live stream (topology each second, each call as it ends), for the whole run.
const consoleStream = { events: 0, calls: 0, ended: undefined as string | undefined };
const consoleBase = new URL("/ui/", gatewayUrl);
void (async () => {
  try {
    const res = await fetch(new URL("api/events", consoleBase));
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      consoleStream.events += (value.match(/^event: /gm) ?? []).length;
      consoleStream.calls += (value.match(/^event: call$/gm) ?? []).length;
    }
    if (!finished) consoleStream.ended = "the gateway ended the console's stream";
  } catch (e) {
    if (!finished) consoleStream.ended = describeError(e);
  }
})();

/** An A2A message to the orchestrator through the gateway (JSON-RPC, blocking). */
async function viaA2a(text: string): Promise<CallToolResult> {
  const res = await fetch(new URL("/a2a/orchestrator", gatewayUrl), {
    method: "POST",
    headers: { "content-type": "application/json", "a2a-version": "1.0" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendMessage",
      params: { message: { role: "ROLE_USER", messageId: crypto.randomUUID(), parts: [{ text }] } },
    }),
  });
  const body = (await res.json()) as { result?: { task?: { status?: { state?: string } } }; error?: unknown };
  const state = body.result?.task?.status?.state;
  return { content: [{ type: "text", text: JSON.stringify(body).slice(0, 200) }], isError: state !== "TASK_STATE_COMPLETED" };
}

/** One burst: every long-running caller makes calls that need another agent. */
async function burst(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.all([
      record("2025-11-25 client → gateway → hr", () => viaGateway("hr__get_employee", { employee_id: "E1002" })),
      record("2026-07-28 client → gateway → hr", () =>
        modern.callTool({ name: "hr__get_leave_balance", arguments: { employee_id: "E1004" } }),
      ),
      record("2025-11-25 client → gateway → finance → hr", () => viaGateway("finance__compute_net_pay", { employee_id: "E1003" })),
      record("caller → orchestrator → hr", () =>
        caller.callTool("orchestrator", "ask", { question: "Who does Bob Okafor report to?", agent: "hr" }),
      ),
      record("caller → knowledge", () => caller.callTool("knowledge", "search_documents", { query: "parental leave" })),
      record("A2A client → gateway → orchestrator → hr", () => viaA2a("Who does Bob Okafor report to?")),
    ]);
  }
  await record("console: tasks and sessions", async () => {
    const res = await fetch(new URL("api/work", consoleBase));
    return { content: [], isError: !res.ok || !Array.isArray(((await res.json()) as { tasks?: unknown }).tasks) };
  });
}

/** Opens more sessions on one hr replica than it keeps: the callers' sessions are evicted. */
async function flood(): Promise<void> {
  const hr = mesh.instances.find((i) => i.agent === "hr")!;
  for (let i = 0; i < maxSessions + 8; i++) {
    const res = await fetch(hr.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "soak-flood", version: "1" } },
      }),
    }).catch(() => undefined);
    await res?.text();
  }
}

/** Resident memory of a process in MiB (Linux), or NaN when it is gone. */
function rssMiB(pid: number | undefined): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}
const processes = () => [
  ...mesh.instances.map((i) => ({ name: i.label, pid: i.pid })),
  { name: "gateway", pid: gateway.pid },
  { name: "consul", pid: mesh.consulPid },
];
const memory: { minute: number; rss: Record<string, number> }[] = [];
const sample = () =>
  memory.push({
    minute: Math.round((Date.now() - started) / 60_000),
    rss: Object.fromEntries(processes().map((p) => [p.name, Math.round(rssMiB(p.pid) * 10) / 10])),
  });
sample();
const sampler = setInterval(sample, 60_000);

const end = started + minutes * 60_000;
let round = 0;
let stopping = false;
process.on("SIGINT", () => (stopping = true));
while (Date.now() < end && !stopping && !gatewayExit) {
  round++;
  await burst();
  if (round % 3 === 0) {
    await flood();
    say(`round ${round}: flooded an hr replica past its session cap`);
    await burst();
  }
  const failed = outcomes.filter((o) => !o.ok).length;
  // Idle longer than the idle-session timeout, so every pooled session expires in between.
  const gap = Math.min(Math.round(idleMs * (1.2 + Math.random() * 0.6)), Math.max(0, end - Date.now()));
  say(`round ${round}: ${outcomes.length} calls so far, ${failed} failed; idle for ${Math.round(gap / 1_000)} s`);
  await new Promise((r) => setTimeout(r, gap));
}
clearInterval(sampler);
sample();

const failed = outcomes.filter((o) => !o.ok);
const paths = [...new Set(outcomes.map((o) => o.path))];
const names = processes().map((p) => p.name);
const report = [
  `# Soak run`,
  ``,
  `${new Date(started).toISOString()}, ${Math.round((Date.now() - started) / 60_000)} min: \`mesh up\` (hr ×2, finance, knowledge, orchestrator) and the gateway,`,
  `agents' idle-session timeout ${idleMs / 1_000} s and session cap ${maxSessions}; ${round} rounds of calls, each followed by an idle gap of 1.2-1.8× the timeout,`,
  `an hr replica flooded past its session cap every third round.`,
  ``,
  `| | |`,
  `| --- | --- |`,
  `| restarts | ${restarts.length}${restarts.length ? ` (${restarts.join("; ")})` : ""} |`,
  `| calls | ${outcomes.length} |`,
  `| the 2025-11-25 gateway client's sessions (a new one after each idle expiry) | ${clientSessions} |`,
  `| failed | ${failed.length} |`,
  `| console stream: events received (topology each second, calls as they end) | ${consoleStream.events} (${consoleStream.calls} calls)${consoleStream.ended ? `; ended: ${consoleStream.ended}` : "; open to the end"} |`,
  ...paths.map(
    (p) =>
      `| ${p} | ${outcomes.filter((o) => o.path === p && o.ok).length} ok, ${outcomes.filter((o) => o.path === p && !o.ok).length} failed |`,
  ),
  ``,
  ...(failed.length ? ["Failures:", "", ...failed.slice(0, 20).map((f) => `- ${f.path}: ${f.error}`), ""] : []),
  `Resident memory (MiB) per process, by minute:`,
  ``,
  `| minute | ${names.join(" | ")} |`,
  `| --- | ${names.map(() => "---").join(" | ")} |`,
  ...memory
    .filter((m, i) => i === 0 || i === memory.length - 1 || m.minute % 5 === 0)
    .map((m) => `| ${m.minute} | ${names.map((n) => m.rss[n] ?? "").join(" | ")} |`),
  ``,
].join("\n");
mkdirSync(join(values.out, ".."), { recursive: true });
writeFileSync(values.out, report);
process.stdout.write(report);

finished = true;
const failedRun = restarts.length > 0 || failed.length > 0 || consoleStream.ended !== undefined;
await (await client).close().catch(() => undefined);
await modern.close().catch(() => undefined);
await caller.close();
consul.destroy();
gateway.kill("SIGTERM");
await mesh.stop();
process.exit(failedRun ? 1 : 0);
