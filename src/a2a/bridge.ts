import { randomUUID } from "node:crypto";
import { Role, TaskState, type AgentCard, type Message, type Part, type Task } from "@a2a-js/sdk";
import { ClientFactory, type Client } from "@a2a-js/sdk/client";
import * as z from "zod";
import { AGENT_NAME_PATTERN, defineAgent, type AgentDefinition } from "../agent/definition.ts";
import { defineTool, type ToolSpec } from "../agent/tools.ts";
import { MeshError } from "../protocol/errors.ts";
import { businessError, textAndStructured } from "../protocol/results.ts";

/** How often a bridged A2A task is polled until it ends. @default 1000 */
export const A2A_POLL_MS = 1_000;

const TERMINAL = new Set<number>([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
]);

export interface A2aBridgeDeps {
  client: Client;
  card: AgentCard;
}

/** Reads an A2A agent's card (at `<url>/.well-known/agent-card.json`, or the card URL itself) and connects to it. */
export async function connectA2a(url: string): Promise<A2aBridgeDeps> {
  const factory = new ClientFactory();
  try {
    const client = url.endsWith(".json") ? await factory.createFromUrl(url, "") : await factory.createFromUrl(url);
    return { client, card: await client.getAgentCard() };
  } catch (e) {
    throw new MeshError("CONFIG_INVALID", `No usable A2A agent card at ${url}: ${(e as Error).message}`);
  }
}

/**
 * An A2A agent as a member of the mesh: an MCP server (the agent kit) whose tools are the A2A
 * agent's skills, each taking a message in words. A call sends the message over A2A and
 * returns the agent's answer; a long A2A task is polled to its end, and runs as a mesh task for
 * clients that declare the Tasks extension (the kit's task engine), so it outlives the call.
 */
export function a2aBridgeAgent(card: AgentCard, deps: A2aBridgeDeps, name?: string): AgentDefinition<A2aBridgeDeps> {
  const agentName =
    name ??
    card.name
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63);
  if (!AGENT_NAME_PATTERN.test(agentName))
    throw new MeshError(
      "CONFIG_INVALID",
      `Cannot name the bridge after the card's name "${card.name}"; give one with --name (lowercase letters, digits, dashes).`,
    );
  return defineAgent<A2aBridgeDeps>({
    name: agentName,
    version: card.version || "1.0.0",
    description: `${card.description} (an A2A agent, bridged into the mesh)`,
    intents: ["a2a"],
    createDeps: () => deps,
    tools: (d) => skillTools(d),
  });
}

function skillTools(d: A2aBridgeDeps): ToolSpec[] {
  const seen = new Set<string>();
  return d.card.skills.map((skill) => {
    let toolName = skill.id.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 128) || "skill";
    while (seen.has(toolName)) toolName = `${toolName}_`;
    seen.add(toolName);
    return defineTool({
      name: toolName,
      title: skill.name,
      description: `${skill.description}${skill.examples.length ? ` Examples: ${skill.examples.map((e) => `"${e}"`).join("; ")}.` : ""} (A2A skill "${skill.id}" of ${d.card.name}.)`,
      input: z.object({
        message: z.string().trim().min(1, "message must not be empty").max(20_000).describe("What to ask the agent, in words"),
        context_id: z.string().max(200).optional().describe("Continue this A2A conversation (the context_id of an earlier answer)"),
      }),
      output: z.object({ answer: z.string(), state: z.string(), task_id: z.string().optional(), context_id: z.string().optional() }),
      // What an A2A skill does is not declared: treat it as changing something, once per call.
      annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: false, openWorldHint: true },
      task: "optional",
      handler: async ({ message, context_id }, call) => {
        const sent: Message = {
          role: Role.ROLE_USER,
          messageId: randomUUID(),
          parts: [textPart(message)],
          taskId: "",
          contextId: context_id ?? "",
          extensions: [],
          metadata: { skill: skill.id },
          referenceTaskIds: [],
        } as unknown as Message;
        let result = await d.client.sendMessage({ tenant: "", message: sent, configuration: undefined, metadata: undefined } as never, {
          signal: call.signal,
        });
        if ("status" in result) {
          let task = result as Task;
          while (!TERMINAL.has(task.status?.state ?? 0)) {
            await call.progress(0, undefined, `A2A task ${task.id}: ${TaskState[task.status?.state ?? 0] ?? "working"}`);
            await new Promise((r) => setTimeout(r, A2A_POLL_MS));
            call.signal.throwIfAborted();
            task = await d.client.getTask({ tenant: "", id: task.id } as never, { signal: call.signal });
          }
          result = task;
        }
        const answer = "status" in result ? taskText(result as Task) : partsText((result as Message).parts);
        const state = "status" in result ? (TaskState[(result as Task).status!.state] ?? "unknown") : "message";
        const structured = {
          answer,
          state,
          ...("status" in result
            ? { task_id: (result as Task).id, context_id: (result as Task).contextId }
            : { context_id: (result as Message).contextId }),
        };
        if ("status" in result && (result as Task).status!.state !== TaskState.TASK_STATE_COMPLETED) {
          return businessError(`${d.card.name} ended the task as ${state}: ${answer || "no message"}`);
        }
        return textAndStructured(structured, answer);
      },
    });
  });
}

function textPart(text: string): Part {
  return { content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" } as Part;
}

function partsText(parts: readonly Part[] | undefined): string {
  return (parts ?? [])
    .map((p) => (p.content?.$case === "text" ? p.content.value : ""))
    .filter(Boolean)
    .join("\n");
}

function taskText(t: Task): string {
  const fromArtifacts = (t.artifacts ?? [])
    .map((a) => partsText(a.parts))
    .filter(Boolean)
    .join("\n");
  return fromArtifacts || partsText(t.status?.message?.parts) || partsText(t.history?.at(-1)?.parts);
}
