import { createHash } from "node:crypto";

/** Chooses which healthy instance serves the next call (a small strategy interface). */
export interface InstancePicker {
  readonly name: string;
  pick<I extends { id: string }>(agent: string, instances: readonly I[], inFlight: (id: string) => number): I;
}

/** Takes turns, per agent. */
export class RoundRobinPicker implements InstancePicker {
  readonly name = "round-robin";
  private readonly next = new Map<string, number>();

  pick<I extends { id: string }>(agent: string, instances: readonly I[]): I {
    if (instances.length === 0) throw new Error(`no instances of ${agent} to pick from`);
    const i = (this.next.get(agent) ?? 0) % instances.length;
    this.next.set(agent, i + 1);
    return instances[i]!;
  }
}

/** The instance with the fewest calls in flight from this caller; ties take turns. */
export class LeastInFlightPicker implements InstancePicker {
  readonly name = "least-in-flight";
  private readonly tie = new RoundRobinPicker();

  pick<I extends { id: string }>(agent: string, instances: readonly I[], inFlight: (id: string) => number): I {
    if (instances.length === 0) throw new Error(`no instances of ${agent} to pick from`);
    const least = Math.min(...instances.map((i) => inFlight(i.id)));
    return this.tie.pick(
      agent,
      instances.filter((i) => inFlight(i.id) === least),
    );
  }
}

/**
 * Rendezvous (highest-random-weight) order of instances for a key, e.g. a session id: the
 * same key ranks the same instances first for as long as they are there, and when one
 * leaves only the keys it ranked first move (to their next choice), so sessions stay on
 * their replica without any shared table.
 */
export function rendezvousOrder<I extends { id: string }>(key: string, instances: readonly I[]): I[] {
  const weight = (id: string) => createHash("sha1").update(key).update("\0").update(id).digest().readUInt32BE(0);
  return instances
    .map((i) => ({ i, w: weight(i.id) }))
    .sort((a, b) => b.w - a.w || (a.i.id < b.i.id ? -1 : 1))
    .map((x) => x.i);
}
