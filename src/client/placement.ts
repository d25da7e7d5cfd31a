import type { CatalogInstance } from "../discovery/catalog.ts";
import type { InstanceHealth } from "./instanceHealth.ts";
import { rendezvousOrder, type InstancePicker } from "./picker.ts";

export interface Placement {
  /** Instances to try, in order. */
  order: CatalogInstance[];
  /** Every instance was out of rotation: they are tried anyway, past their breakers. */
  bypassBreakers: boolean;
}

/**
 * Where a call goes, in order. Instances this caller saw fail stay out of rotation for a
 * cool-down; if that leaves none, every instance is tried anyway (Consul still calls them
 * healthy). A stateful agent's calls in one session go to the same replica while it is
 * healthy (rendezvous hashing on the session id), and to the next one in that order when
 * not (its session state lives in Consul KV, so the next replica continues it); any other
 * call goes where the picker says first, then to the rest.
 */
export function placeCall(
  agent: string,
  instances: readonly CatalogInstance[],
  sessionId: string | undefined,
  health: InstanceHealth,
  picker: InstancePicker,
  inFlight: (id: string) => number,
): Placement {
  const admitted = instances.filter((i) => health.admits(i.id));
  const candidates = admitted.length > 0 ? admitted : [...instances];
  const sticky = sessionId !== undefined && instances.every((i) => i.meta["stateful"] === "true");
  if (sticky) return { order: rendezvousOrder(sessionId, candidates), bypassBreakers: admitted.length === 0 };
  const first = picker.pick(agent, candidates, inFlight);
  return { order: [first, ...candidates.filter((i) => i !== first)], bypassBreakers: admitted.length === 0 };
}
