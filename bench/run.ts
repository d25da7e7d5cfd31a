#!/usr/bin/env node
// `npm run bench`: the ladder of call paths from the HTTP floor (a node:http JSON echo) through
// the SDK pairs to toolmesh's caller and its gateway, the gateway's cost as a proxy (CPU per
// call beside the agent's and a plain node:http proxy's), replicas behind the caller and the
// gateway, the router → worker hop against AutoGen's distributed (gRPC) runtime, session
// placement, memory, discovery, and CPU profiles of the toolmesh paths, all measured in this
// one run on this machine. Prints Markdown tables and writes them to bench/results/latest.md
// (profiles: bench/results/profiles.md).
//
// BENCH_QUICK=1 (or --quick) shortens every measurement (a smoke run, one repetition).
// BENCH_ONLY=proxy,ladder (or --only proxy,ladder) runs only those sections and writes
// bench/results/partial.md instead, so a partial run never replaces the full report.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { discoverySection } from "./discovery.ts";
import { Bench, here, LATENCY_CALLS, THROUGHPUT_MS } from "./harness.ts";
import { ladderSection } from "./ladder.ts";
import { memorySection } from "./memorySection.ts";
import { profilesSection } from "./profiles.ts";
import { proxyCostSection } from "./proxyCost.ts";
import { replicasSection } from "./replicas.ts";
import { routerHopSection } from "./routerHop.ts";
import { sessionsSection } from "./sessions.ts";

/** The sections, in the order of the report. */
const SECTIONS = {
  ladder: ladderSection,
  proxy: proxyCostSection,
  replicas: replicasSection,
  router: routerHopSection,
  sessions: sessionsSection,
  memory: memorySection,
  discovery: discoverySection,
} as const;
type Section = keyof typeof SECTIONS | "profiles";

/** The sections this run measures: all, or those BENCH_ONLY / --only names. */
function selected(): Set<Section> {
  const all: Section[] = [...(Object.keys(SECTIONS) as Section[]), "profiles"];
  const flag = process.argv.indexOf("--only");
  const only = (flag >= 0 ? process.argv[flag + 1] : process.env["BENCH_ONLY"])?.trim();
  if (!only) return new Set(all);
  const names = only.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !all.includes(n as Section));
  if (unknown.length) throw new Error(`bench: unknown section(s) ${unknown.join(", ")} in --only/BENCH_ONLY; known: ${all.join(", ")}.`);
  return new Set(names as Section[]);
}

async function main(b: Bench, sections: Set<Section>): Promise<void> {
  const started = Date.now();
  b.say(`# toolmesh benchmarks`);
  b.say();
  b.say(
    `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.` +
      ` One client session per path; ${LATENCY_CALLS} calls at concurrency 1, ${THROUGHPUT_MS / 1_000} s per throughput point.`,
  );
  for (const [name, run] of Object.entries(SECTIONS)) if (sections.has(name as Section)) await run(b);
  const profiles = sections.has("profiles") ? await profilesSection(b) : undefined;
  b.say();
  b.say(`Total bench time ${Math.round((Date.now() - started) / 1_000)} s.`);
  const dir = here("./results");
  mkdirSync(dir, { recursive: true });
  const full = sections.size === Object.keys(SECTIONS).length + 1;
  writeFileSync(join(dir, full ? "latest.md" : "partial.md"), `${b.out.join("\n")}\n`);
  if (profiles) writeFileSync(join(dir, "profiles.md"), `${profiles.join("\n")}\n`);
}

if (process.argv.includes("--quick")) process.env["BENCH_QUICK"] = "1";
const sections = selected();
const bench = await Bench.start();
try {
  await main(bench, sections);
} finally {
  await bench.stop();
}
process.exit(0);
