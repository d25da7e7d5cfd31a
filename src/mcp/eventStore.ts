import type { EventStore, JSONRPCMessage } from "@modelcontextprotocol/server";

/** Events a 2025-era session keeps for resumption (SSE polling, SEP-1699), and their total size. */
export const SESSION_EVENT_LIMITS = { events: 256, bytes: 1_048_576 } as const;

/** How long a client waits before it resumes a stream the server closed (the SSE `retry` field), ms. */
export const SSE_RETRY_MS = 1_000;

interface StoredEvent {
  id: string;
  streamId: string;
  seq: number;
  message: JSONRPCMessage;
  bytes: number;
}

/**
 * One session's recent stream events, so a client whose response stream was cut (a proxy's
 * idle timeout, a dropped connection, a server that closes streams to poll) resumes it with
 * Last-Event-ID and gets what it missed, its answer included. Bounded by count and bytes:
 * a session that runs for weeks keeps only its newest events; a resumption from an event
 * already dropped is refused (the SDK answers 400) rather than replayed with a gap.
 */
export class SessionEventStore implements EventStore {
  private readonly events: StoredEvent[] = [];
  private bytes = 0;
  private seq = 0;

  private readonly limits: { events: number; bytes: number };

  constructor(limits: { events: number; bytes: number } = SESSION_EVENT_LIMITS) {
    this.limits = limits;
  }

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const seq = ++this.seq;
    const id = `${seq}_${streamId}`;
    const bytes = JSON.stringify(message).length;
    this.events.push({ id, streamId, seq, message, bytes });
    this.bytes += bytes;
    while (this.events.length > this.limits.events || (this.bytes > this.limits.bytes && this.events.length > 1)) {
      this.bytes -= this.events.shift()!.bytes;
    }
    return Promise.resolve(id);
  }

  getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return Promise.resolve(this.find(eventId)?.streamId);
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const last = this.find(lastEventId);
    if (!last) throw new Error(`Event ${lastEventId.slice(0, 80)} is no longer kept: start the request again.`);
    for (const e of this.events.filter((x) => x.streamId === last.streamId && x.seq > last.seq)) await send(e.id, e.message);
    return last.streamId;
  }

  private find(eventId: string): StoredEvent | undefined {
    const cut = eventId.indexOf("_");
    const seq = Number(eventId.slice(0, cut));
    if (cut <= 0 || !Number.isSafeInteger(seq)) return undefined;
    // Ids are sequential: the event is at a known distance from the oldest one kept.
    const first = this.events[0];
    const e = first ? this.events[seq - first.seq] : undefined;
    return e && e.id === eventId ? e : undefined;
  }
}
