// Idempotency keys end to end: a key stays claimed until the side effect has really
// finished, whatever the caller's deadline did; a key is bound to one request; the gateway
// and the CLI carry keys; a timeout on a non-idempotent tool is reported as delivery unknown.
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { META_PREFIX } from "../../src/protocol/keys.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { untilInstances } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const KEY_META = `${META_PREFIX}idempotency-key`;

let consul: TestConsul;
let c: string[];
let ledger: string;
const running: TestAgent[] = [];
let client: MeshClient;
let gateway: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  c = ["--consul", consul.address];
  ledger = join(mkdtempSync(join(tmpdir(), "toolmesh-ledger-")), "ledger.jsonl");
  writeFileSync(ledger, "");
  const env = { PROBE_NAME: "keyed", PROBE_LEDGER: ledger };
  running.push(
    await spawnAgent(PROBE, consul.address, { env }),
    await spawnAgent(PROBE, consul.address, { env }),
    await spawnAgent("hr", consul.address),
    await spawnAgent("finance", consul.address),
  );
  client = new MeshClient({ consul: consul.client, callerName: "test" });
  await untilInstances(client, "keyed", 2);
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
}, 60_000);
afterAll(async () => {
  await client?.close();
  await Promise.all([...running, gateway].filter(Boolean).map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

/** How many times the side effect with this id really ran, on any replica. */
function runs(id: string): number {
  return readFileSync(ledger, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string })
    .filter((l) => l.id === id).length;
}

describe("a key stays claimed until the effect has finished", () => {
  it("a keyed call that outlives its deadline is not run again by a repeat: the repeat gets its result", async () => {
    for (let i = 0; i < 3; i++) {
      const id = `late-${i}`;
      // The effect takes 1.2 s and ignores cancellation; the caller gives up after 400 ms.
      // (A keyed call may fail over to the other replica, which then says the first still runs.)
      await expect(client.callTool("keyed", "effect", { ms: 1_200, id }, { idempotencyKey: `key-${id}`, timeoutMs: 400 })).rejects.toThrow(
        /did not answer within its deadline|still running on keyed-/,
      );
      const repeat = await client.callTool("keyed", "effect", { ms: 1_200, id }, { idempotencyKey: `key-${id}`, timeoutMs: 5_000 });
      expect(repeat.structuredContent).toMatchObject({ done: true, id });
      expect(runs(id)).toBe(1);
    }
  });

  it("a key reused with other arguments is refused with a clear error, and nothing runs", async () => {
    await client.callTool("keyed", "effect", { ms: 0, id: "small" }, { idempotencyKey: "key-reused" });
    const reused = client.callTool("keyed", "effect", { ms: 0, id: "large" }, { idempotencyKey: "key-reused" });
    await expect(reused).rejects.toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
    await expect(reused).rejects.toThrow(/first used for keyed\.effect with other arguments/);
    expect(runs("large")).toBe(0);
    // Key order does not make other arguments: the same request repeats fine.
    const same = await client.callTool("keyed", "effect", { id: "small", ms: 0 }, { idempotencyKey: "key-reused" });
    expect(same.structuredContent).toMatchObject({ id: "small" });
    expect(runs("small")).toBe(1);
  });
});

describe("the gateway carries the client's key", () => {
  let viaMesh: Client;
  let viaAgent: Client;
  beforeAll(async () => {
    viaMesh = await connectHttp(gateway.url);
    viaAgent = await connectHttp(gateway.url.replace(/\/mcp$/, "/agents/keyed/mcp"));
  });
  afterAll(async () => {
    await viaMesh?.close();
    await viaAgent?.close();
  });

  it("the same key sent twice through /mcp and /agents/keyed/mcp runs the effect once", async () => {
    const call = (client: Client, name: string) =>
      client.callTool({
        name,
        arguments: { ms: 0, id: "via-gateway" },
        _meta: { [KEY_META]: "gateway-key-0001" },
      }) as Promise<CallToolResult>;
    const results = [
      await call(viaMesh, "keyed__effect"),
      await call(viaMesh, "keyed__effect"),
      await call(viaAgent, "effect"),
      await call(viaAgent, "effect"),
    ];
    expect(results.every((r) => !r.isError)).toBe(true);
    expect(new Set(results.map((r) => JSON.stringify(r.structuredContent))).size).toBe(1);
    expect(runs("via-gateway")).toBe(1);
  });
});

describe("the CLI", () => {
  const expense = JSON.stringify({
    employee_id: "E1004",
    department: "Sales",
    category: "meals",
    amount: 12.5,
    description: "Team coffee",
  });
  const expenses = async () =>
    (
      JSON.parse((await mesh(["call", "finance.list_expenses", "--arg", "department=Sales", "--json", ...c])).stdout) as {
        structuredContent: { expenses: { description: string }[] };
      }
    ).structuredContent.expenses.filter((e) => e.description === "Team coffee").length;

  it("mesh call --idempotency-key books once however often the command runs", async () => {
    const before = await expenses();
    for (let i = 0; i < 3; i++) {
      const r = await mesh(["call", "finance.submit_expense", expense, "--idempotency-key", "coffee-2026-11-29", ...c]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await expenses()).toBe(before + 1);
    const help = await mesh(["call", "--help"]);
    expect(help.stdout).toMatch(/--idempotency-key <key>\s+run a tool that changes something/);
  });

  it("a key reused for another request is a usage error (exit 2)", async () => {
    const other = JSON.stringify({
      employee_id: "E1004",
      department: "Engineering",
      category: "meals",
      amount: 400,
      description: "Team coffee",
    });
    const r = await mesh(["call", "finance.submit_expense", other, "--idempotency-key", "coffee-2026-11-29", ...c]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/first used for finance\.submit_expense with other arguments/);
  });

  it("a timeout on a non-idempotent tool says delivery unknown, never 'cancelled', and names the instance", async () => {
    // The deadline covers discovery too: long enough for it on a busy machine, far shorter than the call.
    const slow = JSON.stringify({ ms: 20_000, id: "cli-timeout" });
    const r = await mesh(["call", "keyed.effect", slow, "--timeout", "3000", ...c]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /Delivery unknown: keyed\.effect on keyed-\S+ did not answer within its deadline \(3000 ms\)\. It may or may not have run/,
    );
    expect(r.stderr).not.toMatch(/the call was cancelled/);
  });
});
