import {
  context as otelContext,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
} from "@opentelemetry/api";

/**
 * OpenTelemetry traces for every hop of the mesh. Off, and costless, unless the standard
 * OTEL_* variables ask for traces (OTEL_TRACES_EXPORTER, or an OTLP endpoint): then the
 * OpenTelemetry Node SDK is loaded and configured by those variables (exporter, protocol,
 * endpoint, headers, sampler, resource attributes, OTEL_SERVICE_NAME), and
 *
 * - a caller makes one CLIENT span per attempt of a tool call (a failover shows as two),
 * - the gateway and each agent make a SERVER span per tools/call, the child of the caller's
 *   attempt through the W3C traceparent the call carries in `params._meta` (the MCP semantic
 *   conventions' propagation), and the handler runs inside it, so its onward calls and its
 *   Consul KV work are its children,
 *
 * with the trace id the MeshContext and every log line already carry.
 */

const TRACER = "toolmesh";
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let enabled = false;
let shutdown: (() => Promise<void>) | undefined;

/** Whether spans are being recorded in this process. */
export function tracingEnabled(): boolean {
  return enabled;
}

/** Whether the OTEL_* environment asks for traces. */
export function tracesWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env["OTEL_SDK_DISABLED"] ?? "").toLowerCase() === "true") return false;
  const exporter = (env["OTEL_TRACES_EXPORTER"] ?? "").trim();
  if (exporter) return exporter !== "none";
  return Boolean(env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
}

/**
 * Starts the OpenTelemetry Node SDK for this process when the environment asks for traces
 * (once per process). `serviceName` applies unless OTEL_SERVICE_NAME says otherwise;
 * `attributes` are added to the resource (the instance id, say).
 */
export async function startTracing(serviceName: string, attributes: Attributes = {}, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (enabled || !tracesWanted(env)) return;
  const [{ NodeSDK }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/resources"),
  ]);
  const sdk = new NodeSDK({
    ...(env["OTEL_SERVICE_NAME"] ? {} : { serviceName }),
    resource: resourceFromAttributes(attributes),
    // Spans come from toolmesh's own code, not from patching libraries.
    instrumentations: [],
  });
  sdk.start();
  enabled = true;
  shutdown = () => sdk.shutdown();
}

/** Sends the spans still buffered and stops the SDK (before a process exits). Never throws. */
export async function stopTracing(): Promise<void> {
  const stop = shutdown;
  shutdown = undefined;
  enabled = false;
  await stop?.().catch(() => undefined);
}

/** Where a span's parent is: the active span when it belongs to this trace, else the caller's traceparent. */
function parentFor(traceId: string, parentSpanId: string | undefined, flags = "01"): Context {
  const active = trace.getSpan(otelContext.active());
  if (active && active.spanContext().traceId === traceId) return otelContext.active();
  if (!parentSpanId) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: parseInt(flags, 16), isRemote: true });
}

function tracer() {
  return trace.getTracer(TRACER);
}

/** The W3C traceparent naming `span` as the parent of what it calls. */
export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${c.traceFlags.toString(16).padStart(2, "0")}`;
}

/** The active span's traceparent, when tracing and inside a span (a new request's trace starts there). */
export function activeTraceparent(): string | undefined {
  if (!enabled) return undefined;
  const span = trace.getSpan(otelContext.active());
  return span && !span.spanContext().isRemote ? traceparentOf(span) : undefined;
}

export interface SpanOptions {
  name: string;
  kind: SpanKind;
  attributes: Attributes;
  /** The trace the span belongs to, and its parent from the wire when no span of the trace is active. */
  traceparent?: string;
  traceId?: string;
  parentSpanId?: string;
}

/**
 * Runs `fn` inside a new span (active for everything `fn` does). `outcome` reads an
 * error out of a result that is not a thrown error (an MCP tool's isError).
 */
export async function inSpan<T>(o: SpanOptions, fn: (span: Span) => Promise<T>, outcome?: (result: T) => string | undefined): Promise<T> {
  const tp = o.traceparent ? TRACEPARENT.exec(o.traceparent) : null;
  const parent = tp ? parentFor(tp[1]!, tp[2], tp[3]) : o.traceId ? parentFor(o.traceId, o.parentSpanId) : otelContext.active();
  const span = tracer().startSpan(o.name, { kind: o.kind, attributes: o.attributes }, parent);
  try {
    const result = await otelContext.with(trace.setSpan(parent, span), () => fn(span));
    const error = outcome?.(result);
    if (error) {
      span.setAttribute("error.type", error);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    return result;
  } catch (e) {
    span.setAttribute("error.type", errorType(e));
    span.recordException(e as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
    throw e;
  } finally {
    span.end();
  }
}

/** `fn` inside a span when tracing, else just `fn` (nothing allocated). */
export function traced<T>(o: SpanOptions, fn: () => Promise<T>): Promise<T> {
  return enabled ? inSpan(o, () => fn()) : fn();
}

/** A child span for work inside a call (Consul KV): only when a span is active, never a trace of its own. */
export async function inChildSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  if (!enabled || !trace.getSpan(otelContext.active())) return fn();
  return inSpan({ name, kind: SpanKind.CLIENT, attributes }, () => fn());
}

/** error.type: the mesh's or protocol's code when there is one, else the error's class. */
function errorType(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" || typeof code === "number") return String(code);
  return e instanceof Error ? e.constructor.name : "Error";
}

export { SpanKind };
