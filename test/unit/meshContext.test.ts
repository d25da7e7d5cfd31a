import { expect, it } from "vitest";
import { childContext, fromMeta, rootContext, toMeta } from "../../src/context/meshContext.ts";

it("trace ids are W3C-shaped and unique across many contexts (across refills of the random pool)", () => {
  const ids = Array.from({ length: 2_000 }, () => rootContext({ caller: "t" }).traceId);
  expect(ids.every((id) => /^[0-9a-f]{32}$/.test(id) && id !== "0".repeat(32))).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
});

it("a context survives _meta and a child continues its trace with hop + 1", () => {
  const root = rootContext({ caller: "cli", sessionId: "s-1", timeoutMs: 5_000, idempotencyKey: "k" });
  const back = fromMeta(toMeta(root))!;
  expect(back).toMatchObject({ traceId: root.traceId, sessionId: "s-1", hop: root.hop, idempotencyKey: "k" });
  const child = childContext(back, "orchestrator", "hr");
  expect(child).toMatchObject({ traceId: root.traceId, hop: root.hop + 1, sessionId: "s-1" });
  expect(child.idempotencyKey).toBeUndefined(); // a key names one call, not its onward calls
  expect(toMeta(child)["traceparent"]).toMatch(new RegExp(`^00-${root.traceId}-[0-9a-f]{16}-0[01]$`));
});
