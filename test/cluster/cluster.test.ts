// The mesh on a real Consul cluster across hosts (network namespaces), under steady load,
// through four faults: the Consul leader SIGKILLed, a host's client agent restarted, a host
// partitioned from the rest and healed, a whole host killed. Each fault's cost (calls
// failed, time to converge) is printed as a table; the ledger proves no effect ran twice.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Lab, type LabProcess } from "../../orchestrator/launcher/lab.ts";
import { resolveConsulBinary } from "../../src/consul/devAgent.ts";
import { bound } from "../helpers/eventually.ts";
import { DEPARTMENTS, Load, pause, rpc } from "./load.ts";
import { askTask, payrollOn, payrollRecord, taskRecord, tasksRunning, untilEnded, type TaskAnswer } from "./tasks.ts";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../orchestrator/cli/main.ts");

let lab: Lab;
let load: Load;
/** Each fault's cost; its calls are counted at the end (a call started in a phase may end in the next). */
const costs: { fault: string; phase?: string; reads?: string; writes?: string; converge: string; note: string }[] = [];

beforeAll(async () => {
  lab = await Lab.up({ consulBinary: await resolveConsulBinary(), dir: mkdtempSync(join(tmpdir(), "toolmesh-lab-")) });
  load = new Load(() => gateways().map((g) => g.url));
  load.start();
}, 240_000);

afterAll(async () => {
  await load?.stop();
  await lab?.down();
  if (costs.length) {
    const rows = [
      ["FAULT", "READ-ONLY FAILED", "WRITES FAILED (retryable)", "CONVERGED", "NOTE"],
      ...costs.map((c) => [c.fault, c.reads ?? failedReads(c.phase!), c.writes ?? failedWrites(c.phase!), c.converge, c.note]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    process.stdout.write(`\nfault costs (cluster test)\n${rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n")}\n`);
    const failed = load.ledger.filter((c) => c.outcome === "failed");
    if (failed.length) {
      process.stdout.write(
        `\nfailed calls\n${failed.map((c) => `  [${c.phase}] ${c.kind} ${c.tool} after ${c.attempts} attempt(s)${c.retryable ? " (retryable)" : ""}: ${(c.error ?? "").slice(0, 200)}`).join("\n")}\n`,
      );
    }
  }
}, 60_000);

/** The gateways still running, in host order. */
function gateways() {
  return lab.processes.filter((p) => p.kind === "gateway" && p.process.running);
}

/** The instances of an agent passing in the healthy view of one host's client agent. */
async function passing(host: string, agent: string): Promise<string[]> {
  const c = lab.consulClient(lab.client(host));
  try {
    return (await c.healthService(agent, { passing: true })).value.map((e) => e.id).sort();
  } finally {
    c.destroy();
  }
}

/** `mesh ...` run inside a host, reading through that host's Consul agent. */
async function meshOn(host: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const argv = [...lab.net.exec(host), process.execPath, CLI, ...args, "--consul", lab.localConsul(host)];
  try {
    const r = await run(argv[0]!, argv.slice(1), { timeout: bound(60_000) });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, out: x.stdout ?? "", err: x.stderr ?? "" };
  }
}

/** Lets the load run for a while in a phase (a count of write calls, not a time). */
async function steady(phase: string, writes: number): Promise<void> {
  load.phase = phase;
  const target = load.ledger.filter((c) => c.kind !== "read").length + writes;
  await lab.waitFor(
    `${writes} writes under load in ${phase}`,
    async () => load.ledger.filter((c) => c.kind !== "read").length >= target,
    bound(120_000),
  );
}

/** Starts a payroll as a durable task through a gateway and polls it to its end; the final task record. */
async function payroll(month: string): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    const g = gateways()[attempt % gateways().length]!.url;
    const created = await rpc(g, "finance", "tools/call", { name: "run_payroll", arguments: { month, pace_ms: 0 } }).catch((e: Error) => ({
      error: { code: -1, message: e.message },
    }));
    if ("result" in created && created.result?.["taskId"]) {
      const taskId = created.result["taskId"] as string;
      let last: Record<string, unknown> = {};
      await lab.waitFor(`task ${taskId} to end`, async () => {
        const r = await rpc(gateways()[0]!.url, "finance", "tasks/get", { taskId }).catch(() => undefined);
        last = r?.result ?? last;
        return ["completed", "failed", "cancelled"].includes(String(last["status"]));
      });
      return last;
    }
    if (attempt > 10) throw new Error(`could not start a payroll task: ${JSON.stringify(created)}`);
    await pause(500);
  }
}

/**
 * Waits until the replica that ran a task runs it no more, then checks its record: still the
 * ending the healthy side was told, through both gateways and in Consul, and no payroll recorded
 * by the run that was reported failed.
 */
async function settledTask(replica: LabProcess, taskId: string, month: string, told: TaskAnswer): Promise<string> {
  const idle = await lab.waitFor("the replica running no task", async () => (await tasksRunning(replica.url)) === 0, bound(150_000));
  // Never taken over, never run by a second instance: the record still names the one that ran it.
  expect(await taskRecord(lab, taskId)).toMatchObject({
    instance: replica.instanceId,
    status: told.status,
    error: { message: told.error },
  });
  for (const g of gateways()) expect(await askTask(g.url, taskId, Date.now())).toMatchObject({ status: told.status, error: told.error });
  // The replica that was cut off or paused resumes its handler, but the task's writes are fenced
  // by its record (src/agent/taskFence.ts): the payroll of a task reported failed is never recorded.
  expect(await payrollRecord(lab, month), "the failed task's payroll").toBeUndefined();
  return `its replica idle ${(idle / 1000).toFixed(1)} s later; record stays ${told.status}; payroll not recorded`;
}

/** The longest wait between two answers a caller got (seconds). */
function gap(answers: readonly TaskAnswer[]): string {
  let longest = 0;
  for (let i = 1; i < answers.length; i++) longest = Math.max(longest, answers[i]!.atMs - answers[i - 1]!.atMs);
  return (longest / 1000).toFixed(1);
}

function failedWrites(phase: string): string {
  const failed = load.ledger.filter((c) => c.phase === phase && c.kind !== "read" && c.outcome === "failed");
  const total = load.ledger.filter((c) => c.phase === phase && c.kind !== "read").length;
  return `${failed.length}/${total} (${failed.filter((c) => c.retryable).length})`;
}

function failedReads(phase: string): string {
  return `${load.count(phase, "read", "failed")}/${load.count(phase, "read")}`;
}

describe("the mesh on a three-server Consul cluster across hosts, under load", () => {
  test("callers on different hosts see every agent through their own host's Consul agent; mesh agents works from any host", async () => {
    for (const host of ["h1", "h2", "h3"]) {
      expect(await passing(host, "hr")).toEqual(["hr-h1-7100", "hr-h2-7100"]);
      expect(await passing(host, "finance")).toEqual(["finance-h1-7101", "finance-h2-7101"]);
      expect(await passing(host, "knowledge")).toEqual(["knowledge-h2-7102"]);
    }
    const r = await meshOn("h3", ["agents", "--json"]);
    expect(r.code, r.err).toBe(0);
    const names = (JSON.parse(r.out) as { agents: { name: string }[] }).agents.map((a) => a.name);
    expect(names).toEqual(expect.arrayContaining(["finance", "hr", "knowledge", "orchestrator"]));
    await steady("warm-up", 10);
    expect(load.count("warm-up", "read", "failed")).toBe(0);
  });

  test("SIGKILL of the Consul leader: no read-only call fails, writes go through the election, a task completes", async () => {
    const before = await lab.leader();
    expect(before).not.toBe("");
    load.phase = "leader killed";
    const task = payroll("2026-01");
    const t0 = Date.now();
    await lab.killConsul(lab.server(before));
    const elected = await lab.waitFor("a new Consul leader", async () => !["", before].includes(await lab.leader()));
    await steady("leader killed", 12);
    expect(await task).toMatchObject({ status: "completed" });
    costs.push({
      fault: `Consul leader (${before}) SIGKILLed`,
      phase: "leader killed",
      converge: `new leader in ${(elected / 1000).toFixed(1)} s`,
      note: `payroll task completed; ${((Date.now() - t0) / 1000).toFixed(0)} s of load`,
    });
    expect(load.count("leader killed", "read", "failed")).toBe(0);
    // Writes were retried across the election: a failure is at most one reported retryable.
    expect(load.ledger.filter((c) => c.phase === "leader killed" && c.kind !== "read" && c.outcome === "failed" && !c.retryable)).toEqual(
      [],
    );
    await lab.restartConsul(lab.server(before));
  });

  test("a host's Consul client agent restarted: its services come back without restarting toolmesh", async () => {
    const pids = lab.processesOn("h2").map((p) => p.pid);
    load.phase = "client agent restarted";
    const t0 = Date.now();
    await lab.killConsul(lab.client("h2"));
    await lab.restartConsul(lab.client("h2"));
    await lab.waitFor("h2's instances passing again", async () => {
      const [hr, finance] = await Promise.all([passing("h3", "hr"), passing("h3", "finance")]);
      return hr.includes("hr-h2-7100") && finance.includes("finance-h2-7101");
    });
    const back = Date.now() - t0;
    await steady("client agent restarted", 6);
    expect(lab.processesOn("h2").map((p) => p.pid)).toEqual(pids);
    expect(lab.processesOn("h2").every((p) => p.process.running)).toBe(true);
    costs.push({
      fault: "client agent of h2 SIGKILLed and restarted",
      phase: "client agent restarted",
      converge: `services passing again ${(back / 1000).toFixed(1)} s after the kill`,
      note: "same toolmesh processes",
    });
  });

  test("a host partitioned: its agents leave the healthy view, the CLI there says Consul is unreachable (exit 3), its running task is reported failed naming its instance, it rejoins after healing", async () => {
    // A durable task running on h1 when it is cut off (paced: still running through the partition).
    const h3 = lab.find("gateway@h3").url;
    const taskId = await payrollOn(lab, h3, "finance-h1-7101", "2026-03", 400);
    load.phase = "h1 partitioned";
    const cut = Date.now();
    await lab.partition("h1");
    // The healthy side asks about the task from the moment of the cut: always an answer (a
    // status, or an error that says to ask again), never "unknown task"; once its replica has
    // been silent for TASK_ORPHAN_AFTER_MS it is failed, naming the replica (the exactly-once
    // rules: reported, not taken over).
    const answers: TaskAnswer[] = [];
    const reported = untilEnded(h3, taskId, cut, answers);
    reported.catch(() => undefined); // awaited below; a failure meanwhile is not an unhandled rejection
    const gone = await lab.waitFor("h1's instances out of the healthy view", async () => {
      const [hr, finance] = await Promise.all([passing("h3", "hr"), passing("h3", "finance")]);
      return !hr.includes("hr-h1-7100") && !finance.includes("finance-h1-7101");
    });
    await steady("h1 partitioned", 8);
    // On the cut-off host, an outage is said as one: exit 3, naming Consul, never "Unknown agent".
    const cli = await meshOn("h1", ["call", "hr.get_employee", '{"employee_id":"E1001"}', "--timeout", "20000"]);
    expect(cli.code, cli.err).toBe(3);
    expect(cli.err).toMatch(/Consul/);
    expect(cli.err).not.toMatch(/Unknown agent/);
    const agents = await meshOn("h1", ["agents"]);
    expect(agents.code, agents.out + agents.err).toBe(3);
    expect(agents.err).toMatch(/Consul/);
    const ended = await reported;
    expect(ended.status, JSON.stringify(answers)).toBe("failed");
    expect(ended.error).toMatch(/^Instance finance-h1-7101 stopped while running run_payroll/);
    expect(answers.filter((a) => a.unknownTask || (a.status === undefined && !a.retryable))).toEqual([]);
    load.phase = "h1 healed";
    await lab.heal("h1");
    const rejoined = await lab.waitFor(
      "h1's instances passing again",
      async () => {
        const [hr, finance] = await Promise.all([passing("h3", "hr"), passing("h3", "finance")]);
        return hr.includes("hr-h1-7100") && finance.includes("finance-h1-7101");
      },
      bound(150_000),
    );
    await steady("h1 healed", 6);
    // After healing: h1's replica stops running the task, and its record stays what the healthy
    // side was told, on every way in (first ending wins: never completed after failed).
    const settled = await settledTask(lab.find("finance@h1"), taskId, "2026-03", ended);
    costs.push({
      fault: "task running on h1 when cut off",
      reads: "-",
      writes: "-",
      converge: `reported failed ${(ended.atMs / 1000).toFixed(1)} s after the cut`,
      note: `${answers.length} tasks/get answers, longest gap ${gap(answers)} s; ${settled}`,
    });
    costs.push({
      fault: "h1 partitioned from the rest",
      phase: "h1 partitioned",
      converge: `out of the healthy view in ${(gone / 1000).toFixed(1)} s`,
      note: `mesh on h1: exit 3, ${JSON.stringify(cli.err.trim().slice(0, 160))}`,
    });
    costs.push({
      fault: "h1 healed",
      phase: "h1 healed",
      converge: `passing again in ${(rejoined / 1000).toFixed(1)} s`,
      note: "same processes",
    });
  }, 400_000);

  test("a replica paused (SIGSTOP) while running a task: the task is reported failed naming it; resumed, it serves again and the record stays failed", async () => {
    const h3 = lab.find("gateway@h3").url;
    const victim = lab.find("finance@h2");
    const taskId = await payrollOn(lab, h3, "finance-h2-7101", "2026-04", 400);
    load.phase = "finance@h2 paused";
    const stopped = Date.now();
    victim.process.signal("SIGSTOP");
    const answers: TaskAnswer[] = [];
    let ended: TaskAnswer;
    let gone: number;
    try {
      gone = await lab.waitFor(
        "finance-h2 out of the healthy view",
        async () => !(await passing("h3", "finance")).includes("finance-h2-7101"),
      );
      ended = await untilEnded(h3, taskId, stopped, answers);
    } finally {
      victim.process.signal("SIGCONT");
    }
    load.phase = "finance@h2 resumed";
    expect(ended.status, JSON.stringify(answers)).toBe("failed");
    expect(ended.error).toMatch(/^Instance finance-h2-7101 stopped while running run_payroll/);
    expect(answers.filter((a) => a.unknownTask || (a.status === undefined && !a.retryable))).toEqual([]);
    const back = await lab.waitFor("finance-h2 passing again", async () => (await passing("h3", "finance")).includes("finance-h2-7101"));
    const settled = await settledTask(victim, taskId, "2026-04", ended);
    await steady("finance@h2 resumed", 4);
    costs.push({
      fault: "finance@h2 SIGSTOPped while running a task",
      phase: "finance@h2 paused",
      converge: `out of the healthy view in ${(gone / 1000).toFixed(1)} s; task reported failed ${(ended.atMs / 1000).toFixed(1)} s after the pause`,
      note: `${answers.length} tasks/get answers, longest gap ${gap(answers)} s; ${settled}`,
    });
    costs.push({
      fault: "finance@h2 resumed (SIGCONT)",
      phase: "finance@h2 resumed",
      converge: `passing again in ${(back / 1000).toFixed(1)} s`,
      note: "same process",
    });
  }, 400_000);

  test("a whole host killed (every process SIGKILLed): its agents leave the healthy view, the rest serves", async () => {
    load.phase = "h1 killed";
    const task = payroll("2026-02");
    const killed = await lab.killHost("h1");
    expect(killed.length).toBeGreaterThanOrEqual(4);
    const gone = await lab.waitFor("h1's instances out of the healthy view", async () => {
      const [hr, finance] = await Promise.all([passing("h3", "hr"), passing("h3", "finance")]);
      return !hr.includes("hr-h1-7100") && !finance.includes("finance-h1-7101") && hr.length === 1 && finance.length === 1;
    });
    await steady("h1 killed", 8);
    const t = await task;
    costs.push({
      fault: "h1 killed (SIGKILL of all its processes)",
      phase: "h1 killed",
      converge: `out of the healthy view in ${(gone / 1000).toFixed(1)} s`,
      note: `payroll task ${String(t["status"])}`,
    });
    expect(["completed", "failed"]).toContain(t["status"]);
  });

  test("the ledger: every write that succeeded took effect exactly once, none twice, and a failed one at most once", async () => {
    await load.stop();
    const c = lab.consulClient(lab.client("h3"));
    const seen = new Map<string, number>();
    try {
      for (const d of DEPARTMENTS) {
        const entry = await c.kvGet(`toolmesh/state/finance/budget/${d.toLowerCase()}`);
        const ledger = entry ? (JSON.parse(entry.value) as { count: number; recent: { description: string }[] }) : { count: 0, recent: [] };
        expect(ledger.recent.length, `${d}: more effects than the ledger list keeps`).toBe(ledger.count);
        for (const e of ledger.recent) seen.set(e.description, (seen.get(e.description) ?? 0) + 1);
      }
    } finally {
      c.destroy();
    }
    const writes = load.ledger.filter((x) => x.kind === "keyed" || x.kind === "unkeyed");
    const doubled = [...seen].filter(([, n]) => n > 1);
    expect(doubled).toEqual([]);
    const lost = writes.filter((w) => w.outcome === "ok" && seen.get(w.mark!) !== 1);
    expect(lost).toEqual([]);
    const unknown = [...seen.keys()].filter((m) => !writes.some((w) => w.mark === m));
    expect(unknown).toEqual([]);
    const appliedButFailed = writes.filter((w) => w.outcome === "failed" && seen.has(w.mark!));
    costs.push({
      fault: "ledger (all phases)",
      reads: `${load.ledger.filter((x) => x.kind === "read" && x.outcome === "failed").length}/${load.ledger.filter((x) => x.kind === "read").length}`,
      writes: `${writes.filter((w) => w.outcome === "failed").length}/${writes.length}`,
      converge: "-",
      note: `0 doubled; ${appliedButFailed.length} failed-but-applied (reported retryable or unknown)`,
    });
  });
});
