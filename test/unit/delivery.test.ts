import { SdkErrorCode, SdkHttpError } from "@modelcontextprotocol/client";
import { expect, it } from "vitest";
import { notDelivered } from "../../src/client/delivery.ts";

/** What the SDK's HTTP transport throws for a non-2xx answer. */
const httpError = (status: number, text: string) =>
  new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint (HTTP ${status}): ${text}`, { status, text });

it("counts only failures that prove the agent never ran the request", () => {
  expect(notDelivered(httpError(404, "Session not found"))).toBe("session-unknown");
  expect(notDelivered(httpError(503, "draining"))).toBe("draining");
  const refused = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
  expect(notDelivered(refused)).toBe("connection-refused");
  // May have run: a reset mid-call, a server error, a timeout.
  expect(
    notDelivered(new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) })),
  ).toBeUndefined();
  expect(notDelivered(httpError(500, "boom"))).toBeUndefined();
  expect(notDelivered(new Error("Request timed out"))).toBeUndefined();
  // At its concurrency limit an agent answers 503 with the overloaded code: it did not start the call.
  expect(notDelivered(httpError(503, '{"jsonrpc":"2.0","id":null,"error":{"code":-32014,"message":"at capacity"}}'))).toBe("overloaded");
});
