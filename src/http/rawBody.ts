import type { IncomingMessage } from "node:http";
import { rawMember } from "../protocol/rawJson.ts";

/** The text of each request's JSON body, as it arrived (a proxy forwards parts of it byte for byte). */
const rawBodies = new WeakMap<IncomingMessage, string>();

export function keepRawBody(req: IncomingMessage, text: string): void {
  rawBodies.set(req, text);
}

/** A tools/call's `arguments` exactly as its body carried them (undefined if never read or absent). */
export function rawArgumentsOf(req: IncomingMessage): string | undefined {
  const raw = rawBodies.get(req);
  return raw === undefined ? undefined : rawMember(raw, ["params", "arguments"]);
}
