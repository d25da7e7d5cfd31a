import * as z from "zod";
import { parseDurationMs } from "../consul/client.ts";
import { MeshError } from "../protocol/errors.ts";
import { toolFilter } from "./toolNames.ts";

/** The Consul KV key of the gateway's tool policy (JSON). @default "toolmesh/policy/gateway" */
export const POLICY_KV_KEY = "toolmesh/policy/gateway";
/** The scope a rule names to apply to every caller (anonymous ones of an open gateway too). */
export const ANY_CALLER = "*";

const Pattern = z
  .string()
  .regex(/^[a-z*][a-z0-9*-]*(\.[A-Za-z0-9_*.-]+)?$/, 'expected "agent", "agent.tool" or a pattern with *, e.g. "hr.get_*"');

const Rule = z
  .object({
    /** Any of these scopes (or roles, as `role:<name>`) makes the rule apply; "*": every caller. */
    scopes: z.array(z.string().min(1).max(200)).min(1),
    /** Tools it opens: `agent`, `agent.tool`, `*` wildcards. */
    allow: z.array(Pattern).default([]),
    /** Tools it closes, whatever another rule opens. */
    deny: z.array(Pattern).default([]),
    /** "read": only tools annotated read-only (readOnlyHint); "any": state-changing ones too. @default "any" */
    access: z.enum(["read", "any"]).default("any"),
    description: z.string().max(500).optional(),
  })
  .strict();

const Interval = z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'expected a duration such as "1s", "1m" or "1h"');

const Quota = z
  .object({
    /** Callers it applies to: any of these scopes (or "*"). */
    scopes: z.array(z.string().min(1).max(200)).min(1),
    /** Tools it counts: `agent`, `agent.tool`, `*` wildcards. */
    tools: z.array(Pattern).min(1),
    /** Calls allowed per interval, which is also the burst (the bucket's size). */
    limit: z.number().int().min(1).max(1_000_000),
    interval: Interval,
    /** "tool": one bucket per caller and tool; "caller": one per caller for all the tools it counts. @default "tool" */
    per: z.enum(["tool", "caller"]).default("tool"),
  })
  .strict();

/**
 * Who may call which tool through the gateway. Without a policy in Consul everything is
 * allowed (as before); with one, a tool is callable (and listed) only when a rule the caller
 * holds allows it and none it holds denies it.
 */
export const ToolPolicySchema = z
  .object({
    version: z.literal(1),
    rules: z.array(Rule).max(1_000),
    /** Rate limits per caller: the first quota that applies to a caller and tool counts the call. */
    quotas: z.array(Quota).max(1_000).optional(),
  })
  .strict();
export type ToolPolicy = z.output<typeof ToolPolicySchema>;
export type PolicyRule = ToolPolicy["rules"][number];
export type PolicyQuota = NonNullable<ToolPolicy["quotas"]>[number];

/** A quota that applies to a call, with the bucket the call counts against. */
export interface QuotaMatch {
  quota: PolicyQuota;
  /** Which quota of the policy (its index). */
  index: number;
  /** Calls per millisecond the bucket refills with. */
  ratePerMs: number;
  /** The bucket's key for this caller: the quota, and the tool unless it counts per caller. */
  bucket: (caller: string) => string;
}

/** Parses a policy document, or a CONFIG_INVALID error naming the first problem and where it is. */
export function parsePolicy(text: string, where = POLICY_KV_KEY): ToolPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MeshError("CONFIG_INVALID", `The tool policy at ${where} is not JSON: ${(e as Error).message}.`);
  }
  const parsed = ToolPolicySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MeshError(
      "CONFIG_INVALID",
      `The tool policy at ${where} is not valid: ${issue.path.join(".") || "(top)"}: ${issue.message}. Expected {"version":1,"rules":[{"scopes":["hr:read"],"allow":["hr.get_*"],"access":"read"}]}.`,
    );
  }
  return parsed.data;
}

/** One tool as the policy sees it. */
export interface PolicyTool {
  agent: string;
  tool: string;
  /** From the tool's annotations: readOnlyHint true. */
  readOnly: boolean;
}

/** What the policy says about one caller and one tool, with the reason in words and as data. */
export type PolicyDecision =
  | { allowed: true; rule?: number }
  | {
      allowed: false;
      /** The permission missing, e.g. "hr.request_leave" (a state-changing tool) or "hr.get_employee:read". */
      permission: string;
      /** Scopes any one of which would allow it (empty: no rule does). */
      requiredScopes: string[];
      /** Set when a rule the caller holds closes the tool. */
      deniedBy?: number;
      reason: string;
    };

type Compiled = { rule: PolicyRule; allow: (a: string, t: string) => boolean; deny: (a: string, t: string) => boolean };

/** A policy ready to answer, compiled once per version. */
export class PolicyEngine {
  readonly policy: ToolPolicy | undefined;
  private readonly rules: Compiled[];
  private readonly quotas: { quota: PolicyQuota; matches: (a: string, t: string) => boolean; ratePerMs: number }[];

  constructor(policy: ToolPolicy | undefined) {
    this.policy = policy;
    this.quotas = (policy?.quotas ?? []).map((quota) => ({
      quota,
      matches: toolFilter(quota.tools, []),
      ratePerMs: quota.limit / parseDurationMs(quota.interval),
    }));
    this.rules = (policy?.rules ?? []).map((rule) => ({
      rule,
      allow: rule.allow.length ? toolFilter(rule.allow, []) : () => false,
      deny: rule.deny.length ? toolFilter(rule.deny, []) : () => false,
    }));
  }

  /** Whether a policy is in force at all (none: everything allowed). */
  get active(): boolean {
    return this.policy !== undefined;
  }

  /** The quota a call of this caller counts against, if any (the first that applies). */
  quotaFor(scopes: readonly string[], agent: string, tool: string): QuotaMatch | undefined {
    const index = this.quotas.findIndex(
      (q) => q.quota.scopes.some((s) => s === ANY_CALLER || scopes.includes(s)) && q.matches(agent, tool),
    );
    if (index < 0) return undefined;
    const q = this.quotas[index]!;
    return {
      quota: q.quota,
      index,
      ratePerMs: q.ratePerMs,
      bucket: (caller) =>
        JSON.stringify([index, q.quota.limit, q.quota.interval, caller, q.quota.per === "tool" ? `${agent}.${tool}` : ""]),
    };
  }

  decide(scopes: readonly string[], t: PolicyTool): PolicyDecision {
    if (!this.policy) return { allowed: true };
    const held = (r: PolicyRule) => r.scopes.some((s) => s === ANY_CALLER || scopes.includes(s));
    const permission = `${t.agent}.${t.tool}`;
    const deniedBy = this.rules.findIndex((c) => held(c.rule) && c.deny(t.agent, t.tool));
    if (deniedBy >= 0)
      return {
        allowed: false,
        permission,
        requiredScopes: [],
        deniedBy,
        reason: `rule ${deniedBy}${this.rules[deniedBy]!.rule.description ? ` (${this.rules[deniedBy]!.rule.description})` : ""} denies ${permission} to ${scopes.length ? scopes.join(" ") : "this caller"}`,
      };
    const fits = (c: Compiled) => c.allow(t.agent, t.tool) && (c.rule.access === "any" || t.readOnly);
    const allowedBy = this.rules.findIndex((c) => held(c.rule) && fits(c));
    if (allowedBy >= 0) return { allowed: true, rule: allowedBy };
    const requiredScopes = [...new Set(this.rules.filter((c) => fits(c) && !c.deny(t.agent, t.tool)).flatMap((c) => c.rule.scopes))];
    const readOnlyOnly = this.rules.some((c) => held(c.rule) && c.allow(t.agent, t.tool) && c.rule.access === "read");
    return {
      allowed: false,
      permission,
      requiredScopes,
      reason: `${permission}${t.readOnly ? "" : " (state-changing)"} needs ${
        requiredScopes.length ? `one of the scopes ${requiredScopes.join(", ")}` : "a scope no rule grants"
      }${readOnlyOnly ? "; the caller's scopes allow only read-only tools of it" : ""}; the caller holds ${scopes.length ? scopes.join(" ") : "no scopes"}`,
    };
  }
}
