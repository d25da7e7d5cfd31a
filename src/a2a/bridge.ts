import { randomUUID } from "node:crypto";
import { Role, TaskState, type Message, type Part, type Task } from "@a2a-js/sdk";
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

/** A text field of a card: absent, or null (ProtoJSON's "the default"), reads as "". */
const text = z
  .string()
  .nullish()
  .transform((v) => v ?? "");
/** A list of texts: absent, or null, reads as none. */
const texts = z
  .array(z.string())
  .nullish()
  .transform((v) => v ?? []);

/**
 * What the bridge reads of an A2A agent's card, and the card as it reads it. Every optional
 * field of an A2A 1.0 card may be absent (examples, modes, security, provider, …), and the JS
 * SDK hands over a card without security schemes as the JSON it got, with no defaults filled
 * in; so this reads each field it uses with its default. What the bridge cannot do without is
 * the skills, each with an id (its tool's name); a missing name is asked for with --name.
 */
const bridgedCard = z.object({
  name: text,
  description: text,
  version: text,
  skills: z
    .array(
      z.object({
        id: z.string({ error: "expected the skill's id (the bridge names its tool after it)" }).min(1, 'expected the skill\'s id, got ""'),
        name: text,
        description: text,
        examples: texts,
      }),
      {
        error: "expected a list of skills",
      },
    )
    .min(1, "the card lists no skills, so the bridge would have no tools"),
});

export type BridgedCard = z.infer<typeof bridgedCard>;

export interface A2aBridgeDeps {
  client: Client;
  card: BridgedCard;
}

/** Reads an A2A agent's card (at `<url>/.well-known/agent-card.json`, or the card URL itself) and connects to it. */
export async function connectA2a(url: string): Promise<A2aBridgeDeps> {
  const factory = new ClientFactory();
  let client: Client;
  let card: unknown;
  try {
    client = url.endsWith(".json") ? await factory.createFromUrl(url, "") : await factory.createFromUrl(url);
    card = await client.getAgentCard();
  } catch (e) {
    throw new MeshError("CONFIG_INVALID", `No usable A2A agent card at ${url}: ${(e as Error).message}`);
  }
  const read = bridgedCard.safeParse(card);
  if (!read.success)
    throw new MeshError(
      "CONFIG_INVALID",
      `The A2A agent card at ${url} cannot be bridged: ${read.error.issues.map((i) => `${cardPath(i.path)}: ${i.message}`).join("; ")}. Expected an A2A 1.0 agent card with at least one skill, each with an id; ask the agent's owner to publish one.`,
    );
  return { client, card: read.data };
}

/** Where in the card a problem is, as a reader writes it: `card.skills[0].id`. */
function cardPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((at, key) => (typeof key === "number" ? `${at}[${key}]` : `${at}.${String(key)}`), "card");
}

/**
 * An A2A agent as a member of the mesh: an MCP server (the agent kit) whose tools are the A2A
 * agent's skills, each taking a message in words. A call sends the message over A2A and
 * returns the agent's answer; a long A2A task is polled to its end, and runs as a mesh task for
 * clients that declare the Tasks extension (the kit's task engine), so it outlives the call.
 */
export function a2aBridgeAgent(card: BridgedCard, deps: A2aBridgeDeps, name?: string): AgentDefinition<A2aBridgeDeps> {
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
    description: card.description
      ? `${card.description} (an A2A agent, bridged into the mesh)`
      : `The A2A agent ${card.name || agentName}, bridged into the mesh.`,
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
      title: skill.name || skill.id,
      description: `${skill.description || skill.name || skill.id}${skill.examples.length ? ` Examples: ${skill.examples.map((e) => `"${e}"`).join("; ")}.` : ""} (A2A skill "${skill.id}" of ${d.card.name}.)`,
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
        const state = "status" in result ? (TaskState[(result as Task).status?.state ?? 0] ?? "unknown") : "message";
        const structured = {
          answer,
          state,
          ...("status" in result
            ? { task_id: (result as Task).id, context_id: (result as Task).contextId }
            : { context_id: (result as Message).contextId }),
        };
        if ("status" in result && (result as Task).status?.state !== TaskState.TASK_STATE_COMPLETED) {
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
