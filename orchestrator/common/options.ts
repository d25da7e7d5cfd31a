import { UsageError } from "./errors.ts";

/** Longest deadline a command accepts (a day; Node timers hold at most about 24.8 days). @default 86400000 */
export const MAX_TIMEOUT_MS = 86_400_000;

/** A --timeout value: whole milliseconds from 1 to MAX_TIMEOUT_MS, or a usage error saying so. */
export function parseTimeout(raw: string, flag = "--timeout"): number {
  const ms = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(ms) || ms < 1 || ms > MAX_TIMEOUT_MS)
    throw new UsageError(`${flag} must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS} (24 h); got "${raw}".`);
  return ms;
}

/** A --port value: 0 (any free port) to 65535, or a usage error saying so. */
export function parsePort(raw: string, flag = "--port"): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || port > 65_535)
    throw new UsageError(`${flag} must be a port number from 0 (any free port) to 65535; got "${raw}".`);
  return port;
}
