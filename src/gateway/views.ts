/** What one client session (or request) sees: the whole mesh, one agent kind, or the dynamic meta-tools. */
export type View = { kind: "mesh" } | { kind: "agent"; agent: string } | { kind: "dynamic" };

/** The gateway's version in its serverInfo. */
export const TOOLMESH_GATEWAY_VERSION = "0.2.0";

/** Who answers on an endpoint of the view (serverInfo). */
export function serverInfoOf(view: View): { name: string; title: string; version: string } {
  const agent = view.kind === "agent" ? view.agent : undefined;
  return {
    name: agent ? `toolmesh-${agent}` : "toolmesh-gateway",
    title: agent ? `${agent} (through the toolmesh gateway)` : "toolmesh gateway",
    version: TOOLMESH_GATEWAY_VERSION,
  };
}

export function viewKey(view: View): string {
  return view.kind === "agent" ? `agent:${view.agent}` : view.kind;
}

export function parseViewKey(key: string): View {
  return key.startsWith("agent:")
    ? { kind: "agent", agent: key.slice("agent:".length) }
    : key === "dynamic"
      ? { kind: "dynamic" }
      : { kind: "mesh" };
}
