// `mesh tasks wait`: following one task until it ends, riding out what passes.
import { ProtocolError, ProtocolErrorCode, SdkError } from "@modelcontextprotocol/client";
import { describeError, isMeshError, MeshError } from "../../../src/protocol/errors.ts";
import { MESH_FAILURE_ERROR_CODE } from "../../../src/protocol/codes.ts";
import { UsageError } from "../../common/errors.ts";
import { print, withMesh, type MeshFlags, type MeshSession } from "../mesh.ts";
import { describeTask, hasEnded, settle, taskRequest, type Task } from "./taskRequests.ts";

/** First pause of `mesh tasks wait` after a transient error; doubles up to WAIT_RETRY_MAX_MS. @default 250 */
export const WAIT_RETRY_FIRST_MS = 250;
/** Longest pause between retries of `mesh tasks wait`. @default 5000 */
export const WAIT_RETRY_MAX_MS = 5_000;
/**
 * How long `mesh tasks wait` keeps asking for a task it has seen that is suddenly unknown
 * (its Consul lost its data: the replica running it writes its record back at its next
 * heartbeat) or for an agent Consul suddenly does not know (it registers again within
 * seconds). @default 20000
 */
export const WAIT_VANISHED_GRACE_MS = 20_000;

/**
 * Whether an error of one tasks/get may pass: a retryable mesh error (Consul unreachable or
 * without a leader, no healthy instance yet, an instance not answering), the agent's own
 * retryable mesh failure (-32017), a transport error; and, for a task already seen, "unknown"
 * task or agent for a while (a Consul that restarted without its data). Before the task has
 * answered once, an unreachable Consul fails the command at once (a wrong --consul, most likely).
 */
function transient(e: unknown, seen: boolean): boolean {
  // A Consul that never answered this wait is more likely the wrong address: said at once, as every command does.
  if (isMeshError(e)) return e.retryable && (seen || e.code !== "CONSUL_UNREACHABLE");
  if (e instanceof ProtocolError) {
    if (e.code === MESH_FAILURE_ERROR_CODE) return (e.data as { retryable?: unknown } | undefined)?.retryable === true;
    return seen && e.code === ProtocolErrorCode.InvalidParams && /Unknown task/.test(e.message);
  }
  if (e instanceof UsageError) return seen && /^Unknown agent/.test(e.message);
  return e instanceof SdkError;
}

/**
 * Follows one task until it ends: asks tasks/get at the pace the agent asks for, shows each
 * change (a progress bar on a terminal, a line per change otherwise), and rides out a
 * transient error (Consul restarting, a leader election, an instance going away) with
 * backoff until the deadline, saying so on stderr; the task keeps running either way.
 */
export class TaskWaiter {
  private readonly flags: MeshFlags;
  private readonly agent: string;
  private readonly taskId: string;
  private readonly deadline: number;
  private readonly tty: boolean;
  /** Whether the task has answered once in this wait. */
  private seen = false;
  /** The status line shown last. */
  private last = "";
  /** The error being ridden out (as said on stderr), and since when. */
  private failing: string | undefined;
  private failingSince = 0;
  private pause = WAIT_RETRY_FIRST_MS;

  constructor(flags: MeshFlags, agent: string, taskId: string, deadline: number) {
    this.flags = flags;
    this.agent = agent;
    this.taskId = taskId;
    this.deadline = deadline;
    this.tty = process.stderr.isTTY && !flags.json;
  }

  /** Waits until the task ends (its exit status set), or throws what cannot be ridden out. */
  async run(): Promise<void> {
    for (;;) {
      try {
        await withMesh(this.flags, (session) => this.follow(session), { catalog: "on-demand" });
        return;
      } catch (e) {
        await this.retry(e);
      }
    }
  }

  /** Asks for the task over one connection to the mesh until it ends (or Consul is lost: connect again). */
  private async follow(session: MeshSession): Promise<void> {
    for (;;) {
      const t = await this.poll(session);
      if (t === undefined) continue;
      this.answered();
      this.show(t);
      if (hasEnded(t)) {
        if (this.tty) process.stderr.write("\n");
        print(this.flags, t, () => describeTask(this.agent, t));
        settle(t);
        return;
      }
      if (Date.now() >= this.deadline)
        throw new MeshError(
          "TIMEOUT",
          `Task ${this.taskId} is still ${t.status} after --timeout; it keeps running: "mesh tasks wait ${this.agent} ${this.taskId}" again to follow it.`,
        );
      await new Promise((r) => setTimeout(r, Math.min(Math.max(t.pollIntervalMs ?? 1_000, 200), 10_000)));
    }
  }

  /** One tasks/get; undefined once a transient error has been waited out (ask again). */
  private async poll(session: MeshSession): Promise<Task | undefined> {
    try {
      return await taskRequest(session, this.agent, "tasks/get", this.taskId, Math.min(this.deadline, Date.now() + 10_000));
    } catch (e) {
      if (e instanceof MeshError && e.code === "CONSUL_UNREACHABLE") throw e; // connect again from the start
      await this.retry(e);
      return undefined;
    }
  }

  /** The task answered: any error being ridden out is over (said so), the backoff starts again. */
  private answered(): void {
    this.seen = true;
    if (this.failing !== undefined) process.stderr.write(`mesh: task ${this.taskId} answered again\n`);
    [this.failing, this.pause] = [undefined, WAIT_RETRY_FIRST_MS];
  }

  /** Shows the task's status when it changed (stderr; nothing with --json). */
  private show(t: Task): void {
    const line = `${t.status}${t.statusMessage ? ` — ${t.statusMessage}` : ""}`;
    if (line === this.last || this.flags.json) return;
    if (this.tty) process.stderr.write(`\r\x1b[2K${bar(t.statusMessage)} ${line}`.slice(0, (process.stderr.columns ?? 100) + 8));
    else process.stderr.write(`${line}\n`);
    this.last = line;
  }

  /**
   * Waits out a transient error with backoff, saying it on stderr once; throws one that is
   * not transient, one past the deadline, and a task or agent that vanished for longer than
   * WAIT_VANISHED_GRACE_MS.
   */
  private async retry(e: unknown): Promise<void> {
    const now = Date.now();
    const vanished = !isMeshError(e) && !(e instanceof SdkError) && !(e instanceof ProtocolError && e.code === MESH_FAILURE_ERROR_CODE);
    if (this.failing === undefined) this.failingSince = now;
    if (!transient(e, this.seen) || now >= this.deadline || (vanished && now - this.failingSince > WAIT_VANISHED_GRACE_MS)) {
      if (vanished && this.seen)
        throw new MeshError(
          "CONSUL_REJECTED",
          `${describeError(e)} It answered earlier in this wait: its Consul may have lost its data (a restarted -dev agent keeps nothing), and nothing wrote it back within ${WAIT_VANISHED_GRACE_MS / 1_000} s. Where the task ended is unknown here; see "mesh tasks list" and the agent's log.`,
        );
      throw e;
    }
    const why = describeError(e);
    if (why !== this.failing) process.stderr.write(`${this.tty ? "\n" : ""}mesh: ${why}; retrying until --timeout\n`);
    this.failing = why;
    await new Promise((r) => setTimeout(r, Math.min(this.pause, Math.max(0, this.deadline - now))));
    this.pause = Math.min(this.pause * 2, WAIT_RETRY_MAX_MS);
  }
}

/** A progress bar from a status message that says "N of M". */
function bar(message: string | undefined): string {
  const m = /(\d+) of (\d+)/.exec(message ?? "");
  if (!m) return "";
  const done = Number(m[1]);
  const total = Math.max(1, Number(m[2]));
  const width = 24;
  const filled = Math.round((Math.min(done, total) / total) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.round((done / total) * 100)}%`;
}
