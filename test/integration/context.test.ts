import { fileURLToPath } from "node:url";
import { ProtocolError } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { fromMeta, rootContext, toMeta } from "../../src/context/meshContext.ts";
import { isMeshError } from "../../src/protocol/errors.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh as cli } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, within } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
let consul: TestConsul;
let client: MeshClient;
const agents: Record<string, TestAgent> = {};

beforeAll(async () => {
  consul = await startTestConsul();
  const [a, b, hr, finance] = await Promise.all([
    spawnAgent(PROBE, consul.address, { env: { PROBE_NAME: "probe-a" } }),
    spawnAgent(PROBE, consul.address, { env: { PROBE_NAME: "probe-b" } }),
    spawnAgent("hr", consul.address),
    spawnAgent("finance", consul.address),
  ]);
  Object.assign(agents, { a, b, hr, finance });
  client = new MeshClient({ consul: consul.client, callerName: "test", catalogMode: "all" });
  await eventually(
    async () => {
      await client.start();
      return ["probe-a", "probe-b", "hr", "finance"].every((n) => (client.catalog.agent(n)?.tools.length ?? 0) > 0);
    },
    { timeoutMs: 5_000, what: "all four agents in the catalog" },
  );
});
afterAll(async () => {
  await client.close();
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await consul.stop();
});

describe("context in every call", () => {
  it("arrives at the tool handler exactly as sent: trace, session, caller chain, hop, deadline, facts, history", async () => {
    const sent = rootContext({
      caller: "test",
      sessionId: "session-42",
      timeoutMs: 10_000,
      hopLimit: 5,
      facts: { employeeId: "E1002", locale: "en-GB" },
      history: [{ role: "user", text: "How much leave do I have?", at: "2026-11-24T10:00:00.000Z" }],
    });
    const { result, context } = await client.call("probe-a", "context", {}, { context: sent });
    expect(context).toEqual(sent);
    const received = (result.structuredContent as { context: unknown }).context;
    expect(received).toEqual(JSON.parse(JSON.stringify(sent)));
  });

  it("finance's onward call to hr keeps the trace id, with hop + 1 and finance as the caller (from hr's own log)", async () => {
    const ctx = rootContext({ caller: "test", sessionId: "s-onward" });
    const r = await client.callTool("finance", "compute_net_pay", { employee_id: "E1004" }, { context: ctx });
    expect(r.isError).toBeFalsy();
    const line = await eventually(() => agents["hr"]!.logs().find((l) => l["msg"] === "tool call" && l["traceId"] === ctx.traceId), {
      timeoutMs: 2_000,
      what: "hr's log line for the call",
    });
    expect(line.value).toMatchObject({ tool: "get_employee", caller: "finance", hop: 1, isError: false });
    // finance logs its call once it has answered: the line may reach its log file just after the answer reaches us.
    const own = await eventually(() => agents["finance"]!.logs().find((l) => l["msg"] === "tool call" && l["traceId"] === ctx.traceId), {
      timeoutMs: 2_000,
      what: "finance's log line for the call",
    });
    expect(own.value).toMatchObject({
      tool: "compute_net_pay",
      caller: "test",
      hop: 0,
    });
  });

  it("an A → B → A loop is stopped by the hop limit with a clear error", async () => {
    // A mesh error (CLI exit 3), raised where the loop is found and passed back up the chain as itself.
    const r = client.callTool(
      "probe-a",
      "bounce",
      { to: "probe-b", back: "probe-a" },
      { context: rootContext({ caller: "test", hopLimit: 4 }) },
    );
    await expect(r).rejects.toMatchObject({ code: "HOP_LIMIT" });
    await expect(r).rejects.toThrow(
      /^Hop limit of 4 reached: test → probe-a → probe-b → probe-a → probe-b → probe-a → probe-b\. The agents are calling each other in a loop/,
    );
  });

  it("the callee refuses a call that arrives already past its hop limit", async () => {
    const direct = await connectHttp(agents["a"]!.url);
    const forged = { ...rootContext({ caller: "forger", hopLimit: 2 }), hop: 3 };
    await expect(direct.callTool({ name: "context", arguments: {}, _meta: toMeta(forged) })).rejects.toThrow(
      /Hop limit of 2 exceeded at probe-a: forger → probe-a/,
    );
    await direct.close();
  });

  it("decoding never trusts the network: malformed fields fall back to safe values", () => {
    const ctx = fromMeta({
      traceparent: "garbage",
      "io.toolmesh/hop": -5,
      "io.toolmesh/caller": [1, "ok", {}],
      "io.toolmesh/deadline": "soon",
      "io.toolmesh/facts": [1],
    })!;
    expect(ctx.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ctx).toMatchObject({ hop: 0, callerChain: ["ok"], facts: {} });
    expect(ctx.deadline).toBeUndefined();
  });
});

describe("deadlines", () => {
  it("a call whose deadline passes is cancelled at the agent: the handler's signal fires, not before the deadline", async () => {
    const sentAt = Date.now();
    const err = await client.callTool("probe-a", "sleep", { ms: 5_000 }, { timeoutMs: 600 }).catch((e: unknown) => e);
    expect(isMeshError(err) && err.code).toBe("TIMEOUT");
    expect((err as Error).message).toMatch(
      /^probe-a\.sleep on probe-a-.+ did not answer within its deadline \(600 ms\); probe-a-\S+ was asked to cancel it\. It is safe to call again/,
    );
    const aborted = await eventually(
      () =>
        agents["a"]!.logs()
          .filter((l) => l["msg"] === "sleep aborted")
          .at(-1),
      { timeoutMs: 2_000, what: "the handler's abort" },
    );
    // Not before the deadline (same machine, same clock; 5 ms for timer and clock rounding),
    // and before the sleep would have ended: cancelled, not run to its end.
    expect(aborted.value["time"] as number).toBeGreaterThanOrEqual(sentAt + 600 - 5);
    expect(aborted.value["afterMs"] as number).toBeLessThan(5_000);
  });

  it("the agent enforces the deadline by itself, even for a caller that would wait forever", async () => {
    const direct = await connectHttp(agents["b"]!.url);
    const ctx = { ...rootContext({ caller: "patient" }), deadline: Date.now() + 400 };
    const err = await direct
      .callTool({ name: "sleep", arguments: { ms: 10_000 }, _meta: toMeta(ctx) }, { timeout: 60_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).message).toMatch(/Deadline passed while probe-b\.sleep was running; cancelled/);
    // The agent's answer, not the caller's patience: its handler was cancelled before its 10 s were up.
    const aborted = await eventually(() => agents["b"]!.logs().find((l) => l["msg"] === "sleep aborted"), {
      timeoutMs: 1_000,
      what: "probe-b's handler aborted",
    });
    expect(aborted.value["afterMs"] as number).toBeLessThan(10_000);
    await direct.close();
  });

  it("mesh call reports a timeout (exit 3)", async () => {
    // The deadline covers discovery too: give it room for that on this machine now (a
    // baseline from the same run: one whole quick call, process start included).
    const t0 = performance.now();
    const quick = await cli(["call", "probe-a.sleep", "--arg", "ms=0", "--consul", consul.address]);
    expect(quick.code, quick.stderr).toBe(0);
    const timeoutMs = Math.min(30_000, Math.max(500, Math.round(2 * (performance.now() - t0))));
    const r = await cli(["call", "probe-a.sleep", "--arg", "ms=60000", "--timeout", String(timeoutMs), "--consul", consul.address]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`did not answer within its deadline \\(${timeoutMs} ms\\)`));
  });
});

describe("cancellation and the live catalog", () => {
  it("a caller's AbortSignal sends MCP cancellation: the agent's handler stops", async () => {
    const controller = new AbortController();
    const call = client.callTool("probe-b", "sleep", { ms: 5_000 }, { signal: controller.signal });
    const before = agents["b"]!.logs().filter((l) => l["msg"] === "sleep aborted").length;
    const startedBefore = agents["b"]!.logs().filter((l) => l["msg"] === "sleep started").length;
    // Stop it once it runs at the agent.
    await eventually(() => agents["b"]!.logs().filter((l) => l["msg"] === "sleep started").length > startedBefore, {
      timeoutMs: 5_000,
      what: "the call to start at probe-b",
    });
    controller.abort(new Error("user pressed stop"));
    await expect(call).rejects.toThrow(/user pressed stop/);
    const aborted = await eventually(
      () =>
        agents["b"]!.logs()
          .filter((l) => l["msg"] === "sleep aborted")
          .at(before),
      { timeoutMs: 1_000, what: "the handler's abort" },
    );
    expect(aborted.value["afterMs"] as number).toBeLessThan(5_000); // stopped, not run to its end
  });

  it("a service registered in Consul reaches a running caller's catalog by itself (a change event), and leaves it", async () => {
    const seen = new Promise<void>((resolve) => {
      const onChange = (e: { agent?: string }) => {
        if (e.agent === "watched" && client.catalog.agent("watched")?.instances.length === 1) {
          client.catalog.off("change", onChange);
          resolve();
        }
      };
      client.catalog.on("change", onChange);
    });
    // Registered as a toolmesh agent (trusted by its registration), so no MCP check stands
    // between Consul and the catalog: this measures the watch.
    await consul.client.registerService({
      id: "watched-1",
      name: "watched",
      address: "127.0.0.1",
      port: 9,
      tags: ["mcp"],
      meta: { toolmesh_version: "test" },
    });
    await within(2_000, "the watched service in the catalog", seen);
    await consul.client.deregisterService("watched-1");
    await eventually(() => client.catalog.agent("watched") === undefined, { timeoutMs: 1_000, what: "watched to leave the catalog" });
  });

  it("an agent's tools/list_changed refreshes its tools in the catalog", async () => {
    expect(client.catalog.agent("probe-a")!.tools.map((t) => t.name)).not.toContain("fresh_tool");
    await client.callTool("probe-a", "grow", { name: "fresh_tool" });
    await eventually(() => client.catalog.agent("probe-a")!.tools.some((t) => t.name === "fresh_tool"), {
      timeoutMs: 2_000,
      what: "the new tool in the catalog",
    });
  });
});
