import { Command } from "commander";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";
import { formatTable } from "../table.ts";

export function agentsCommand(): Command {
  return addMeshOptions(
    new Command("agents").description("agents in the mesh: instances, health, tool counts, and why an instance is not used"),
  ).action(async (flags: MeshFlags) =>
    withMesh(flags, async ({ consul, mesh }) => {
      const agents = await Promise.all(
        mesh.catalog.agents().map(async (a) => {
          // The catalog holds passing instances; the health API shows the others too.
          const all = (await consul.healthService(a.name)).value;
          return {
            name: a.name,
            description: a.description ?? "",
            tags: a.tags,
            tools: a.tools.length,
            ...(a.toolsError ? { toolsError: a.toolsError } : {}),
            instances: all.map((i) => {
              const unusable = a.unusable.find((u) => u.id === i.id);
              return {
                id: i.id,
                address: `${i.address}:${i.port ?? "?"}`,
                status: i.status,
                usable: i.status === "passing" && !unusable,
                ...(unusable ? { problem: unusable.reason } : i.status !== "passing" ? { problem: "failing its Consul health check" } : {}),
                version: i.meta["agent_version"] ?? "",
              };
            }),
          };
        }),
      );
      print(flags, { agents }, () => {
        if (agents.length === 0)
          return 'No agents tagged "mcp" are registered. Start some with "mesh up" or "mesh serve <agent>", or add one with "mesh register".';
        const rows = agents.flatMap((a) =>
          a.instances.map((i) => [a.name, i.id, i.address, i.usable ? i.status : `${i.status}, not used`, String(a.tools), i.version]),
        );
        const problems = agents.flatMap((a) => [
          ...a.instances.filter((i) => i.problem).map((i) => `  ${i.id}: ${i.problem}`),
          ...(a.toolsError ? [`  ${a.name}: cannot list tools: ${a.toolsError}`] : []),
        ]);
        return [
          formatTable(["AGENT", "INSTANCE", "ADDRESS", "HEALTH", "TOOLS", "VERSION"], rows),
          ...(problems.length ? ["", "Not used:", ...problems] : []),
        ].join("\n");
      });
    }),
  );
}
