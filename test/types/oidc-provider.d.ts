declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  /** The parts of oidc-provider's API the tests use (the package ships no types). */
  export type Configuration = Record<string, unknown> & {
    findAccount?: (ctx: unknown, id: string) => { accountId: string; claims: () => Record<string, unknown> } | undefined;
    extraTokenClaims?: (ctx: unknown, token: { accountId?: string; clientId?: string }) => Record<string, unknown> | undefined;
    features?: Record<string, unknown> & {
      resourceIndicators?: {
        enabled: boolean;
        defaultResource?: (ctx: unknown, client: unknown, oneOf?: string | string[]) => string | string[] | undefined;
        useGrantedResource?: () => boolean;
        getResourceServerInfo?: (ctx: unknown, resourceIndicator: string, client: { clientId: string }) => Record<string, unknown>;
      };
    };
    interactions?: { url: (ctx: unknown, interaction: { uid: string }) => string };
  };

  export interface InteractionDetails {
    uid: string;
    prompt: { name: string; details?: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId: string };
    grantId?: string;
  }

  export interface Grant {
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    rejectOIDCScope(scope: string): void;
    rejectResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    Grant: { new (o: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> };
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
}
