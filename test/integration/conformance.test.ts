import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const run = promisify(execFile);
// The official MCP conformance suite (npm @modelcontextprotocol/conformance).
const CONFORMANCE = fileURLToPath(new URL("../../node_modules/@modelcontextprotocol/conformance/dist/index.js", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

/**
 * The server scenarios that apply to an agent that offers tools (and logging): the others
 * test capabilities these servers do not claim (resources, prompts, completions, sampling).
 * No expected-failures baseline: every listed scenario must pass.
 */
const SCENARIOS = ["server-initialize", "ping", "tools-list", "logging-set-level", "dns-rebinding-protection"];

let consul: TestConsul;
const servers: Record<string, TestAgent> = {};

beforeAll(async () => {
  consul = await startTestConsul();
  const started = await Promise.all(["hr", "finance", "knowledge", "orchestrator"].map((n) => spawnAgent(n, consul.address)));
  for (const a of started) servers[a.instanceId.split("-")[0]!] = a;
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "hr passing",
  });
  servers["gateway"] = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.process.stop(2_000)));
  await consul.stop();
});

it.each(["hr", "finance", "knowledge", "orchestrator", "gateway"])(
  "%s passes every applicable server scenario of the conformance suite",
  async (name) => {
    // The suite's DNS-rebinding scenario needs a localhost URL.
    const url = servers[name]!.url.replace("127.0.0.1", "localhost");
    const failures: string[] = [];
    for (const scenario of SCENARIOS) {
      const { stdout, stderr } = await run(process.execPath, [CONFORMANCE, "server", "--url", url, "--scenario", scenario], {
        timeout: 60_000,
      }).catch((e: { stdout: string; stderr: string }) => e);
      const summary = /Passed: (\d+)\/(\d+), (\d+) failed/.exec(stdout + stderr);
      if (!summary || summary[3] !== "0" || summary[1] !== summary[2])
        failures.push(`${scenario}: ${summary?.[0] ?? (stdout + stderr).slice(-500)}`);
    }
    expect(failures).toEqual([]);
  },
  120_000,
);
