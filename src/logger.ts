import { pino, type Logger, type LevelWithSilent } from "pino";
import { currentMeshContext } from "./context/meshContext.ts";

export type { Logger };

/** Levels a mesh process accepts for --log-level / MESH_LOG_LEVEL. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * Paths pino redacts wherever they appear in a log object. Tokens must never reach a log
 * line (DESIGN.md: secrets stay secret), so every field that may carry one is listed.
 */
export const REDACT_PATHS: readonly string[] = [
  "token",
  "*.token",
  "consulToken",
  "*.consulToken",
  "meshToken",
  "*.meshToken",
  "authorization",
  "headers.authorization",
  "*.headers.authorization",
  'headers["x-consul-token"]',
];

export interface LoggerOptions {
  /** Logger name, e.g. the agent kind. */
  name: string;
  /** @default "info" */
  level?: LevelWithSilent;
  /**
   * Where lines go. stdio servers must use "stderr": stdout carries the protocol.
   * @default "stdout"
   */
  destination?: "stdout" | "stderr";
  /** Fields added to every line (instance id, version, ...). */
  base?: Record<string, unknown>;
}

/** A JSON-lines pino logger with secrets redacted. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.destination === "stderr" ? 2 : 1;
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      base: { pid: process.pid, ...options.base },
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      // Every line written while serving a call names its trace, so one request can be
      // followed across processes (grep the trace id in each agent's log).
      mixin: () => {
        const ctx = currentMeshContext();
        return ctx ? { traceId: ctx.traceId, ...(ctx.sessionId ? { session: ctx.sessionId } : {}) } : {};
      },
    },
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything; the default for library objects built without one. */
export const silentLogger: Logger = pino({ level: "silent" });
