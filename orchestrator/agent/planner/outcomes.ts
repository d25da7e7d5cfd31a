import type { CallToolResult } from "@modelcontextprotocol/client";
import type { Ref } from "./planTypes.ts";

// What the steps of a run answered, and how a reference to an earlier step reads its result.

/** A step's result: what the tool returned (and its structured content), or why there is none. */
export type Outcome = { ok: true; result: CallToolResult; structured: unknown } | { ok: false; error: string };

/** A step's outcome by its id (awaited: it may still be running). */
export type OutcomeOf = (step: string) => Promise<Outcome>;

/** The value a reference points to in an earlier step's result (the member it picks, of a list). */
export async function resolveRef(ref: Ref, outcome: OutcomeOf): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  const o = await outcome(ref.step);
  if (!o.ok) return { ok: false, error: o.error };
  let v: unknown = o.structured;
  for (const k of ref.path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  if (ref.pick) {
    if (!Array.isArray(v) || v.length === 0) return { ok: false, error: "the list is empty" };
    const { field, order } = ref.pick;
    const sorted = [...v].sort((x, y) =>
      String((x as Record<string, unknown>)[field]).localeCompare(String((y as Record<string, unknown>)[field])),
    );
    v = order === "max" ? sorted.at(-1) : sorted[0];
  }
  if (v === undefined || v === null) return { ok: false, error: "there is none" };
  return { ok: true, value: v };
}
