// A strict check of an A2A 1.0 Agent Card as JSON, hand-written from the normative definitions:
// specification/a2a.proto at the A2A repository's tag v1.0.1 (messages AgentCard, AgentInterface,
// AgentProvider, AgentCapabilities, AgentExtension, AgentSkill, AgentCardSignature,
// SecurityRequirement, StringList, SecurityScheme and its five schemes) and the specification's
// JSON rules (section 5.5: ProtoJSON, as ADR-001 adopts it, with camelCase field names; 5.7: a
// field marked REQUIRED is present and set, a required array has at least one element). No JSON
// Schema of A2A 1.0 ships in a package this repository has (the A2A repository generates one at
// build time and commits none), so this is that schema, written out.
//
// ProtoJSON is strict where it matters here: a field the message does not define is refused (the
// default of every ProtoJSON parser), and a oneof (SecurityScheme.scheme, OAuthFlows.flow) is
// written as exactly one of its member fields, by its own name: `{"httpAuthSecurityScheme":
// {"scheme": "Bearer"}}`. A map's values are the message itself (`schemes: {"bearer": {"list":
// []}}`), and a repeated field left empty may be omitted (`{"bearer": {}}`).
import * as z from "zod";

const nonEmpty = z.string().min(1);
const struct = z.record(z.string(), z.unknown());

/** A oneof: exactly one of the given member fields, each with its message. */
function oneOf<T extends Record<string, z.ZodType>>(members: T) {
  return z
    .strictObject(Object.fromEntries(Object.entries(members).map(([k, v]) => [k, v.optional()])) as { [K in keyof T]: z.ZodOptional<T[K]> })
    .refine((o) => Object.values(o).filter((v) => v !== undefined).length === 1, {
      message: `expected exactly one of ${Object.keys(members).join(", ")}`,
    });
}

const stringList = z.strictObject({ list: z.array(z.string()).optional() });
const securityRequirement = z.strictObject({ schemes: z.record(z.string(), stringList).optional() });

const scopes = z.record(z.string(), z.string());
const oauthFlows = oneOf({
  authorizationCode: z.strictObject({
    authorizationUrl: nonEmpty,
    tokenUrl: nonEmpty,
    refreshUrl: z.string().optional(),
    scopes,
    pkceRequired: z.boolean().optional(),
  }),
  clientCredentials: z.strictObject({ tokenUrl: nonEmpty, refreshUrl: z.string().optional(), scopes }),
  implicit: z.strictObject({ authorizationUrl: z.string().optional(), refreshUrl: z.string().optional(), scopes: scopes.optional() }),
  password: z.strictObject({ tokenUrl: z.string().optional(), refreshUrl: z.string().optional(), scopes: scopes.optional() }),
  deviceCode: z.strictObject({ deviceAuthorizationUrl: nonEmpty, tokenUrl: nonEmpty, refreshUrl: z.string().optional(), scopes }),
});

/** SecurityScheme: `oneof scheme { APIKeySecurityScheme … MutualTlsSecurityScheme }`. */
export const a2aSecurityScheme = oneOf({
  apiKeySecurityScheme: z.strictObject({ description: z.string().optional(), location: nonEmpty, name: nonEmpty }),
  httpAuthSecurityScheme: z.strictObject({ description: z.string().optional(), scheme: nonEmpty, bearerFormat: z.string().optional() }),
  oauth2SecurityScheme: z.strictObject({
    description: z.string().optional(),
    flows: oauthFlows,
    oauth2MetadataUrl: z.string().optional(),
  }),
  openIdConnectSecurityScheme: z.strictObject({ description: z.string().optional(), openIdConnectUrl: nonEmpty }),
  mtlsSecurityScheme: z.strictObject({ description: z.string().optional() }),
});

const skill = z.strictObject({
  id: nonEmpty,
  name: nonEmpty,
  description: nonEmpty,
  tags: z.array(z.string()).min(1),
  examples: z.array(z.string()).optional(),
  inputModes: z.array(z.string()).optional(),
  outputModes: z.array(z.string()).optional(),
  securityRequirements: z.array(securityRequirement).optional(),
});

/** AgentCard, as JSON (A2A 1.0). */
export const a2aAgentCard = z
  .strictObject({
    name: nonEmpty,
    description: nonEmpty,
    supportedInterfaces: z
      .array(z.strictObject({ url: nonEmpty, protocolBinding: nonEmpty, tenant: z.string().optional(), protocolVersion: nonEmpty }))
      .min(1),
    provider: z.strictObject({ url: nonEmpty, organization: nonEmpty }).optional(),
    version: nonEmpty,
    documentationUrl: z.string().optional(),
    capabilities: z.strictObject({
      streaming: z.boolean().optional(),
      pushNotifications: z.boolean().optional(),
      extensions: z
        .array(
          z.strictObject({
            uri: z.string().optional(),
            description: z.string().optional(),
            required: z.boolean().optional(),
            params: struct.optional(),
          }),
        )
        .optional(),
      extendedAgentCard: z.boolean().optional(),
    }),
    securitySchemes: z.record(z.string(), a2aSecurityScheme).optional(),
    securityRequirements: z.array(securityRequirement).optional(),
    defaultInputModes: z.array(z.string()).min(1),
    defaultOutputModes: z.array(z.string()).min(1),
    skills: z.array(skill).min(1),
    signatures: z.array(z.strictObject({ protected: nonEmpty, signature: nonEmpty, header: struct.optional() })).optional(),
    iconUrl: z.string().optional(),
  })
  // Every scheme a requirement names is declared (the card's and each skill's requirements).
  .refine(
    (c) =>
      [...(c.securityRequirements ?? []), ...c.skills.flatMap((s) => s.securityRequirements ?? [])].every((r) =>
        Object.keys(r.schemes ?? {}).every((name) => c.securitySchemes?.[name] !== undefined),
      ),
    { message: "a security requirement names a scheme that securitySchemes does not declare" },
  );

export type A2aAgentCardJson = z.infer<typeof a2aAgentCard>;

/** The card's problems as one line each (`path: message`), or none when it is a valid A2A 1.0 card. */
export function a2aCardProblems(json: unknown): string[] {
  const parsed = a2aAgentCard.safeParse(json);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".") || "(card)"}: ${i.message}`);
}
