// Exactly once when a replica pauses: keyed finance.submit_expense calls through the gateway
// while the finance replica holding some of the claims is SIGSTOPped past its claim lease
// (a long GC pause, a frozen VM) and resumed. The other replica takes over only claims whose
// lease lapsed with no effect committed; a resumed holder finds its claim gone and books
// nothing (its booking and the claim are one Consul transaction). Also: keys are validated and
// scoped to the caller, and a keyed call whose Consul is down is a retryable mesh failure.
import { setTimeout as sleep } from "node:timers/promises";
import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient } from "../../src/client/meshClient.ts";
import { META_PREFIX } from "../../src/protocol/keys.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";

const IDEMPOTENCY_KEY_META = `${META_PREFIX}idempotency-key`;
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
/** Shortened for the test: a claim lapses 1.5 s after its holder stops renewing it. */
const LEASE_MS = 1_500;
const DEPARTMENTS = ["Engineering", "Marketing", "Sales", "People", "Finance", "Support", "Executive", "Legal"];
const TOKEN_A = "client-a-token-0123456789";
const TOKEN_B = "client-b-token-0123456789";

let consul: TestConsul;
let finance: TestAgent[] = [];
let gateway: TestAgent;
let mesh: MeshClient;
const clients: Client[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
  const env = { MESH_CLAIM_LEASE_MS: String(LEASE_MS) };
  finance = [await spawnAgent("finance", consul.address, { env }), await spawnAgent("finance", consul.address, { env })];
  mesh = new MeshClient({ consul: consul.client, callerName: "test" });
  await untilInstances(mesh, "finance", 2);
  gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { MESH_GATEWAY_TOKEN: `${TOKEN_A},${TOKEN_B}` },
  });
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await mesh?.close();
  for (const f of finance) f.process.signal("SIGCONT");
  await Promise.all([...finance, gateway].filter(Boolean).map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

async function client(token: string): Promise<Client> {
  const c = await connectHttp(gateway.url, { token });
  clients.push(c);
  return c;
}

type Outcome = { ok: true; expenseId: string } | { ok: false; error: string };

async function submit(
  c: Client,
  key: unknown,
  department: string,
  deadlineMs: number,
  args: Record<string, unknown> = {},
): Promise<Outcome> {
  try {
    const r = (await c.callTool({
      name: "finance__submit_expense",
      arguments: { employee_id: "E1004", department, category: "meals", amount: 1, description: "exactly-once test", ...args },
      _meta: { [IDEMPOTENCY_KEY_META]: key, [`${META_PREFIX}deadline`]: new Date(Date.now() + deadlineMs).toISOString() },
    })) as CallToolResult;
    if (r.isError) return { ok: false, error: JSON.stringify(r.content) };
    return { ok: true, expenseId: (r.structuredContent as { expense: { expenseId: string } }).expense.expenseId };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** Expenses booked so far in every department, as finance's shared ledger counts them. */
async function bookings(): Promise<number> {
  let n = 0;
  for (const d of DEPARTMENTS) {
    const entry = await consul.client.kvGet(`toolmesh/state/finance/budget/${d.toLowerCase()}`);
    if (entry) n += (JSON.parse(entry.value) as { count: number }).count;
  }
  return n;
}

/** Keys still claimed by a running call (none once every call, including a resumed holder's, has ended). */
async function runningClaims(): Promise<number> {
  let n = 0;
  for (const k of await consul.client.kvKeys("toolmesh/idempotency/finance/")) {
    const entry = await consul.client.kvGet(k);
    if (entry && (JSON.parse(entry.value) as { state?: string }).state === "running") n++;
  }
  return n;
}

const logged = (agent: TestAgent, msg: RegExp) => agent.logs().filter((l) => typeof l["msg"] === "string" && msg.test(l["msg"])).length;

describe("a paused replica never books twice under one key", () => {
  it("keyed expenses through the gateway while the claim holder is SIGSTOPped past its lease: one booking per key, every replay answers the first id", async () => {
    const c = await client(TOKEN_A);
    const before = await bookings();
    const first = new Map<string, Outcome>();
    let next = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const i = next++;
        const key = `pause-key-${i.toString().padStart(5, "0")}`;
        first.set(key, await submit(c, key, DEPARTMENTS[i % DEPARTMENTS.length]!, 8_000));
      }
    };
    const workers = Array.from({ length: 12 }, worker);
    const [paused, other] = finance as [TestAgent, TestAgent];
    const untilCalls = (n: number) => eventually(async () => first.size >= n, { timeoutMs: 60_000, what: `${n} calls answered` });
    try {
      // Three pauses, each longer than the lease plus the gateway's attempt on the paused replica.
      for (let round = 1; round <= 3; round++) {
        await untilCalls(first.size + 40);
        paused.process.signal("SIGSTOP");
        await sleep(LEASE_MS * 3); // the scenario itself: a pause well past the lease
        paused.process.signal("SIGCONT");
      }
      await untilCalls(first.size + 40);
    } finally {
      paused.process.signal("SIGCONT");
      stop = true;
      await Promise.all(workers);
    }
    // Let every call end, the resumed holder's included (it finds its claim gone or records its result).
    await eventually(async () => (await runningClaims()) === 0, { timeoutMs: 30_000, what: "no claim left running" });

    // The dangerous path ran: the other replica took over claims the paused one held.
    expect(logged(other, /claim lapsed/)).toBeGreaterThan(0);

    const replays = new Map<string, Outcome>();
    for (const key of first.keys()) {
      const i = Number(key.slice("pause-key-".length));
      replays.set(key, await submit(c, key, DEPARTMENTS[i % DEPARTMENTS.length]!, 20_000));
    }
    expect([...replays.values()].filter((r) => !r.ok)).toEqual([]);
    expect((await bookings()) - before).toBe(first.size);
    for (const [key, answer] of first) {
      if (answer.ok) expect({ key, id: (replays.get(key) as { expenseId: string }).expenseId }).toEqual({ key, id: answer.expenseId });
    }
    const ids = new Set([...replays.values()].map((r) => (r as { expenseId: string }).expenseId));
    expect(ids.size).toBe(first.size);
  }, 180_000);
});

describe("idempotency keys are validated and scoped", () => {
  it.each([
    ["a key of 257 characters", "k".repeat(257), /string of 257 characters/],
    ["an empty key", "", /string of 0 characters/],
    ["a number", 42, /got a number/],
    ["an object", { id: "x" }, /got an object/],
    ["a key with spaces", "my key with spaces", /other characters/],
  ])("%s is refused with one clear error, and nothing is booked (through the gateway and directly)", async (_what, key, why) => {
    const before = await bookings();
    const viaGateway = await submit(await client(TOKEN_A), key, "Engineering", 10_000);
    expect(viaGateway).toMatchObject({ ok: false, error: expect.stringMatching(why) as unknown });
    expect((viaGateway as { error: string }).error).toMatch(/idempotency key .* must be a string of 8 to 200 characters/);
    const direct = await connectHttp(finance[0]!.url);
    clients.push(direct);
    const viaAgent = await direct
      .callTool({
        name: "submit_expense",
        arguments: { employee_id: "E1004", department: "Engineering", category: "meals", amount: 1, description: "bad key" },
        _meta: { [IDEMPOTENCY_KEY_META]: key },
      })
      .then(
        () => "answered",
        (e: unknown) => (e as Error).message,
      );
    expect(viaAgent).toMatch(why);
    expect(await bookings()).toBe(before);
  });

  it("another caller's key is another key: B sending A's key and arguments books its own expense; A's replay still answers A's", async () => {
    const [a, b] = [await client(TOKEN_A), await client(TOKEN_B)];
    const before = await bookings();
    const mine = await submit(a, "shared-key-0001", "Marketing", 10_000);
    const theirs = await submit(b, "shared-key-0001", "Marketing", 10_000);
    const again = await submit(a, "shared-key-0001", "Marketing", 10_000);
    expect(mine.ok && theirs.ok && again.ok).toBe(true);
    expect((theirs as { expenseId: string }).expenseId).not.toBe((mine as { expenseId: string }).expenseId);
    expect((again as { expenseId: string }).expenseId).toBe((mine as { expenseId: string }).expenseId);
    expect((await bookings()) - before).toBe(2);
  });
});

describe("a keyed call while Consul is down", () => {
  it("is a retryable mesh failure naming what failed, not an internal error, and shows no Consul address", async () => {
    const direct = await connectHttp(finance[1]!.url);
    clients.push(direct);
    await consul.agent.kill("SIGKILL");
    await consul.agent.exited;
    try {
      const err = await direct
        .callTool({
          name: "submit_expense",
          arguments: { employee_id: "E1004", department: "Sales", category: "meals", amount: 1, description: "outage" },
          _meta: { [IDEMPOTENCY_KEY_META]: "outage-key-0001" },
        })
        .then(
          () => undefined,
          (e: unknown) => e as { code?: number; message: string; data?: { code?: string; retryable?: boolean } },
        );
      expect(err).toBeDefined();
      expect(err!.code).toBe(-32_017);
      expect(err!.data).toMatchObject({ code: "CONSUL_UNREACHABLE", retryable: true });
      expect(err!.message).toMatch(/nothing ran/);
      expect(err!.message).not.toContain(consul.bind);
    } finally {
      await consul.restart();
    }
  });
});
