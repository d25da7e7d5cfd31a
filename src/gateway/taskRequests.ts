import { ProtocolError, ProtocolErrorCode, type Server, type ServerContext } from "@modelcontextprotocol/server";
import * as z from "zod";
import type { ClientPool } from "../client/pool.ts";
import type { GatewayCore, LegacySession } from "./core.ts";
import { forwardRequest } from "./forward.ts";
import type { View } from "./views.ts";

/** Between the agent and the agent's own task id, in the ids the whole-mesh view hands out. */
export const TASK_ID_SEPARATOR = "~";

const TaskParams = z.object({ taskId: z.string().min(1).max(200) }).passthrough();

/** What the task methods need of the gateway: its core, and which agents run tasks. */
export interface TaskRouting extends GatewayCore {
  offersTasks(agent: string): boolean;
}

/**
 * tasks/get, tasks/update, tasks/cancel of a view's server go to any replica of the agent:
 * its task records are in shared state. Through /mcp the agent is named in the task id
 * (agent~id), and the answer carries the id the client knows.
 */
export function installTaskMethods(
  server: Server,
  gateway: TaskRouting,
  view: View & { kind: "agent" | "mesh" },
  via: () => { pool: ClientPool | undefined; session: LegacySession | undefined },
): void {
  for (const method of ["tasks/get", "tasks/update", "tasks/cancel"] as const) {
    server.setRequestHandler(method, { params: TaskParams }, async (params, ctx) => {
      const { agent, taskParams } = view.kind === "agent" ? { agent: view.agent, taskParams: params } : taskTarget(gateway, params);
      const answer = await forwardRequest<Record<string, unknown>>(
        gateway,
        agent,
        { method, params: withInputResponses(taskParams, ctx) },
        ctx,
        via(),
      );
      return view.kind === "mesh" && typeof answer["taskId"] === "string" ? { ...answer, taskId: params.taskId } : answer;
    });
  }
}

/** The agent a whole-mesh task id names, and the params with the agent's own task id. */
function taskTarget(gateway: TaskRouting, params: { taskId: string }): { agent: string; taskParams: Record<string, unknown> } {
  const cut = params.taskId.indexOf(TASK_ID_SEPARATOR);
  if (cut <= 0)
    throw new ProtocolError(
      ProtocolErrorCode.InvalidParams,
      `Unknown task "${params.taskId}": task ids from this endpoint name their agent, like finance${TASK_ID_SEPARATOR}<id>.`,
    );
  const agent = params.taskId.slice(0, cut);
  if (!gateway.offersTasks(agent))
    throw new ProtocolError(
      ProtocolErrorCode.InvalidParams,
      `Unknown task "${params.taskId}": no healthy instance of "${agent}" runs tasks.`,
    );
  return { agent, taskParams: { ...params, taskId: params.taskId.slice(cut + 1) } };
}

/** A tasks/update's inputResponses (the SDK lifts them into the context) put back for the agent. */
function withInputResponses(params: Record<string, unknown>, ctx: ServerContext): Record<string, unknown> {
  const responses = params["inputResponses"] ?? ctx.mcpReq.inputResponses;
  return responses === undefined ? params : { ...params, inputResponses: responses };
}
