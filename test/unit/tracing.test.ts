import { describe, expect, it } from "vitest";
import { activeTraceparent, tracesWanted, tracingEnabled } from "../../src/telemetry/tracing.ts";
import { rootContext } from "../../src/context/meshContext.ts";

describe("tracing switch (the standard OTEL_* variables)", () => {
  it("is off unless an exporter or an OTLP endpoint is set, and OTEL_SDK_DISABLED wins", () => {
    expect(tracesWanted({})).toBe(false);
    expect(tracesWanted({ OTEL_SERVICE_NAME: "x" })).toBe(false);
    expect(tracesWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe(true);
    expect(tracesWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" })).toBe(true);
    expect(tracesWanted({ OTEL_TRACES_EXPORTER: "otlp" })).toBe(true);
    expect(tracesWanted({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe(false);
    expect(tracesWanted({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" })).toBe(false);
  });

  it("when off, nothing is recorded and a request's trace id is its own", () => {
    expect(tracingEnabled()).toBe(false);
    expect(activeTraceparent()).toBeUndefined();
    const a = rootContext({ caller: "t" });
    const b = rootContext({ caller: "t" });
    expect(a.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.traceId).not.toBe(b.traceId);
    const continued = rootContext({ caller: "t", traceparent: `00-${"1".repeat(32)}-${"2".repeat(16)}-01` });
    expect(continued.traceId).toBe("1".repeat(32));
  });
});
