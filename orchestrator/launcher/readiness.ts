import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { MeshError } from "../../src/protocol/errors.ts";

/**
 * How long a starting agent may go without any sign of progress (no new output and no CPU
 * time used) before it counts as hung; scaled up by the machine's load (readinessLoadFactor).
 * A process that keeps working is waited for up to AGENT_READY_MAX_MS; one that exits fails
 * at once. Set it with MESH_READY_TIMEOUT_MS. @default 20000
 */
export const AGENT_READY_TIMEOUT_MS = 20_000;
/** The outer bound: how long an agent that keeps making progress may take to be ready. Set it with MESH_READY_MAX_MS. @default 300000 */
export const AGENT_READY_MAX_MS = 300_000;
/** How many output lines of a process that failed to start an error message quotes. @default 10 */
const TAIL_LINES = 10;

/** Reads a positive whole number of milliseconds from the environment; a wrong value is an error naming the variable. */
function envMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new MeshError(
      "CONFIG_INVALID",
      `${name} must be a positive whole number of milliseconds; got "${raw}". Unset it to use ${fallback}.`,
    );
  }
  return ms;
}

/** The readiness bounds in effect: MESH_READY_TIMEOUT_MS and MESH_READY_MAX_MS, or the defaults. */
export function readinessFromEnv(env: NodeJS.ProcessEnv = process.env): { timeoutMs: number; maxMs: number } {
  const timeoutMs = envMs(env, "MESH_READY_TIMEOUT_MS", AGENT_READY_TIMEOUT_MS);
  return { timeoutMs, maxMs: Math.max(timeoutMs, envMs(env, "MESH_READY_MAX_MS", AGENT_READY_MAX_MS)) };
}

/**
 * How much slower than idle this machine is likely to be: the 1-minute load average per
 * core, never below 1 (at most 8). Readiness allowances are multiplied by it, so a laptop
 * busy with other work does not make `mesh up` (or the tests) give up on a healthy agent.
 */
export function readinessLoadFactor(): number {
  const perCore = (loadavg()[0] ?? 0) / Math.max(1, availableParallelism());
  return Math.min(8, Math.max(1, perCore));
}

/**
 * CPU time (user + system, in clock ticks) a child has used so far, from /proc/<pid>/stat on
 * Linux; undefined where that is not available (then only its output counts as progress).
 */
export function childCpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/** What a start is judged by: who it is (for messages), what line means ready, and its two allowances. */
export interface ReadyRules {
  label: string;
  logFile: string;
  /** The log message that means ready (its record must carry `url` and `instanceId`). */
  readyMessage: string;
  /** How long it may show no progress before it counts as hung (before load scaling). */
  stallMs: number;
  /** How long it may take however busy it is. */
  maxMs: number;
}

/**
 * Judges one starting process: ready when it logs the ready message, failed when it exits
 * first, or when it looks hung (no output and no CPU time for the stall allowance, scaled by
 * the machine's load) or is still starting after the outer bound (then it is SIGKILLed).
 * Progress-aware and load-aware, so a busy machine does not fail a healthy start.
 */
export class ReadyWatch {
  private readonly child: ChildProcess;
  private readonly rules: ReadyRules;
  private readonly resolve: (info: { url: string; instanceId: string; pid: number }) => void;
  private readonly reject: (e: MeshError) => void;
  private readonly tail: string[] = [];
  private readonly startedAt = Date.now();
  private lastProgressAt = this.startedAt;
  private outputSeen = 0;
  private outputChecked = 0;
  private cpuTicks: number | undefined;
  private settled = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onStderr = (d: Buffer) => {
    this.outputSeen++;
    d.toString()
      .split("\n")
      .filter(Boolean)
      .forEach((l) => this.remember(l));
  };

  constructor(
    child: ChildProcess,
    rules: ReadyRules,
    resolve: (info: { url: string; instanceId: string; pid: number }) => void,
    reject: (e: MeshError) => void,
  ) {
    this.child = child;
    this.rules = rules;
    this.resolve = resolve;
    this.reject = reject;
    this.timer = setInterval(() => this.check(), Math.max(50, Math.min(1_000, rules.stallMs / 4)));
    child.stderr!.on("data", this.onStderr);
    child.on("exit", (code, signal) => this.exited(code, signal));
  }

  /** A line of the process's stdout: progress, and the ready record when it is one. */
  line(line: string): void {
    if (this.settled) return;
    this.outputSeen++;
    this.remember(line);
    if (!line.includes(`"${this.rules.readyMessage}"`)) return;
    try {
      const rec = JSON.parse(line) as { url: string; instanceId: string };
      this.settle();
      this.resolve({ url: rec.url, instanceId: rec.instanceId, pid: this.child.pid ?? -1 });
    } catch {
      // not a log record after all
    }
  }

  private remember(line: string): void {
    if (this.tail.push(line) > TAIL_LINES) this.tail.shift();
  }

  private lastLines(): string {
    return this.tail.length
      ? `; its last lines (${this.rules.logFile}):\n${this.tail.join("\n")}`
      : `; it wrote nothing (${this.rules.logFile})`;
  }

  private settle(): void {
    this.settled = true;
    clearInterval(this.timer);
    this.child.stderr!.off("data", this.onStderr);
  }

  private fail(e: MeshError): void {
    if (this.settled) return;
    this.settle();
    this.reject(e);
  }

  /** The watchdog's tick: notes progress (new output, CPU time), and gives up on a hung or endless start. */
  private check(): void {
    const { label, stallMs, maxMs, readyMessage } = this.rules;
    const now = Date.now();
    const pid = this.child.pid;
    const ticks = pid === undefined ? undefined : childCpuTicks(pid);
    const busy = ticks !== undefined && this.cpuTicks !== undefined && ticks > this.cpuTicks;
    if (this.outputSeen !== this.outputChecked || busy) this.lastProgressAt = now;
    this.outputChecked = this.outputSeen;
    this.cpuTicks = ticks;
    // Without /proc, CPU time is unknown: allow three times as long without output.
    const allowance = stallMs * readinessLoadFactor() * (ticks === undefined ? 3 : 1);
    const idle = Math.round((now - this.lastProgressAt) / 1_000);
    const age = Math.round((now - this.startedAt) / 1_000);
    if (now - this.lastProgressAt > allowance) {
      this.giveUp(
        `${label} (pid ${pid}) did not become ready: it has shown no progress (no output${ticks === undefined ? "" : ", no CPU time"}) for ${idle} s after ${age} s of starting, so it looks hung; it was stopped. Raise MESH_READY_TIMEOUT_MS (now ${stallMs} ms) if it needs longer`,
      );
    } else if (now - this.startedAt > maxMs) {
      this.giveUp(
        `${label} (pid ${pid}) was still starting after ${Math.round(maxMs / 1_000)} s (it kept working but never logged "${readyMessage}"); it was stopped. Raise MESH_READY_MAX_MS if it needs longer`,
      );
    }
  }

  private giveUp(message: string): void {
    this.fail(new MeshError("TIMEOUT", `${message}${this.lastLines()}`));
    this.child.kill("SIGKILL");
  }

  /** It exited before it was ready: say so, quoting its last output (stdio closes after exit: wait for that, 1 s at most). */
  private exited(code: number | null, signal: NodeJS.Signals | null): void {
    const report = () => {
      clearTimeout(grace);
      const how = signal ? `on ${signal}` : `with code ${code}`;
      this.fail(
        new MeshError("AGENT_UNREACHABLE", `${this.rules.label} exited ${how} before it was ready${this.lastLines()}`, {
          details: { exitCode: code, signal },
        }),
      );
    };
    const grace = setTimeout(report, 1_000);
    this.child.once("close", report);
  }
}
