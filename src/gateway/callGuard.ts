import { ProtocolError, type Tool } from "@modelcontextprotocol/server";
import { fromMeta, rootContext } from "../context/meshContext.ts";
import { currentIdentity } from "../http/principal.ts";
import type { Logger } from "../logger.ts";
import { FORBIDDEN_ERROR_CODE, RATE_LIMITED_ERROR_CODE } from "../protocol/codes.ts";
import { quotaRefusals } from "../telemetry/metrics.ts";
import type { PolicyDecision, PolicyEngine } from "./policy.ts";
import { TokenBuckets } from "./quota.ts";

/** The policy as the gateway follows it: the engine in force, and its changes. */
export interface PolicySource {
  readonly engine: PolicyEngine;
  on(event: "change", listener: (engine: PolicyEngine) => void): unknown;
}

type Target = { agent: string; tool: string };

/**
 * What stands between a client's call and the agent at the gateway: the tool policy (who may
 * call which tool) and the quotas (how often), both read for the caller of the request being
 * served. A refusal is an MCP error that says why, with the trace id, before anything is sent.
 */
export class CallGuard {
  /** The quotas' token buckets (this replica's: quota.ts says why). */
  private readonly buckets = new TokenBuckets();

  private readonly policy: PolicySource | undefined;
  /** The tools of one agent kind the gateway offers (unprefixed). */
  private readonly agentTools: (agent: string) => Tool[];
  /** Where the protected-resource metadata is, when refused OAuth callers get a step-up challenge. */
  private readonly scopeChallenge: () => string | undefined;
  private readonly logger: Logger;

  constructor(
    policy: PolicySource | undefined,
    agentTools: (agent: string) => Tool[],
    scopeChallenge: () => string | undefined,
    logger: Logger,
  ) {
    this.policy = policy;
    this.agentTools = agentTools;
    this.scopeChallenge = scopeChallenge;
    this.logger = logger;
  }

  /** Whether a policy is in force (without one, every call is allowed and listings are shared). */
  get active(): boolean {
    return this.policy?.engine.active === true;
  }

  /** The scopes (and roles) of the caller of the request being served. */
  callerScopes(): readonly string[] {
    return currentIdentity()?.scopes ?? [];
  }

  /** What the policy says about the current caller and one tool of an agent. */
  permission(agent: string, tool: Tool): PolicyDecision {
    const engine = this.policy?.engine;
    if (!engine?.active) return { allowed: true };
    return engine.decide(this.callerScopes(), { agent, tool: tool.name, readOnly: tool.annotations?.readOnlyHint === true });
  }

  /**
   * Counts a call against the caller's quota for the tool (the policy's quotas); over it, the
   * call is refused before it is sent anywhere, with when to try again (retryable: nothing ran).
   */
  admit(target: Target, meta: Record<string, unknown> | undefined): void {
    const match = this.policy?.engine.quotaFor(this.callerScopes(), target.agent, target.tool);
    if (!match) return;
    const caller = currentIdentity()?.principal ?? "anonymous";
    const taken = this.buckets.take(match.bucket(caller), match.quota.limit, match.ratePerMs);
    if (taken.ok) return;
    const permission = `${target.agent}.${target.tool}`;
    const traceId = traceIdOf(meta);
    quotaRefusals.inc({ caller, tool: permission });
    this.logger.info({ traceId, caller, tool: permission, retryAfterMs: taken.retryAfterMs }, "call refused: the caller is over its quota");
    const what = match.quota.per === "tool" ? permission : `the tools quota ${match.index} counts`;
    throw new ProtocolError(
      RATE_LIMITED_ERROR_CODE,
      `Rate limited: this caller may call ${what} ${match.quota.limit} time(s) per ${match.quota.interval}; nothing ran. Retry after ${Math.ceil(taken.retryAfterMs / 1_000)} s (${taken.retryAfterMs} ms). Trace ${traceId}.`,
      {
        retryable: true,
        retryAfterMs: taken.retryAfterMs,
        limit: match.quota.limit,
        interval: match.quota.interval,
        tool: permission,
        traceId,
      },
    );
  }

  /**
   * Refuses a call the policy does not allow the caller, with the missing permission in words
   * and as data (SEP-1880's insufficient_scope, as an MCP error), logged with the trace id.
   */
  authorize(target: Target, meta: Record<string, unknown> | undefined): void {
    if (!this.policy?.engine.active) return;
    const tool = this.agentTools(target.agent).find((t) => t.name === target.tool);
    if (!tool) return;
    const decision = this.permission(target.agent, tool);
    if (decision.allowed) return;
    const traceId = traceIdOf(meta);
    const identity = currentIdentity();
    this.logger.warn(
      { traceId, agent: target.agent, tool: target.tool, caller: identity?.principal ?? "anonymous", permission: decision.permission },
      "call refused by the tool policy",
    );
    // An OAuth caller that can get the scope from its authorization server is told how (step-up).
    const metadataUrl = identity?.kind === "oauth" && decision.requiredScopes.length ? this.scopeChallenge() : undefined;
    throw new ProtocolError(FORBIDDEN_ERROR_CODE, `Forbidden: ${decision.reason}. Trace ${traceId}.`, {
      ...(metadataUrl ? { wwwAuthenticate: this.stepUpChallenge(decision, metadataUrl) } : {}),
      error: "insufficient_scope",
      permission: decision.permission,
      access: tool.annotations?.readOnlyHint === true ? "read" : "write",
      requiredScopes: decision.requiredScopes,
      ...(decision.requiredScopes.length ? { scope: decision.requiredScopes.join(" ") } : {}),
      grantedScopes: [...this.callerScopes()],
      ...(decision.deniedBy !== undefined ? { deniedByRule: decision.deniedBy } : {}),
      traceId,
    });
  }

  /** RFC 6750's challenge: the scopes the caller holds and the first that would allow the call, in the header a client acts on. */
  private stepUpChallenge(decision: Extract<PolicyDecision, { allowed: false }>, metadataUrl: string): string {
    const wanted = [...new Set([...this.callerScopes().filter((s) => !s.startsWith("role:")), decision.requiredScopes[0]!])];
    return `Bearer error="insufficient_scope", scope="${wanted.join(" ")}", resource_metadata="${metadataUrl}", error_description="${decision.permission} needs ${decision.requiredScopes.join(" or ")}"`;
  }
}

/** The trace id a refusal names: the client's context's, or a new one. */
function traceIdOf(meta: Record<string, unknown> | undefined): string {
  return (fromMeta(meta) ?? rootContext({ caller: "gateway" })).traceId;
}
