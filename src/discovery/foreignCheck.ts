import type { Tool } from "@modelcontextprotocol/client";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";

/** How long a foreign instance that failed its check stays out before it is checked again. @default 30000 */
export const REVERIFY_AFTER_MS = 30_000;

/** What checking needs to know of an instance: whose it is, which one, and where it serves MCP. */
export interface CheckTarget {
  id: string;
  service: string;
  url: string;
}

/** What checking a foreign instance found. */
type Verdict = { ok: true; tools: Tool[] } | { ok: false; reason: string; retryAt: number };

export interface ForeignChecksOptions<I extends CheckTarget> {
  /** Fetches the instance's tool list, within the tools deadline (the check is that it answers). */
  fetchTools: (instance: I) => Promise<Tool[]>;
  /** A failed agent's re-check is due: apply its instances again (which checks them). */
  onRecheckDue: (agent: string) => void;
  /** Ends re-checks for good (the catalog stopped). */
  stopped: AbortSignal;
  logger: Logger;
}

/**
 * The check of the servers that are not toolmesh agents (added with `mesh register`): each
 * instance must answer an MCP tools/list within the tools timeout, once per instance (and
 * address); one that failed is kept out with its reason and checked again after
 * REVERIFY_AFTER_MS while it stays registered.
 */
export class ForeignChecks<I extends CheckTarget> {
  private readonly o: ForeignChecksOptions<I>;
  /** Foreign instances checked, by agent/id@url. */
  private readonly verdicts = new Map<string, Verdict>();
  /** Foreign instances being checked now. */
  private readonly checking = new Set<string>();
  private readonly recheck = new Map<string, NodeJS.Timeout>();

  constructor(options: ForeignChecksOptions<I>) {
    this.o = options;
  }

  /** Whether the instance passed its check. */
  passed(i: I): boolean {
    return this.verdicts.get(verdictKey(i))?.ok === true;
  }

  /** Why the instance failed its check; undefined if it passed or was not checked yet. */
  failure(i: I): string | undefined {
    const v = this.verdicts.get(verdictKey(i));
    return v && !v.ok ? v.reason : undefined;
  }

  /** The tool list the instance answered its check with. */
  tools(i: I): Tool[] | undefined {
    const v = this.verdicts.get(verdictKey(i));
    return v?.ok ? v.tools : undefined;
  }

  /**
   * Checks the agent's foreign instances not checked yet (or due a re-check), forgetting
   * those no longer registered. Resolves whether any was checked.
   */
  async verify(agent: string, foreign: readonly I[]): Promise<boolean> {
    const now = Date.now();
    const due = foreign.filter((i) => {
      const v = this.verdicts.get(verdictKey(i));
      return !this.checking.has(verdictKey(i)) && (!v || (!v.ok && v.retryAt <= now));
    });
    for (const i of due) this.checking.add(verdictKey(i));
    const present = new Set(foreign.map(verdictKey));
    for (const key of [...this.verdicts.keys()]) if (key.startsWith(`${agent}/`) && !present.has(key)) this.verdicts.delete(key);
    await Promise.all(due.map((i) => this.check(agent, i)));
    if (foreign.some((i) => this.verdicts.get(verdictKey(i))?.ok === false)) this.scheduleRecheck(agent);
    return due.length > 0;
  }

  /** Stops the agent's re-check (it left the mesh). */
  forget(agent: string): void {
    clearTimeout(this.recheck.get(agent));
    this.recheck.delete(agent);
  }

  /** Stops every re-check. */
  stop(): void {
    for (const t of this.recheck.values()) clearTimeout(t);
  }

  /** One instance's check: its tools, or the reason it failed (logged). */
  private async check(agent: string, i: I): Promise<void> {
    try {
      this.verdicts.set(verdictKey(i), { ok: true, tools: await this.o.fetchTools(i) });
    } catch (e) {
      const reason = describeError(e);
      this.verdicts.set(verdictKey(i), { ok: false, reason, retryAt: Date.now() + REVERIFY_AFTER_MS });
      this.o.logger.warn(
        { agent, instance: i.id, url: i.url, err: reason, recheckInMs: REVERIFY_AFTER_MS },
        "registered server does not answer MCP; kept out of rotation",
      );
    } finally {
      this.checking.delete(verdictKey(i));
    }
  }

  private scheduleRecheck(agent: string): void {
    if (this.recheck.has(agent) || this.o.stopped.aborted) return;
    const timer = setTimeout(() => {
      this.recheck.delete(agent);
      this.o.onRecheckDue(agent);
    }, REVERIFY_AFTER_MS);
    timer.unref();
    this.recheck.set(agent, timer);
  }
}

function verdictKey(i: CheckTarget): string {
  return `${i.service}/${i.id}@${i.url}`;
}
