import { describe, expect, it } from "vitest";
import { argumentProblem, nestsDeeperThan } from "../../src/protocol/limits.ts";

/** `n` objects inside each other, as JSON.parse would build them from hostile input. */
function nested(n: number): unknown {
  return JSON.parse(`${'{"a":'.repeat(n)}1${"}".repeat(n)}`);
}

describe("nestsDeeperThan", () => {
  it("counts objects and arrays, not scalars: exactly the limit passes, one more does not", () => {
    expect(nestsDeeperThan(1, 0)).toBe(false);
    expect(nestsDeeperThan({}, 0)).toBe(true);
    expect(nestsDeeperThan({ a: [{ b: "x" }] }, 3)).toBe(false);
    expect(nestsDeeperThan({ a: [{ b: "x" }] }, 2)).toBe(true);
    expect(nestsDeeperThan(nested(40), 40)).toBe(false);
    expect(nestsDeeperThan(nested(41), 40)).toBe(true);
  });

  it("measures nesting far past what a recursive walk survives, without exhausting the stack", () => {
    const deep = nested(200_000);
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(nestsDeeperThan(deep, 40)).toBe(true);
    expect(argumentProblem(deep)).toBe("arguments nest deeper than 32 levels");
  });
});
