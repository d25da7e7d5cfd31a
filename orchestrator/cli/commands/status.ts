import { Command } from "commander";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";

export function statusCommand(): Command {
  return addMeshOptions(new Command("status").description("is Consul reachable, who leads, how many agents, instances and tools")).action(
    async (flags: MeshFlags) =>
      withMesh(flags, async ({ consul, mesh }) => {
        const leader = await consul.leader();
        const agents = mesh.catalog.agents();
        const status = {
          consul: { address: consul.address.url, reachable: true, leader },
          agents: agents.length,
          instances: agents.reduce((n, a) => n + a.instances.length, 0),
          tools: agents.reduce((n, a) => n + a.tools.length, 0),
          lastDiscoveryError: mesh.catalog.lastError ?? agents.find((a) => a.toolsError)?.toolsError ?? null,
        };
        print(flags, status, () =>
          [
            `Consul     ${status.consul.address} reachable, leader ${leader || "(none)"}`,
            `Agents     ${status.agents} with ${status.instances} healthy instance(s) and ${status.tools} tool(s)`,
            `Discovery  ${status.lastDiscoveryError ? `last error: ${status.lastDiscoveryError}` : "no errors"}`,
          ].join("\n"),
        );
      }),
  );
}
