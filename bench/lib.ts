// Measurement helpers for bench/run.ts: latency percentiles and throughput, printed as
// Markdown tables.

export interface Sample {
  /** Calls completed in the measured window. */
  n: number;
  p50: number;
  p99: number;
  /** Completed calls per second. */
  rps: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Runs `call` from `concurrency` loops: a warm-up (not measured), then either `count`
 * calls (concurrency 1: latency) or for `durationMs` (throughput).
 */
export async function measure(
  call: () => Promise<unknown>,
  o: { concurrency: number; warmup: number; count?: number; durationMs?: number },
): Promise<Sample> {
  for (let i = 0; i < o.warmup; i++) await call();
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  const started = performance.now();
  const done = () => (o.count !== undefined ? issued >= o.count : performance.now() - started >= o.durationMs!);
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (!done()) {
        issued++;
        const t = performance.now();
        try {
          await call();
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1_000;
  latencies.sort((a, b) => a - b);
  return { n: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps: latencies.length / elapsed, errors };
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.map(line)].join("\n");
}

export const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "-");
export const ratio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "-");
