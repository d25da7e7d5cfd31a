import { Command } from "commander";
import { DEFAULT_TOOLS_TIMEOUT_MS } from "../../../src/discovery/catalog.ts";
import { addMeshOptions, print, requireAgent, withMesh, type MeshFlags } from "../mesh.ts";

interface SchemaProp {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
}

/** `query*: string, limit: integer` — a one-line view of an input schema. */
export function describeParams(schema: { properties?: Record<string, SchemaProp>; required?: string[] }): string {
  const req = new Set(schema.required ?? []);
  const props = Object.entries(schema.properties ?? {});
  if (props.length === 0) return "(no arguments)";
  return props
    .map(
      ([k, p]) =>
        `${k}${req.has(k) ? "*" : ""}: ${p.enum ? p.enum.map((e) => JSON.stringify(e)).join("|") : Array.isArray(p.type) ? p.type.join("|") : (p.type ?? "any")}`,
    )
    .join(", ");
}

export function toolsCommand(): Command {
  return addMeshOptions(
    new Command("tools")
      .description("tools of every agent (or of one) with descriptions and input schemas")
      .argument("[agent]", "only this agent"),
  ).action(async (name: string | undefined, flags: MeshFlags) =>
    withMesh(
      flags,
      async (session) => {
        // One agent: it must be known (else usage, exit 2) and usable (else mesh error, exit 3).
        const agents = name
          ? [await requireAgent(session, name, Date.now() + 2 * DEFAULT_TOOLS_TIMEOUT_MS)]
          : session.mesh.catalog.agents().filter((a) => a.instances.length > 0);
        const tools = agents.flatMap((a) =>
          a.tools.map((t) => ({
            agent: a.name,
            name: t.name,
            description: t.description ?? "",
            inputSchema: t.inputSchema,
            annotations: t.annotations,
          })),
        );
        const notListed = agents.filter((a) => a.toolsError).map((a) => `${a.name}: cannot list tools: ${a.toolsError}`);
        print(flags, { tools, ...(notListed.length ? { errors: notListed } : {}) }, () =>
          [
            tools.length === 0 && !name
              ? 'No tools: no agent has a usable instance (see "mesh agents").'
              : tools
                  .map((t) => `${t.agent}.${t.name}(${describeParams(t.inputSchema as never)})\n    ${t.description.split("\n")[0]}`)
                  .join("\n"),
            ...notListed,
          ]
            .filter(Boolean)
            .join("\n"),
        );
      },
      { catalog: name ? "on-demand" : "all" },
    ),
  );
}
