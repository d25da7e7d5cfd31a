import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import { describe, expect, it } from "vitest";
import { SessionEventStore } from "../../src/mcp/eventStore.ts";

const note = (n: number, pad = 0): JSONRPCMessage => ({
  jsonrpc: "2.0",
  method: "notifications/progress",
  params: { progressToken: 1, progress: n, message: "x".repeat(pad) },
});

async function replay(store: SessionEventStore, after: string): Promise<{ stream: string; got: number[] }> {
  const got: number[] = [];
  const stream = await store.replayEventsAfter(after, {
    send: async (_id, m) => void got.push((m as unknown as { params: { progress: number } }).params.progress),
  });
  return { stream, got };
}

describe("a session's event store (resumable response streams)", () => {
  it("replays what a stream sent after the client's last event, that stream's only", async () => {
    const store = new SessionEventStore();
    const a1 = await store.storeEvent("a", note(1));
    await store.storeEvent("b", note(100));
    await store.storeEvent("a", note(2));
    await store.storeEvent("a", note(3));
    expect(await store.getStreamIdForEventId(a1)).toBe("a");
    expect(await replay(store, a1)).toEqual({ stream: "a", got: [2, 3] });
  });

  it("keeps only the newest events, by count and by size, and refuses to resume from one it dropped", async () => {
    const store = new SessionEventStore({ events: 10, bytes: 2_000 });
    const first = await store.storeEvent("s", note(0));
    const ids = [first];
    for (let i = 1; i < 30; i++) ids.push(await store.storeEvent("s", note(i)));
    expect(await store.getStreamIdForEventId(first)).toBeUndefined();
    await expect(replay(store, first)).rejects.toThrow(/no longer kept/);
    expect((await replay(store, ids[25]!)).got).toEqual([26, 27, 28, 29]);
    // One large event pushes the older ones out.
    const big = await store.storeEvent("s", note(30, 1_500));
    expect(await store.getStreamIdForEventId(ids[25]!)).toBeUndefined();
    expect(await store.getStreamIdForEventId(big)).toBe("s");
  });

  it("answers ids it never issued as unknown, whatever their shape", async () => {
    const store = new SessionEventStore();
    await store.storeEvent("s", note(1));
    for (const id of ["", "_", "x_s", "1_other", "99_s", "1", "-1_s", "1e3_s"])
      expect(await store.getStreamIdForEventId(id)).toBeUndefined();
  });
});
