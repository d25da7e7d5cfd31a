import { expect, it } from "vitest";
import { LeastInFlightPicker, RoundRobinPicker, rendezvousOrder } from "../../src/client/picker.ts";

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

it("rendezvous order: a key keeps its first instance while it is there; removing one moves only its keys", () => {
  const instances = ["a", "b", "c", "d"].map((id) => ({ id }));
  const keys = Array.from({ length: 400 }, (_, i) => `session-${i}`);
  const firstOf = (list: { id: string }[]) => new Map(keys.map((k) => [k, rendezvousOrder(k, list)[0]!.id]));
  const before = firstOf(instances);
  // Stable, and spread over every instance.
  expect(firstOf(instances)).toEqual(before);
  const counts = [...before.values()].reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>());
  for (const id of ["a", "b", "c", "d"]) expect(counts.get(id)).toBeGreaterThan(60);
  // Remove "c": only the keys that were on c move, each to its second choice.
  const after = firstOf(instances.filter((i) => i.id !== "c"));
  for (const k of keys) {
    if (before.get(k) !== "c") expect(after.get(k)).toBe(before.get(k));
    else expect(after.get(k)).toBe(rendezvousOrder(k, instances)[1]!.id);
  }
  // Every instance appears once in the order.
  expect(
    rendezvousOrder("x", instances)
      .map((i) => i.id)
      .sort(),
  ).toEqual(["a", "b", "c", "d"]);
});
