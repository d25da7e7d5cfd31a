import { callerTokens, type TokenFor } from "../client/tokens.ts";
import { agentTokens, TokenVerifier } from "../http/auth.ts";
import { identityKeys, IdentityVerifier, type IdentityKeyFor } from "../http/identity.ts";
import { loadTokens } from "../protocol/credentials.ts";
import type { AgentConfig } from "./config.ts";

/**
 * An agent's bearer tokens: the mesh tokens it accepts (with the credential for its own kind
 * derived from each); on its onward calls it sends each agent that agent's credential,
 * derived from the first (unless MESH_TOKEN_<AGENT> names a token for that agent), and signs
 * the caller's identity with keys derived from the same tokens. A bad token (too short, not
 * printable) stops the agent at start with a clear error.
 */
export class AgentCredentials {
  /** The credential this agent sends to another agent. */
  readonly tokenFor: TokenFor;
  /** The keys its onward calls sign the caller's identity with. */
  readonly identityKeys: IdentityKeyFor;
  private readonly agent: string;
  private readonly tokens: string[];
  private readonly accepted: string[];
  private readonly metricsTokens: string[];

  constructor(agent: string, config: AgentConfig) {
    this.agent = agent;
    this.tokens = loadTokens({ value: config.meshToken, file: config.meshTokenFile, what: "MESH_TOKEN" });
    this.accepted = agentTokens(agent, this.tokens);
    this.metricsTokens = loadTokens({ value: config.metricsToken, what: "MESH_METRICS_TOKEN" });
    this.tokenFor = callerTokens(process.env, this.tokens);
    this.identityKeys = identityKeys(process.env, this.tokens);
  }

  /** How the agent's HTTP server checks who calls it (HttpServerOptions). */
  httpAuth(): { verifier: TokenVerifier; identityVerifier: IdentityVerifier; metricsVerifier?: TokenVerifier } {
    return {
      verifier: new TokenVerifier(this.accepted),
      // Who a call is for, as the gateway (or an agent acting for that user) signed it.
      identityVerifier: new IdentityVerifier(this.agent, this.tokens),
      // A scraper's own token reads /metrics and nothing else (where a token is required at all).
      ...(this.accepted.length > 0 && this.metricsTokens.length > 0
        ? { metricsVerifier: new TokenVerifier([...this.accepted, ...this.metricsTokens]) }
        : {}),
    };
  }
}
