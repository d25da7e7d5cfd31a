// Public API of the toolmesh library. Whatever is exported here is API.
export { MeshError, isMeshError, describeError, type MeshErrorCode, type MeshErrorOptions } from "./protocol/errors.ts";
export { createLogger, silentLogger, LOG_LEVELS, REDACT_PATHS, type Logger, type LoggerOptions } from "./logger.ts";
export { DEFAULT_CONSUL_ADDR, parseConsulAddress, type ConsulAddress } from "./consul/address.ts";
export {
  ConsulClient,
  DEFAULT_CONSUL_TIMEOUT_MS,
  parseDurationMs,
  type Blocking,
  type BlockingOptions,
  type CallOptions,
  type ConsulClientOptions,
  type KvEntry,
  type ServiceEntry,
  type ServiceRegistration,
} from "./consul/client.ts";
export {
  startDevConsul,
  resolveConsulBinary,
  CONSUL_SCRIPT,
  DEV_AGENT_READY_TIMEOUT_MS,
  type DevConsul,
  type DevConsulOptions,
} from "./consul/devAgent.ts";
export { type SharedState, type Versioned, MemoryState, ConsulKvState, MAX_CAS_ATTEMPTS } from "./state/sharedState.ts";
export { claimStillHeld, currentFence, type Fence } from "./state/fence.ts";
export { DEFAULT_CALL_TIMEOUT_MS, type CallToolOptions, type MeshCaller } from "./client/meshCaller.ts";
export { MeshClient, type MeshClientOptions, type CallOutcome } from "./client/meshClient.ts";
export { instanceUrl } from "./discovery/instanceUrl.ts";
export { ClientPool, ConnectError, knownEra, MODERN_REVISION, type ClientPoolOptions, type PoolTarget } from "./client/pool.ts";
export { RoundRobinPicker, LeastInFlightPicker, type InstancePicker } from "./client/picker.ts";
export {
  Catalog,
  MCP_TAG,
  WATCH_WAIT,
  WATCH_BACKOFF_MS,
  type CatalogAgent,
  type CatalogEvent,
  type CatalogInstance,
  type CatalogOptions,
  type UnusableInstance,
  isToolmesh,
} from "./discovery/catalog.ts";
export {
  DEFAULT_HOP_LIMIT,
  IDEMPOTENCY_KEY_PATTERN,
  idempotencyKeyProblem,
  MAX_HISTORY_TURNS,
  childContext,
  currentMeshContext,
  fromMeta,
  rootContext,
  runWithMeshContext,
  toMeta,
  type MeshContext,
  type RootContextOptions,
  type Turn,
} from "./context/meshContext.ts";
export {
  CLIENT_CAPABILITIES_META,
  IDEMPOTENCY_KEY_META,
  PROTOCOL_VERSION_META,
  IDENTITY_META,
  META_PREFIX,
  PRINCIPAL_META,
  RESERVED_META_PREFIX,
  TASKS_ENVELOPE,
  TASKS_EXTENSION,
} from "./protocol/keys.ts";
export {
  DEADLINE_ERROR_CODE,
  DRAINING_ERROR_CODE,
  EXIT,
  HOP_LIMIT_ERROR_CODE,
  IDEMPOTENCY_CONFLICT_ERROR_CODE,
  IN_PROGRESS_ERROR_CODE,
  MESH_FAILURE_ERROR_CODE,
  OVERLOADED_ERROR_CODE,
} from "./protocol/codes.ts";
export { notDelivered, type NotDeliveredReason } from "./client/delivery.ts";
export { defineAgent, AGENT_NAME_PATTERN, type AgentDefinition, type AgentRuntime } from "./agent/definition.ts";
export {
  AgentConfigSchema,
  AGENT_ENV,
  DEFAULT_CHECK_INTERVAL,
  DEFAULT_DEREGISTER_AFTER,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_HOST,
  DEFAULT_MCP_PATH,
  DEFAULT_RECONCILE_INTERVAL_MS,
  DEFAULT_SESSION_IDLE_MS,
  advertisedHost,
  resolveAgentConfig,
  type AgentConfig,
  type AgentConfigInput,
} from "./agent/config.ts";
export { serveHttp, DEFAULT_MAX_BODY_BYTES, type HttpServer, type HttpServerOptions } from "./http/server.ts";
export { McpEndpoint, type McpEndpointOptions, type ServerFactory } from "./mcp/endpoint.ts";
export { type FastToolCalls, type FastCall } from "./mcp/fastCalls.ts";
export { LegacySessions, DEFAULT_MAX_SESSIONS, type LegacySessionsOptions } from "./mcp/legacySessions.ts";
export { TokenVerifier, agentTokens } from "./http/auth.ts";
export { AGENT_CREDENTIAL_PREFIX, agentCredential, loadTokens, agentTokenVariable } from "./protocol/credentials.ts";
export { callerTokens, type TokenFor } from "./client/tokens.ts";
export { Registrar, sleep, type RegistrarEvent, type RegistrarOptions } from "./agent/registrar.ts";
export { hashTools } from "./agent/toolsHash.ts";
export { agentServerFactory, agentServing, LiveServers, type AgentServerParts } from "./agent/server.ts";
export { startAgent, STATE_KV_PREFIX, TOOLMESH_VERSION, SERVED_PROTOCOLS, type RunningAgent } from "./agent/run.ts";
export { addAgentOptions, agentFlags, agentMain, logLevelOption, runAgentProcess } from "./agent/main.ts";
export { textAndStructured, businessError, BusinessError, resultText } from "./protocol/results.ts";
export { argumentProblem, MAX_ARGUMENT_BYTES, MAX_ARGUMENT_DEPTH } from "./protocol/limits.ts";
export { tokenize, stem, STOPWORDS } from "./text/tokenize.ts";
export { Bm25Index, DEFAULT_B, DEFAULT_K1, type Bm25Hit } from "./text/bm25.ts";
export { askTool, type Answer, type Answerer } from "./agent/askTool.ts";
export { defineTool, ToolRegistry, type ToolCall, type ToolOutcome, type ToolSpec } from "./agent/tools.ts";
export { installTools, callTool, type CallPipelineOptions } from "./agent/pipeline.ts";
export {
  DEFAULT_CLAIM_LEASE_MS,
  IdempotencyLedger,
  requestDigest,
  sweepIdempotencyRecords,
  type IdempotencyOptions,
  type KeyedCall,
} from "./agent/idempotency.ts";
export {
  Gateway,
  GATEWAY_IDLE_TIMEOUT_MS,
  GATEWAY_MAX_CALL_MS,
  GATEWAY_LIST_TTL_MS,
  type GatewayOptions,
  type View,
} from "./gateway/gateway.ts";
export { DYNAMIC_TOOLS, DynamicCatalog } from "./gateway/dynamic.ts";
export { TOOL_SEPARATOR, gatewayToolName, parseGatewayToolName, toolFilter } from "./gateway/toolNames.ts";
