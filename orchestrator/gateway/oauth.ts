// `mesh gateway`: OAuth 2.1 access tokens (MESH_OAUTH_* or the --oauth-* flags), accepted
// once the authorization server has been reached.
import { describeError, isMeshError } from "../../src/protocol/errors.ts";
import { oauthConfigFromEnv, OAuthResourceServer } from "../../src/http/oauth.ts";
import type { Logger } from "../../src/logger.ts";

/** How long the gateway waits before it tries an authorization server it cannot reach again. */
const OAUTH_RETRY_MS = 2_000;

/**
 * The gateway's OAuth resource server, set up once the gateway knows its own URL (the
 * default resource). Until then a request gets 503 "starting"; an authorization server that
 * cannot be reached yet is waited for (OAuth requests get 503 meanwhile, static tokens work);
 * a wrong setting (an issuer that does not match) stops the gateway.
 */
export class GatewayOAuth {
  /** What the HTTP layer is given: the resource server, "starting", or undefined (no OAuth). */
  state: OAuthResourceServer | "starting" | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: Logger;
  private retry: NodeJS.Timeout | undefined;

  /** `env`: the OAuth settings (oauthEnv); OAuth is off without MESH_OAUTH_ISSUER, and on stdio (undefined). */
  constructor(env: NodeJS.ProcessEnv | undefined, log: Logger) {
    this.env = env ?? {};
    this.log = log;
    this.state = this.env["MESH_OAUTH_ISSUER"]?.trim() ? "starting" : undefined;
  }

  /** The protected-resource metadata URL, once OAuth tokens are accepted. */
  metadataUrl(): string | undefined {
    return typeof this.state === "object" ? this.state.metadataUrl : undefined;
  }

  /** Sets OAuth up for a gateway served at `origin` (when it is on); throws a setting that is wrong. */
  async start(origin: string): Promise<void> {
    if (this.state !== "starting") return;
    await this.setUp(oauthConfigFromEnv(this.env, () => `${origin}/`)!);
  }

  /** Stops trying to reach the authorization server. */
  close(): void {
    clearTimeout(this.retry);
  }

  private async setUp(config: NonNullable<ReturnType<typeof oauthConfigFromEnv>>): Promise<void> {
    try {
      const ready = await OAuthResourceServer.create(config);
      this.state = ready;
      this.log.info({ issuer: ready.config.issuer, resource: ready.resource, metadata: ready.metadataUrl }, "OAuth access tokens accepted");
    } catch (e) {
      if (!isMeshError(e) || !e.retryable) throw e;
      this.log.warn({ err: describeError(e) }, "the authorization server cannot be reached yet; trying again in 2 s");
      this.retry = setTimeout(
        () => void this.setUp(config).catch((err: unknown) => this.log.error({ err: describeError(err) }, "OAuth set-up failed")),
        OAUTH_RETRY_MS,
      );
      this.retry.unref();
    }
  }
}
