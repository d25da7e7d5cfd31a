import type { ServerCapabilities } from "@modelcontextprotocol/server";
import type { MeshClient } from "../client/meshClient.ts";
import { TASKS_EXTENSION } from "../protocol/keys.ts";
import type { View } from "./views.ts";

/** Capability meta already read (asked on every 2026-07-28 request; an instance's meta rarely changes). */
const tasksByCapabilities = new Map<string, boolean>();

/** Whether an instance's `mcp_capabilities` meta declares the Tasks extension (memoised: asked per request). */
export function declaresTasksExtension(capabilities: string): boolean {
  let offers = tasksByCapabilities.get(capabilities);
  if (offers === undefined) {
    try {
      offers = Boolean((JSON.parse(capabilities) as { extensions?: Record<string, unknown> }).extensions?.[TASKS_EXTENSION]);
    } catch {
      offers = false;
    }
    if (tasksByCapabilities.size >= 1_000) tasksByCapabilities.clear();
    tasksByCapabilities.set(capabilities, offers);
  }
  return offers;
}

/**
 * What a view's endpoint declares. The passthrough declares what its agent does (of what
 * the gateway relays: tools, logging, resources, prompts, completions, the Tasks
 * extension), so a client sees the same server through it as directly; before the agent
 * has been reached, and for the whole mesh, what the gateway serves.
 */
export function capabilitiesOf(mesh: MeshClient, view: View, tasks: boolean): ServerCapabilities {
  const upstream = view.kind === "agent" ? mesh.identityOf(view.agent)?.capabilities : undefined;
  if (upstream) {
    const extensions = tasks ? { [TASKS_EXTENSION]: {} } : undefined;
    return {
      tools: upstream.tools ?? { listChanged: true },
      ...(upstream.logging ? { logging: upstream.logging } : {}),
      ...(upstream.resources ? { resources: upstream.resources } : {}),
      ...(upstream.prompts ? { prompts: upstream.prompts } : {}),
      ...(upstream.completions ? { completions: upstream.completions } : {}),
      ...(extensions ? { extensions } : {}),
    };
  }
  return {
    tools: { listChanged: true },
    logging: {},
    ...(tasks ? { extensions: { [TASKS_EXTENSION]: {} } } : {}),
    ...(view.kind === "dynamic"
      ? {}
      : { resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, completions: {} }),
  };
}

/** The instructions a view's endpoint gives its clients: the passthrough's are its agent's own. */
export function instructionsOf(mesh: MeshClient, view: View): string {
  if (view.kind === "agent")
    return (
      mesh.identityOf(view.agent)?.instructions ??
      `The ${view.agent} agent of the toolmesh mesh, served by whichever of its replicas is healthy.`
    );
  return view.kind === "dynamic"
    ? "The toolmesh mesh, too large to list: search_tools finds tools, describe_tool shows one's input schema, call_tool calls it."
    : "Every agent of the toolmesh mesh, as tools named <agent>__<tool>. The list changes as agents come and go.";
}

/** How long clients may cache each list; per caller under a policy (never shared between callers by a cache). */
export function cacheHintsOf(perCaller: boolean, ttlMs: number) {
  return {
    "tools/list": { ttlMs, cacheScope: perCaller ? "private" : "public" },
    "prompts/list": { ttlMs, cacheScope: "public" },
    "resources/list": { ttlMs, cacheScope: "public" },
    "resources/templates/list": { ttlMs, cacheScope: "public" },
    "server/discover": { ttlMs, cacheScope: "public" },
  } as const;
}
