import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import { agentServerFactory } from "../../src/agent/server.ts";
import type { AgentDefinition, AgentRuntime } from "../../src/agent/definition.ts";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import { silentLogger } from "../../src/logger.ts";
import { MemoryState } from "../../src/state/sharedState.ts";

/** A runtime for an agent with no Consul and no network: memory state, a mesh that must not be called. */
export function testRuntime(mesh?: MeshCaller): AgentRuntime {
  return {
    logger: silentLogger,
    consul: undefined,
    state: new MemoryState(),
    mesh: mesh ?? {
      callTool: () => Promise.reject(new Error("this test's agent has no mesh")),
      close: async () => {},
    },
    notify: { toolsChanged() {}, promptsChanged() {}, resourcesChanged() {}, resourceUpdated() {} },
    addTool() {
      throw new Error("addTool is not used in this test");
    },
  };
}

/** A v2 SDK client on an in-memory pair with the server the kit builds for `def` (same tools, same pipeline as over HTTP). */
export async function connectInMemory<D>(def: AgentDefinition<D>, deps: D): Promise<Client> {
  const server = agentServerFactory({ def, deps, logger: silentLogger })();
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "in-memory-test", version: "1" });
  await server.connect(b);
  await client.connect(a);
  return client;
}
