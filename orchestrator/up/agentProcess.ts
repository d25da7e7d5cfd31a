import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { MeshError } from "../../src/protocol/errors.ts";

/** How long an agent process may take to log "agent ready". @default 20000 */
export const AGENT_READY_TIMEOUT_MS = 20_000;

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
  /** The log message that means ready (it must carry `url`). @default "agent ready" */
  readyMessage?: string;
}

export interface ReadyInfo {
  url: string;
  instanceId: string;
  pid: number;
}

/** Entry script of an agent: servers/<name>/main.ts, the orchestrator, or a path. */
export function agentEntry(agent: string): string {
  if (agent.includes("/")) return agent;
  if (agent === "orchestrator") return fileURLToPath(new URL("../main.ts", import.meta.url));
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
    this.log = createWriteStream(o.logFile, { flags: "a" });
    const child = spawn(process.execPath, [agentEntry(o.agent), "--port", String(o.port), "--consul", o.consul, ...(o.extraArgs ?? [])], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...o.env },
    });
    this.child = child;
    this.exitedPromise = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    child.stderr!.pipe(this.log, { end: false });
    const lines = createInterface({ input: child.stdout! });
    return new Promise<ReadyInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new MeshError(
            "TIMEOUT",
            `${o.label} did not become ready within ${AGENT_READY_TIMEOUT_MS} ms; last lines of ${o.logFile}:\n${tail.join("\n")}`,
          ),
        );
        child.kill("SIGKILL");
      }, AGENT_READY_TIMEOUT_MS);
      const tail: string[] = [];
      const remember = (line: string) => tail.push(line) > 5 && tail.shift();
      child.stderr!.on("data", (d: Buffer) => d.toString().split("\n").filter(Boolean).forEach(remember));
      lines.on("line", (line) => {
        this.log?.write(`${line}\n`);
        remember(line);
        if (!line.includes(`"${o.readyMessage ?? "agent ready"}"`)) return;
        try {
          const rec = JSON.parse(line) as { url: string; instanceId: string };
          clearTimeout(timer);
          resolve({ url: rec.url, instanceId: rec.instanceId, pid: child.pid ?? -1 });
        } catch {
          // not a log record after all
        }
      });
      void this.exitedPromise.then((code) => {
        clearTimeout(timer);
        reject(new MeshError("AGENT_UNREACHABLE", `${o.label} exited with code ${code} before it was ready; see ${o.logFile}.`));
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
