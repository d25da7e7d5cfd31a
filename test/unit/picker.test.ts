import { expect, it } from "vitest";
import { LeastInFlightPicker, RoundRobinPicker } from "../../src/client/picker.ts";

const instances = [{ id: "a" }, { id: "b" }, { id: "c" }];

it("round-robin takes turns per agent", () => {
  const p = new RoundRobinPicker();
  expect([1, 2, 3, 4].map(() => p.pick("hr", instances).id)).toEqual(["a", "b", "c", "a"]);
  expect(p.pick("finance", instances).id).toBe("a"); // its own turn order
  expect(() => p.pick("hr", [])).toThrow(/no instances of hr/);
});

it("least-in-flight picks the idlest instance, taking turns among ties", () => {
  const p = new LeastInFlightPicker();
  const load: Record<string, number> = { a: 3, b: 0, c: 0 };
  const inFlight = (id: string) => load[id]!;
  expect([1, 2, 3].map(() => p.pick("hr", instances, inFlight).id)).toEqual(["b", "c", "b"]);
  load["b"] = 5;
  expect(p.pick("hr", instances, inFlight).id).toBe("c");
});
