import type { CallToolResult } from "@modelcontextprotocol/client";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentProcess } from "../../orchestrator/launcher/agentProcess.ts";
import { readinessFromEnv } from "../../orchestrator/launcher/readiness.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { connectHttp } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";

// Readiness on a busy machine (issue 21 item 8): an agent that is slow to start but keeps
// working is waited for; one that hangs, or exits, fails with a message that says so.
const SLOW_START = fileURLToPath(new URL("../fixtures/slowStart.ts", import.meta.url));
const logDir = mkdtempSync(join(tmpdir(), "toolmesh-ready-"));

let consul: TestConsul;
const started: AgentProcess[] = [];
beforeAll(async () => {
  consul = await startTestConsul();
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop(2_000)));
});
afterAll(async () => {
  await consul.stop();
});

/** A slow starter under a 1 s readiness allowance: far shorter than it needs, as on a busy machine. */
function slowStarter(mode: string, options: { ms?: number; readyTimeoutMs?: number; readyMaxMs?: number } = {}): AgentProcess {
  const label = `slow-${mode}-${started.length + 1}`;
  const proc = new AgentProcess({
    agent: SLOW_START,
    label,
    port: 0,
    consul: consul.address,
    logFile: join(logDir, `${label}.log`),
    env: { SLOW_START: mode, SLOW_START_MS: String(options.ms ?? 3_000) },
    readyTimeoutMs: options.readyTimeoutMs ?? 1_000,
    readyMaxMs: options.readyMaxMs ?? 120_000,
  });
  started.push(proc);
  return proc;
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!isMeshError(e)) throw new Error(`expected a MeshError, got ${e === undefined ? "ready" : String(e)}`);
  return { code: e.code, message: e.message };
}

describe("an agent that is slow to start", () => {
  it("logging progress for 3 s under a 1 s allowance: it is waited for, and serves", async () => {
    const proc = slowStarter("chatty");
    const ready = await proc.start();
    expect(readFileSync(proc.options.logFile, "utf8")).toContain("still loading");
    const client = await connectHttp(ready.url);
    try {
      const r = (await client.callTool({ name: "sleep", arguments: { ms: 1 } })) as CallToolResult;
      expect(r.structuredContent).toMatchObject({ pid: ready.pid });
    } finally {
      await client.close();
    }
  });

  it.runIf(process.platform === "linux")("computing silently for 3 s under a 1 s allowance: its CPU time counts as progress", async () => {
    const proc = slowStarter("busy");
    const ready = await proc.start();
    expect(ready.instanceId).toMatch(/^slow-/);
    expect(proc.running).toBe(true);
  });

  it("hanging with no output and no CPU: a TIMEOUT that says it looks hung, names the setting, and stops it", async () => {
    const proc = slowStarter("hang");
    const e = await failure(proc.start());
    expect(e.code).toBe("TIMEOUT");
    expect(e.message).toMatch(/has shown no progress .* looks hung/);
    expect(e.message).toContain("MESH_READY_TIMEOUT_MS");
    expect(await proc.exited).toBeNull(); // killed, not left behind
  });

  it("working but never ready: the outer bound stops it, saying it kept working", async () => {
    const proc = slowStarter("chatty", { ms: 600_000, readyMaxMs: 2_000 });
    const e = await failure(proc.start());
    expect(e.code).toBe("TIMEOUT");
    expect(e.message).toMatch(/still starting after 2 s \(it kept working but never logged "agent ready"\)/);
    expect(e.message).toContain("MESH_READY_MAX_MS");
    expect(e.message).toContain("still loading");
  });

  it("exiting before ready: fails at once (even with a 10-minute allowance) with its exit code and last lines", async () => {
    const proc = slowStarter("exit", { readyTimeoutMs: 600_000, readyMaxMs: 600_000 });
    const e = await failure(proc.start());
    expect(e.code).toBe("AGENT_UNREACHABLE");
    expect(e.message).toContain("exited with code 7 before it was ready");
    expect(e.message).toContain("loading part 3");
    expect(e.message).toContain("cannot read the configuration: /nowhere/config.json does not exist");
  });
});

describe("readiness settings", () => {
  it("MESH_READY_TIMEOUT_MS and MESH_READY_MAX_MS set the allowances; a wrong value names the variable", () => {
    expect(readinessFromEnv({})).toEqual({ timeoutMs: 20_000, maxMs: 300_000 });
    expect(readinessFromEnv({ MESH_READY_TIMEOUT_MS: "1000", MESH_READY_MAX_MS: "60000" })).toEqual({ timeoutMs: 1_000, maxMs: 60_000 });
    expect(() => readinessFromEnv({ MESH_READY_TIMEOUT_MS: "soon" })).toThrow(
      'MESH_READY_TIMEOUT_MS must be a positive whole number of milliseconds; got "soon". Unset it to use 20000.',
    );
  });

  it("the environment reaches an agent process when no option is given", async () => {
    const before = process.env["MESH_READY_TIMEOUT_MS"];
    process.env["MESH_READY_TIMEOUT_MS"] = "-5";
    try {
      const label = "slow-env";
      const proc = new AgentProcess({ agent: SLOW_START, label, port: 0, consul: consul.address, logFile: join(logDir, `${label}.log`) });
      const e = await failure(proc.start());
      expect(e).toMatchObject({ code: "CONFIG_INVALID" });
      expect(proc.pid).toBeUndefined(); // nothing was started
    } finally {
      if (before === undefined) delete process.env["MESH_READY_TIMEOUT_MS"];
      else process.env["MESH_READY_TIMEOUT_MS"] = before;
    }
  });
});
