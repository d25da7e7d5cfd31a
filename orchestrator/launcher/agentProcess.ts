import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
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

export interface AgentProcessOptions {
  /** An agent in servers/ by name, or the path of any entry script built with agentMain. */
  agent: string;
  /** Human label, e.g. hr-1. */
  label: string;
  port: number;
  consul: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
  extraArgs?: string[];
  /** A command the process runs under, e.g. `["ip", "netns", "exec", "tml3fa2-h1"]` (it must exec the program: the pid stays the agent's). */
  wrapper?: string[];
  /** The log message that means ready (it must carry `url`). @default "agent ready" */
  readyMessage?: string;
  /** How long the process may show no progress (output, CPU time) before it counts as hung, before load scaling. @default MESH_READY_TIMEOUT_MS or AGENT_READY_TIMEOUT_MS */
  readyTimeoutMs?: number;
  /** How long a process that keeps making progress may take to be ready. @default MESH_READY_MAX_MS or AGENT_READY_MAX_MS */
  readyMaxMs?: number;
}

export interface ReadyInfo {
  url: string;
  instanceId: string;
  pid: number;
}

/** Entry script of an agent: servers/<name>/main.ts, the orchestrator, or a path. */
export function agentEntry(agent: string): string {
  if (agent.includes("/")) return agent;
  if (agent === "orchestrator") return fileURLToPath(new URL("../agent/main.ts", import.meta.url));
  return fileURLToPath(new URL(`../../servers/${agent}/main.ts`, import.meta.url));
}

/** One agent running as a child process, its output in a log file. */
export class AgentProcess {
  readonly options: AgentProcessOptions;
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exitedPromise: Promise<number | null> = Promise.resolve(null);

  constructor(options: AgentProcessOptions) {
    this.options = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the process was started and has not exited. */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the exit code (null when killed by a signal). */
  get exited(): Promise<number | null> {
    return this.exitedPromise;
  }

  /** Spawns the agent and resolves once it logged "agent ready". */
  start(): Promise<ReadyInfo> {
    const o = this.options;
    let stallMs: number;
    let maxMs: number;
    try {
      const fromEnv = o.readyTimeoutMs === undefined || o.readyMaxMs === undefined ? readinessFromEnv() : undefined;
      stallMs = o.readyTimeoutMs ?? fromEnv!.timeoutMs;
      maxMs = Math.max(stallMs, o.readyMaxMs ?? fromEnv!.maxMs);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    this.log = createWriteStream(o.logFile, { flags: "a" });
    const argv = [process.execPath, agentEntry(o.agent), "--port", String(o.port), "--consul", o.consul, ...(o.extraArgs ?? [])];
    const [command, ...args] = [...(o.wrapper ?? []), ...argv] as [string, ...string[]];
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...o.env },
    });
    this.child = child;
    this.exitedPromise = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    child.stderr!.pipe(this.log, { end: false });
    const lines = createInterface({ input: child.stdout! });
    return new Promise<ReadyInfo>((resolve, reject) => {
      const tail: string[] = [];
      const remember = (line: string) => tail.push(line) > TAIL_LINES && tail.shift();
      const lastLines = () => (tail.length ? `; its last lines (${o.logFile}):\n${tail.join("\n")}` : `; it wrote nothing (${o.logFile})`);
      const startedAt = Date.now();
      let lastProgressAt = startedAt;
      let outputSeen = 0;
      let outputChecked = 0;
      let cpuTicks: number | undefined;
      let settled = false;
      const settle = () => {
        settled = true;
        clearInterval(watchdog);
        child.stderr!.off("data", onStderr);
      };
      const fail = (e: MeshError) => {
        if (settled) return;
        settle();
        reject(e);
      };
      // Progress-aware, load-aware readiness: wait while the process shows signs of life
      // (new output, CPU time used), give up when it has shown none for the stall allowance
      // (scaled by the machine's load), or after the outer bound whatever it does.
      const watchdog = setInterval(
        () => {
          const now = Date.now();
          const ticks = child.pid === undefined ? undefined : childCpuTicks(child.pid);
          if (outputSeen !== outputChecked || (ticks !== undefined && cpuTicks !== undefined && ticks > cpuTicks)) lastProgressAt = now;
          outputChecked = outputSeen;
          cpuTicks = ticks;
          // Without /proc, CPU time is unknown: allow three times as long without output.
          const allowance = stallMs * readinessLoadFactor() * (ticks === undefined ? 3 : 1);
          if (now - lastProgressAt > allowance) {
            fail(
              new MeshError(
                "TIMEOUT",
                `${o.label} (pid ${child.pid}) did not become ready: it has shown no progress (no output${ticks === undefined ? "" : ", no CPU time"}) for ${Math.round((now - lastProgressAt) / 1_000)} s after ${Math.round((now - startedAt) / 1_000)} s of starting, so it looks hung; it was stopped. Raise MESH_READY_TIMEOUT_MS (now ${stallMs} ms) if it needs longer${lastLines()}`,
              ),
            );
            child.kill("SIGKILL");
          } else if (now - startedAt > maxMs) {
            fail(
              new MeshError(
                "TIMEOUT",
                `${o.label} (pid ${child.pid}) was still starting after ${Math.round(maxMs / 1_000)} s (it kept working but never logged "${o.readyMessage ?? "agent ready"}"); it was stopped. Raise MESH_READY_MAX_MS if it needs longer${lastLines()}`,
              ),
            );
            child.kill("SIGKILL");
          }
        },
        Math.max(50, Math.min(1_000, stallMs / 4)),
      );
      const onStderr = (d: Buffer) => {
        outputSeen++;
        d.toString().split("\n").filter(Boolean).forEach(remember);
      };
      child.stderr!.on("data", onStderr);
      lines.on("line", (line) => {
        this.log?.write(`${line}\n`);
        if (settled) return;
        outputSeen++;
        remember(line);
        if (!line.includes(`"${o.readyMessage ?? "agent ready"}"`)) return;
        try {
          const rec = JSON.parse(line) as { url: string; instanceId: string };
          settle();
          resolve({ url: rec.url, instanceId: rec.instanceId, pid: child.pid ?? -1 });
        } catch {
          // not a log record after all
        }
      });
      child.on("exit", (code, signal) => {
        // Quote its last output: stdio closes after exit (wait for that, 1 s at most).
        const report = () => {
          clearTimeout(grace);
          fail(
            new MeshError(
              "AGENT_UNREACHABLE",
              `${o.label} exited ${signal ? `on ${signal}` : `with code ${code}`} before it was ready${lastLines()}`,
              { details: { exitCode: code, signal } },
            ),
          );
        };
        const grace = setTimeout(report, 1_000);
        child.once("close", report);
      });
    });
  }

  /** SIGTERM (drain, deregister), SIGKILL after `timeoutMs`; resolves with the exit code. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const code = await this.exitedPromise;
    clearTimeout(timer);
    this.log?.end();
    return code;
  }

  kill(): void {
    this.signal("SIGKILL");
  }

  /** Sends any signal (tests: SIGKILL, SIGSTOP/SIGCONT) without waiting. */
  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }
}
