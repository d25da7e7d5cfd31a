import type { CallToolResult } from "@modelcontextprotocol/client";
import type { CatalogInstance } from "../discovery/catalog.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { failovers } from "../telemetry/metrics.ts";
import type { Attempt, Call } from "./call.ts";
import { noAnswer, type Unanswered } from "./callErrors.ts";

/** Sends one attempt to an instance; `canMoveOn`: another instance follows it in the order; `n` counts attempts from 1. */
export type SendAttempt = (instance: CatalogInstance, canMoveOn: boolean, n: number) => Promise<Attempt>;

/**
 * A call's attempts, in placement order, until one answers: each instance once, or twice when
 * its failure says the same instance may take the call again (a fresh session); an instance
 * that went out of rotation meanwhile is skipped. When none answered, the error says why
 * (callErrors.ts noAnswer). Whether a failure may be tried again at all was decided by the
 * attempt (outcome.ts): one that may not throws from it.
 */
export async function attemptInOrder(
  call: Call,
  order: readonly CatalogInstance[],
  send: SendAttempt,
  logger: Logger,
): Promise<{ result: CallToolResult; instance: CatalogInstance }> {
  const unanswered: Unanswered = { lastError: undefined, overloaded: 0, silences: [], skipped: [], otherFailures: false };
  let attempts = 0;
  for (const [index, instance] of order.entries()) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await send(instance, index < order.length - 1, ++attempts);
      if ("result" in outcome) return { result: outcome.result, instance };
      if (outcome.kind === "skip") {
        unanswered.skipped.push(instance.id);
        break;
      }
      tally(unanswered, outcome, call, instance, logger);
      if (!outcome.same) break;
    }
  }
  throw noAnswer(call, order, unanswered);
}

/** Counts a failed attempt for the error that may follow, in the failover metric, and in the log. */
function tally(
  unanswered: Unanswered,
  outcome: Extract<Attempt, { kind: "retry" }>,
  call: Call,
  instance: CatalogInstance,
  logger: Logger,
): void {
  if (outcome.silence) unanswered.silences.push(outcome.silence);
  else unanswered.otherFailures = true;
  unanswered.lastError = outcome.error;
  if (outcome.reason === "overloaded") unanswered.overloaded++;
  failovers.inc({ agent: call.agent, reason: outcome.reason });
  logger[outcome.reason === "overloaded" ? "debug" : "info"](
    { instance: instance.id, reason: outcome.reason, traceId: call.ctx.traceId, err: describeError(outcome.error) },
    "call failed before an answer; trying again",
  );
}
