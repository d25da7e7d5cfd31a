import { Command } from "commander";
import { UsageError } from "../errors.ts";
import { addMeshOptions, print, withMesh, type MeshFlags } from "../mesh.ts";

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
  ).action(async (agent: string | undefined, flags: MeshFlags) =>
    withMesh(flags, async ({ mesh }) => {
      const agents = mesh.catalog.agents().filter((a) => !agent || a.name === agent);
      if (agent && agents.length === 0) {
        const known = mesh.catalog.agents().map((a) => a.name);
        throw new UsageError(`Unknown agent "${agent}". Agents with a healthy instance: ${known.join(", ") || "none"}.`);
      }
      const tools = agents.flatMap((a) =>
        a.tools.map((t) => ({
          agent: a.name,
          name: t.name,
          description: t.description ?? "",
          inputSchema: t.inputSchema,
          annotations: t.annotations,
        })),
      );
      print(flags, { tools }, () =>
        tools.length === 0
          ? "No tools: no agent has a healthy instance."
          : tools
              .map((t) => `${t.agent}.${t.name}(${describeParams(t.inputSchema as never)})\n    ${t.description.split("\n")[0]}`)
              .join("\n"),
      );
    }),
  );
}
