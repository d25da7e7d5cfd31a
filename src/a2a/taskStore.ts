import { randomUUID } from "node:crypto";
import {
  Role,
  Task,
  TaskState,
  type AgentCard,
  type ListTasksRequest,
  type ListTasksResponse,
  type StreamResponse,
  type SubscribeToTaskRequest,
} from "@a2a-js/sdk";
import { TaskNotFoundError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import {
  DefaultExecutionEventBusManager,
  DefaultRequestHandler,
  InMemoryTaskStore,
  type AgentExecutor,
  type ServerCallContext,
  type TaskStore,
} from "@a2a-js/sdk/server";
import type { ConsulClient } from "../consul/client.ts";
import { currentPrincipal } from "../http/principal.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { ConsulKvState, MemoryState, type SharedState } from "../state/sharedState.ts";
import { TASK_HEARTBEAT_MS, TASK_ORPHAN_AFTER_MS, TASK_TTL_MS } from "../protocol/tasks.ts";

/** A2A states after which a task never changes (the SDK's own list). */
const TERMINAL: ReadonlySet<TaskState> = new Set([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
]);
/** States in which a gateway is working on the task (and refreshes its heartbeat). */
const RUNNING: ReadonlySet<TaskState> = new Set([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]);

/** Where the gateways keep A2A tasks in Consul KV: <prefix><agent>/<task id>. */
export const A2A_TASK_PREFIX = "toolmesh/a2a-tasks/";

/** How often a subscriber on a gateway not running the task looks at its record. @default 500 */
export const A2A_SUBSCRIBE_POLL_MS = 500;

/** An A2A task as the mesh keeps it: in Consul KV beside the mesh's own tasks, so every gateway answers for it. */
interface A2aTaskRecord {
  owner: string;
  /** The gateway instance working on it. */
  instance: string;
  createdAt: string;
  ttlMs: number;
  heartbeatAt: string;
  /** Task.toJSON: the A2A wire form. */
  task: unknown;
}

/**
 * The A2A SDK's task store, backed by the mesh's shared state (Consul KV under
 * toolmesh/a2a-tasks/<agent>/ when the gateway runs against Consul): a task created through one
 * gateway replica is read, listed, cancelled and resubscribed through any other; the task is
 * visible only to the principal that created it; its first terminal state wins (a cancel from
 * another replica is not overwritten by the answer arriving late); a task whose gateway stopped
 * refreshing it while working is failed with a message naming that gateway; records past
 * TASK_TTL_MS are swept like the agents' task records (sweepTaskRecords).
 */
export class SharedA2aTaskStore implements TaskStore {
  private readonly state: SharedState;
  private readonly keys: () => Promise<string[]>;
  private readonly instance: string;
  /** Tasks this gateway is executing (their heartbeat is refreshed here). */
  readonly local = new Set<string>();

  constructor(o: { instance: string; consul?: ConsulClient; prefix?: string }) {
    this.instance = o.instance;
    if (o.consul && o.prefix) {
      const prefix = o.prefix.endsWith("/") ? o.prefix : `${o.prefix}/`;
      const consul = o.consul;
      this.state = new ConsulKvState(consul, prefix);
      this.keys = async () => (await consul.kvKeys(prefix)).map((k) => k.slice(prefix.length));
    } else {
      const state = new MemoryState();
      this.state = state;
      this.keys = async () => state.keys();
    }
  }

  async save(task: Task): Promise<void> {
    const owner = currentPrincipal();
    const now = new Date().toISOString();
    await this.state.update<A2aTaskRecord>(task.id, (current) => {
      if (current && current.owner !== owner) throw new TaskNotFoundError(`Task not found: ${task.id}`);
      // The first ending wins: a cancel written by another replica stays cancelled.
      if (current && TERMINAL.has(Task.fromJSON(current.task).status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)) return current;
      return {
        owner,
        instance: this.local.has(task.id) ? this.instance : (current?.instance ?? this.instance),
        createdAt: current?.createdAt ?? now,
        ttlMs: current?.ttlMs ?? TASK_TTL_MS,
        heartbeatAt: now,
        task: Task.toJSON(task),
      };
    });
  }

  async load(taskId: string): Promise<Task | undefined> {
    const record = await this.state.get<A2aTaskRecord>(taskId);
    if (!record || record.owner !== currentPrincipal() || Date.parse(record.createdAt) + record.ttlMs < Date.now()) return undefined;
    const task = Task.fromJSON(record.task);
    const state = task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED;
    if (RUNNING.has(state) && !this.local.has(taskId) && Date.now() - Date.parse(record.heartbeatAt) > TASK_ORPHAN_AFTER_MS) {
      // The gateway working on it is gone: say so, never leave it "working" forever.
      await this.save({
        ...task,
        status: {
          state: TaskState.TASK_STATE_FAILED,
          timestamp: new Date().toISOString(),
          message: agentText(
            `Gateway ${record.instance} stopped while working on this task (no sign of it since ${record.heartbeatAt}); send the message again.`,
            task,
          ),
        },
      });
      return this.load(taskId);
    }
    return task;
  }

  /** The state of a task whatever its owner (for the gateway running it: was it cancelled elsewhere?). */
  async stateOf(taskId: string): Promise<TaskState | undefined> {
    const record = await this.state.get<A2aTaskRecord>(taskId);
    return record ? Task.fromJSON(record.task).status?.state : undefined;
  }

  /** Marks a running task as alive (every TASK_HEARTBEAT_MS while this gateway executes it). */
  async heartbeat(taskId: string): Promise<void> {
    await this.state.update<A2aTaskRecord>(taskId, (r) =>
      r ? { ...r, instance: this.instance, heartbeatAt: new Date().toISOString() } : r!,
    );
  }

  async list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    // The SDK's in-memory store filters, orders and pages exactly as the spec says: feed it this owner's tasks.
    const page = new InMemoryTaskStore();
    for (const id of await this.keys()) {
      const task = await this.load(id).catch(() => undefined);
      if (task) await page.save(task, context);
    }
    return page.list(params, context);
  }
}

/**
 * The SDK's request handler over the shared store, with resubscription that works on every
 * gateway: a task running here streams its live events (the SDK's own path); one running on
 * another gateway replica is followed through its record until it ends.
 */
export class MeshA2aRequestHandler extends DefaultRequestHandler {
  private readonly store: SharedA2aTaskStore;
  private readonly buses: DefaultExecutionEventBusManager;

  constructor(card: AgentCard, store: SharedA2aTaskStore, executor: AgentExecutor, buses = new DefaultExecutionEventBusManager()) {
    super(card, store, executor, buses);
    this.store = store;
    this.buses = buses;
  }

  override async *resubscribe(params: SubscribeToTaskRequest, context: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    if (this.buses.getByTaskId(params.id, context)) {
      yield* super.resubscribe(params, context);
      return;
    }
    let task = await this.store.load(params.id);
    if (!task) throw new TaskNotFoundError(`Task not found: ${params.id}`);
    if (TERMINAL.has(task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)) {
      throw new UnsupportedOperationError(`Task ${params.id} is in a terminal state and cannot be subscribed to.`);
    }
    yield { payload: { $case: "task", value: task } } as StreamResponse;
    let seenStatus = JSON.stringify((Task.toJSON(task) as { status?: unknown }).status ?? null);
    let seenArtifacts = task.artifacts.length;
    for (;;) {
      await new Promise((r) => setTimeout(r, A2A_SUBSCRIBE_POLL_MS));
      const next = await this.store.load(params.id);
      if (!next) return; // expired
      task = next;
      for (const artifact of task.artifacts.slice(seenArtifacts)) {
        yield {
          payload: {
            $case: "artifactUpdate",
            value: { taskId: task.id, contextId: task.contextId, artifact, append: false, lastChunk: true, metadata: undefined },
          },
        } as StreamResponse;
      }
      seenArtifacts = task.artifacts.length;
      const status = JSON.stringify((Task.toJSON(task) as { status?: unknown }).status ?? null);
      if (status !== seenStatus && task.status) {
        seenStatus = status;
        yield {
          payload: { $case: "statusUpdate", value: { taskId: task.id, contextId: task.contextId, status: task.status, metadata: {} } },
        } as StreamResponse;
      }
      if (TERMINAL.has(task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)) return;
      // Input-required waits for the client: the stream ends, as the SDK's does at an interruption.
      if (task.status?.state === TaskState.TASK_STATE_INPUT_REQUIRED) return;
    }
  }
}

/**
 * While this gateway executes an A2A task: refreshes its heartbeat and aborts it when another
 * replica recorded a cancel. Returns the function that stops watching.
 */
export function watchTask(store: SharedA2aTaskStore, taskId: string, abort: AbortController, logger: Logger): () => void {
  store.local.add(taskId);
  const timer = setInterval(() => {
    void store
      .heartbeat(taskId)
      .then(() => store.stateOf(taskId))
      .then((state) => {
        if (state === TaskState.TASK_STATE_CANCELED) abort.abort(new Error("cancelled by the A2A client (through another gateway)"));
      })
      .catch((e: unknown) => logger.warn({ taskId, err: describeError(e) }, "cannot refresh the A2A task's record"));
  }, TASK_HEARTBEAT_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    store.local.delete(taskId);
  };
}

function agentText(text: string, task: Task) {
  return {
    role: Role.ROLE_AGENT,
    messageId: randomUUID(),
    parts: [{ content: { $case: "text" as const, value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
    taskId: task.id,
    contextId: task.contextId,
    extensions: [],
    metadata: {},
    referenceTaskIds: [],
  } as unknown as NonNullable<Task["status"]>["message"];
}
