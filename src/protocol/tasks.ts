/** The durable tasks' timings, shared by the agents that run tasks and the gateway's A2A task store. */

/** How long a task's record is kept after it is created. @default 3600000 (1 h) */
export const TASK_TTL_MS = 60 * 60_000;
/** The polling interval suggested to clients. @default 1000 */
export const TASK_POLL_INTERVAL_MS = 1_000;
/**
 * How often the replica running a task refreshes its record and looks for a cancel request
 * or input responses delivered to another replica. @default 1000
 */
export const TASK_HEARTBEAT_MS = 1_000;
/** How often each replica deletes task records past their TTL. @default 300000 */
export const TASK_SWEEP_INTERVAL_MS = 5 * 60_000;
/** A running task whose record has not been refreshed for this long lost its replica. @default 10000 */
export const TASK_ORPHAN_AFTER_MS = 10_000;
/**
 * How long the replica that ran a task keeps trying to record its end while shared state is
 * unreachable (Consul restarting, a leader election); the task keeps its heartbeat meanwhile.
 * @default 600000 (10 min)
 */
export const TASK_END_RETRY_MS = 10 * 60_000;
