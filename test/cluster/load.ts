import { randomUUID } from "node:crypto";

/** One call of the load as the ledger keeps it. */
export interface LedgerCall {
  phase: string;
  kind: "read" | "keyed" | "unkeyed" | "task";
  tool: string;
  /** For writes: the description the effect carries, to find it in the agent's state. */
  mark?: string;
  department?: string;
  outcome: "ok" | "failed";
  /** For failures: whether the error said retrying may succeed (or it was a transport error). */
  retryable?: boolean;
  error?: string;
  attempts: number;
}

type Rpc = { result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };

const TASKS = "io.modelcontextprotocol/tasks";
export const DEPARTMENTS = ["Engineering", "Finance", "People", "Sales", "Marketing", "Support", "Legal", "Executive"];

/** One stateless 2026-07-28 request to a gateway's passthrough endpoint for one agent. */
export async function rpc(
  base: string,
  agent: string,
  method: string,
  params: Record<string, unknown>,
  meta: Record<string, unknown> = {},
  timeoutMs = 15_000,
): Promise<Rpc> {
  const name = method === "tools/call" ? (params["name"] as string) : (params["taskId"] as string | undefined);
  const res = await fetch(new URL(`/agents/${agent}/mcp`, base), {
    method: "POST",
    signal: AbortSignal.timeout(timeoutMs),
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": method,
      ...(name ? { "mcp-name": name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          ...meta,
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": { extensions: { [TASKS]: {} } },
          "io.modelcontextprotocol/clientInfo": { name: "cluster-test", version: "1" },
        },
      },
    }),
  });
  const text = await res.text();
  if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    const found = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as Rpc & Record<string, unknown>)
      .find((m) => "result" in m || "error" in m);
    if (!found) throw new Error(`HTTP ${res.status}: no JSON-RPC answer in the stream`);
    return found;
  }
  try {
    return JSON.parse(text) as Rpc;
  } catch {
    throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
}

/**
 * Steady load through two gateways (alternating): read-only calls, keyed writes (retried
 * with the same key on a retryable failure or a lost answer, as a careful client does: a key
 * makes that safe) and unkeyed writes (never retried: a repeat would book twice). Every
 * call lands in the ledger with the phase it started in.
 */
export class Load {
  readonly ledger: LedgerCall[] = [];
  phase = "warm-up";
  private readonly gateways: () => string[];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private seq = 0;
  private readonly run = randomUUID().slice(0, 6);

  constructor(gateways: () => string[]) {
    this.gateways = gateways;
  }

  start(): void {
    this.loops = [this.readLoop(0), this.readLoop(1), this.writeLoop("keyed"), this.writeLoop("unkeyed")];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Calls in a phase, by kind and outcome. */
  count(phase: string, kind: LedgerCall["kind"], outcome?: LedgerCall["outcome"]): number {
    return this.ledger.filter((c) => c.phase === phase && c.kind === kind && (outcome === undefined || c.outcome === outcome)).length;
  }

  private gateway(n: number): string {
    const g = this.gateways();
    return g[n % g.length]!;
  }

  private async readLoop(offset: number): Promise<void> {
    for (let n = offset; !this.stopped; n += 2) {
      const hr = n % 4 < 2;
      const [agent, tool, args] = hr
        ? ["hr", "get_employee", { employee_id: `E${1001 + (n % 40)}` }]
        : ["finance", "get_budget", { department: DEPARTMENTS[n % DEPARTMENTS.length]! }];
      const phase = this.phase;
      // A read-only call is safe to send again: through the other gateway if the first fails.
      let last: { retryable: boolean; error: string } | undefined;
      const errors: string[] = [];
      let attempts = 0;
      for (; attempts < 3 && !this.stopped; attempts++) {
        last = await this.tryCall(this.gateway(n + attempts), agent, tool, args as Record<string, unknown>, {});
        if (!last) break;
        errors.push(`${this.gateway(n + attempts)}: ${last.error}`);
      }
      if (last) last = { ...last, error: errors.join("; ") };
      this.ledger.push({ phase, kind: "read", tool: `${agent}.${tool}`, outcome: last ? "failed" : "ok", ...(last ?? {}), attempts });
      await pause(100);
    }
  }

  private async writeLoop(kind: "keyed" | "unkeyed"): Promise<void> {
    while (!this.stopped) {
      const n = ++this.seq;
      const phase = this.phase;
      const mark = `ledger-${this.run}-${kind}-${n}`;
      const department = DEPARTMENTS[n % DEPARTMENTS.length]!;
      const args = { employee_id: "E1001", department, category: "meals", amount: 1, description: mark };
      const meta = kind === "keyed" ? { "io.toolmesh/idempotency-key": `key-${mark}` } : {};
      let last: { retryable: boolean; error: string } | undefined;
      let attempts = 0;
      const giveUp = Date.now() + 60_000;
      do {
        last = await this.tryCall(this.gateway(n + attempts), "finance", "submit_expense", args, meta);
        attempts++;
        if (!last || kind === "unkeyed" || !last.retryable) break;
        await pause(200);
      } while (Date.now() < giveUp);
      this.ledger.push({
        phase,
        kind,
        tool: "finance.submit_expense",
        mark,
        department,
        outcome: last ? "failed" : "ok",
        ...(last ?? {}),
        attempts,
      });
      await pause(250);
    }
  }

  /** One call; undefined when it succeeded, else what failed and whether it may be retried. */
  private async tryCall(
    gateway: string,
    agent: string,
    tool: string,
    args: Record<string, unknown>,
    meta: Record<string, unknown>,
  ): Promise<{ retryable: boolean; error: string } | undefined> {
    try {
      const r = await rpc(gateway, agent, "tools/call", { name: tool, arguments: args }, meta, 12_000);
      if (r.error) {
        return { retryable: r.error.data?.["retryable"] === true, error: `${r.error.code} ${r.error.message}` };
      }
      if (r.result?.["isError"] === true) return { retryable: false, error: `isError ${JSON.stringify(r.result["content"])}` };
      return undefined;
    } catch (e) {
      // No answer (connection refused, reset, timed out): unknown whether it ran.
      return { retryable: true, error: `transport ${(e as Error).message}` };
    }
  }
}

export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
