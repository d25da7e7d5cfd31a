import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { readinessFromEnv, ReadyWatch, type ReadyRules } from "./readiness.ts";

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

  /** Spawns the agent and resolves once it logged "agent ready" (see ReadyWatch for how a start is judged). */
  start(): Promise<ReadyInfo> {
    let rules: ReadyRules;
    try {
      rules = this.readyRules();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const child = this.spawn();
    const lines = createInterface({ input: child.stdout! });
    return new Promise<ReadyInfo>((resolve, reject) => {
      const watch = new ReadyWatch(child, rules, resolve, reject);
      lines.on("line", (line) => {
        this.log?.write(`${line}\n`);
        watch.line(line);
      });
    });
  }

  /** The bounds this start is held to: the options', else MESH_READY_TIMEOUT_MS / MESH_READY_MAX_MS (a bad value throws). */
  private readyRules(): ReadyRules {
    const o = this.options;
    const fromEnv = o.readyTimeoutMs === undefined || o.readyMaxMs === undefined ? readinessFromEnv() : undefined;
    const stallMs = o.readyTimeoutMs ?? fromEnv!.timeoutMs;
    const maxMs = Math.max(stallMs, o.readyMaxMs ?? fromEnv!.maxMs);
    return { label: o.label, logFile: o.logFile, readyMessage: o.readyMessage ?? "agent ready", stallMs, maxMs };
  }

  /** Spawns the process (under its wrapper, if any), its stderr into the log file. */
  private spawn(): ChildProcess {
    const o = this.options;
    this.log = createWriteStream(o.logFile, { flags: "a" });
    const argv = [process.execPath, agentEntry(o.agent), "--port", String(o.port), "--consul", o.consul, ...(o.extraArgs ?? [])];
    const [command, ...args] = [...(o.wrapper ?? []), ...argv] as [string, ...string[]];
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...o.env } });
    this.child = child;
    this.exitedPromise = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    child.stderr!.pipe(this.log, { end: false });
    return child;
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
