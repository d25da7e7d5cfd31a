import { expect, it } from "vitest";
import { childContext, fromMeta, idempotencyKeyProblem, rootContext, toMeta } from "../../src/context/meshContext.ts";

it("trace ids are W3C-shaped and unique across many contexts (across refills of the random pool)", () => {
  const ids = Array.from({ length: 2_000 }, () => rootContext({ caller: "t" }).traceId);
  expect(ids.every((id) => /^[0-9a-f]{32}$/.test(id) && id !== "0".repeat(32))).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
});

it("a context survives _meta and a child continues its trace with hop + 1", () => {
  const root = rootContext({ caller: "cli", sessionId: "s-1", timeoutMs: 5_000, idempotencyKey: "key-0001" });
  const back = fromMeta(toMeta(root))!;
  expect(back).toMatchObject({ traceId: root.traceId, sessionId: "s-1", hop: root.hop, idempotencyKey: "key-0001" });
  const child = childContext(back, "orchestrator", "hr");
  expect(child).toMatchObject({ traceId: root.traceId, hop: root.hop + 1, sessionId: "s-1" });
  expect(child.idempotencyKey).toBeUndefined(); // a key names one call, not its onward calls
  expect(toMeta(child)["traceparent"]).toMatch(new RegExp(`^00-${root.traceId}-[0-9a-f]{16}-0[01]$`));
});

it("an idempotency key is 8 to 200 of A-Z a-z 0-9 . _ : + / = -; anything else is named for what it is, never silently dropped", () => {
  for (const ok of [undefined, "key-0001", "550e8400-e29b-41d4-a716-446655440000", "a".repeat(200), "b64+/xyz=="])
    expect(idempotencyKeyProblem(ok)).toBeUndefined();
  expect(idempotencyKeyProblem("short")).toMatch(/got a string of 5 characters/);
  expect(idempotencyKeyProblem("k".repeat(201))).toMatch(/got a string of 201 characters/);
  expect(idempotencyKeyProblem("with spaces in it")).toMatch(/got a string with other characters/);
  expect(idempotencyKeyProblem(42)).toMatch(/got a number/);
  expect(idempotencyKeyProblem(null)).toMatch(/got null/);
  expect(idempotencyKeyProblem(["key-0001"])).toMatch(/got an array/);
  // Decoding never lets an invalid key through as if it were a valid one.
  expect(fromMeta({ "io.toolmesh/idempotency-key": "short", "io.toolmesh/hop": 0 })?.idempotencyKey).toBeUndefined();
});
