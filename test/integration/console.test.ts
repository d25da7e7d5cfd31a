// The gateway's web console (/ui) driven in a real headless Chromium (Debian's chromium through
// playwright-core): behind the gateway's token, the live topology shows both hr replicas and
// turns one red within seconds of its SIGKILL, and a tool called from the page's form returns
// its result, the instance that answered and the call's waterfall across hops. Screenshots go
// to test/artifacts/ (git-ignored).
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { bound, eventually } from "../helpers/eventually.ts";
import { chromiumPath } from "../helpers/chromium.ts";
import { mesh } from "../helpers/cli.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
const TOKEN = "console-test-client-token-0123456789";
/** The mesh's own token (the gateway calls agents with it; a scraper may read /metrics with it). */
const MESH_TOKEN = "console-test-mesh-token-0123456789";

let consul: TestConsul;
const hr: TestAgent[] = [];
let finance: TestAgent;
let gateway: TestAgent;
let browser: Browser;
let page: Page;
let origin: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  consul = await startTestConsul();
  hr.push(...(await Promise.all([spawnAgent("hr", consul.address), spawnAgent("hr", consul.address)])));
  finance = await spawnAgent("finance", consul.address);
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 2, {
    timeoutMs: 10_000,
    what: "both hr replicas passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { MESH_GATEWAY_TOKEN: TOKEN, MESH_TOKEN },
  });
  origin = new URL(gateway.url).origin;
  browser = await chromium.launch({
    executablePath: await chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await gateway?.process.stop(2_000);
  await Promise.all([...hr, finance].filter(Boolean).map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

describe("the console at /ui, in headless Chromium", () => {
  it("asks for the gateway's token, and its API refuses callers without it", async () => {
    expect((await fetch(`${origin}/ui/api/topology`)).status).toBe(401);
    // The mesh's token is not a client token: it reads /metrics (a scraper's), not the console's API.
    const mesh = { authorization: `Bearer ${MESH_TOKEN}` };
    expect((await fetch(`${origin}/ui/api/topology`, { headers: mesh })).status).toBe(401);
    expect((await fetch(`${origin}/metrics`, { headers: mesh })).status).toBe(200);
    expect((await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${origin}/metrics`)).status).toBe(401);
    expect((await fetch(`${origin}/ui`)).status).toBe(200); // the page holds no data
    await page.goto(`${origin}/ui`);
    await page.locator("#login").waitFor({ state: "visible" });
    await page.fill("#token", TOKEN);
    await page.click("#login button");
    await page.locator("#app").waitFor({ state: "visible" });
    // The token is not in the page.
    expect(await page.content()).not.toContain(TOKEN);
  }, 120_000);

  it("shows the topology live: both hr replicas up, and one turns red within seconds of its SIGKILL", async () => {
    for (const a of hr)
      await page.locator(`tr.instance[data-instance="${a.instanceId}"][data-state="up"]`).waitFor({ timeout: bound(10_000) });
    await page.locator(`tr.instance[data-instance="${finance.instanceId}"]`).waitFor();
    await page.screenshot({ path: `${ARTIFACTS}console-topology.png`, fullPage: true });
    const victim = hr[1]!;
    victim.process.signal("SIGKILL");
    // Within seconds: a bound on the wait (scaled for a busy machine), not a timed assertion.
    await page.locator(`tr.instance[data-instance="${victim.instanceId}"][data-state="down"]`).waitFor({ timeout: bound(15_000) });
    // The survivor stays up.
    expect(await page.locator(`tr.instance[data-instance="${hr[0]!.instanceId}"]`).getAttribute("data-state")).toBe("up");
    await page.screenshot({ path: `${ARTIFACTS}console-replica-down.png`, fullPage: true });
  }, 120_000);

  it("calls a tool from its form: the result, the instance that answered, and the waterfall across gateway → finance → hr", async () => {
    await page.click('button.tool-link[data-tool="finance.compute_net_pay"]');
    await expect.poll(() => page.locator("#tool h3").textContent()).toContain("finance.compute_net_pay");
    await page.fill("#arg-employee_id", "E1002");
    await page.click("button.call");
    const answered = page.locator(".result .answered");
    await answered.waitFor({ timeout: bound(15_000) });
    expect(await answered.textContent()).toMatch(new RegExp(`^answered by ${finance.instanceId} · trace [0-9a-f]{32} · \\d+ ms$`));
    expect(await page.locator(".result pre.text").textContent()).toMatch(/Bob Okafor/);
    // The waterfall: the gateway's hop, its attempt, finance serving, finance's attempt to hr, hr serving.
    const hops = page.locator(".result .waterfall .hop");
    const labels = await hops.locator(".label").allTextContents();
    expect(labels[0]).toMatch(/^gateway · finance\.compute_net_pay$/);
    expect(labels).toContain(`→ gateway · finance.compute_net_pay @ ${finance.instanceId} (attempt 1)`);
    expect(labels).toContain(`finance · finance.compute_net_pay @ ${finance.instanceId}`);
    expect(labels.some((l) => /^→ finance · hr\.get_employee @ hr-\S+ \(attempt \d\)$/.test(l))).toBe(true);
    // Only the surviving replica can have served it.
    expect(labels).toContain(`hr · hr.get_employee @ ${hr[0]!.instanceId}`);
    // Each hop sits under the one that made it (indentation grows hop by hop).
    const indents = await hops
      .locator(".label")
      .evaluateAll((els) => els.map((e) => parseFloat((e as unknown as { style: { paddingLeft: string } }).style.paddingLeft || "0")));
    expect(indents).toEqual([...indents].sort((a, b) => a - b));
    // The call is listed among the recent calls.
    await page.locator("#calls tr.call-row.ok").first().waitFor();
    await page.locator("#tool").screenshot({ path: `${ARTIFACTS}console-call.png` });
    await page.screenshot({ path: `${ARTIFACTS}console.png`, fullPage: true });
  }, 120_000);

  it("lists tasks with their status and progress (a payroll run started as a task with mesh call --task)", async () => {
    const started = await mesh([
      "call",
      "finance.run_payroll",
      '{"month":"2026-03","pace_ms":400}',
      "--task",
      "--json",
      "--consul",
      consul.address,
    ]);
    expect(started.code, started.stderr).toBe(0);
    const { task } = JSON.parse(started.stdout) as { task: { taskId: string } };
    const row = page.locator("#work table.tasks tbody tr", { hasText: task.taskId.slice(0, 8) });
    await row.waitFor({ timeout: bound(10_000) });
    expect(await row.textContent()).toMatch(/^mcpfinance.{8}run_payroll(working|completed)/);
    await page.locator("#work-section").screenshot({ path: `${ARTIFACTS}console-tasks.png` });
    await mesh(["tasks", "cancel", "finance", task.taskId, "--consul", consul.address]);
  }, 120_000);

  it("lists an A2A message through the gateway among the recent calls, with its hops", async () => {
    const res = await fetch(`${origin}/a2a/hr`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, "a2a-version": "1.0" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "SendMessage",
        params: { message: { role: "ROLE_USER", messageId: "console-a2a-1", parts: [{ text: "Who does Ines Silva report to?" }] } },
      }),
    });
    expect(res.status).toBe(200);
    const row = page.locator("#calls tr.call-row", { hasText: "hr.ask" }).filter({ hasText: "a2a" });
    await row.first().waitFor({ timeout: bound(10_000) });
    await row.first().click();
    const labels = await page.locator("#trace .waterfall .hop .label").allTextContents();
    expect(labels[0]).toBe("gateway · hr.ask");
    expect(labels.some((l) => /^hr · hr\.ask @ hr-/.test(l))).toBe(true);
  }, 120_000);
});
