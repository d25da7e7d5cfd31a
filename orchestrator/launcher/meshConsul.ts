import { join } from "node:path";
import { parseConsulAddresses, type ConsulAddress } from "../../src/consul/address.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul, type DevConsul, type DevConsulOptions } from "../../src/consul/devAgent.ts";
import { MeshError } from "../../src/protocol/errors.ts";

/**
 * The Consul a `mesh up` runs against: the first of its addresses that answers, or one it
 * started itself at the first address (then it keeps it running, see superviseConsul).
 */
export interface MeshConsul {
  /** A client over every address given, in order (as the agents connect). */
  readonly client: ConsulClient;
  /** Every address given, normalised: what the agents and the gateway get as CONSUL_HTTP_ADDR. */
  readonly addresses: readonly string[];
  /** The address in use: the one that answered, or where mesh up started Consul. */
  readonly url: string;
  /** The Consul mesh up started (undefined: one already running); replaced when it is started again. */
  dev: DevConsul | undefined;
  /** How mesh up starts it (again). */
  readonly devOptions: DevConsulOptions | undefined;
  /** Where the Consul mesh up started keeps its data (undefined: in memory, or not ours). */
  readonly dataDir: string | undefined;
  readonly log: string | undefined;
}

/** Where mesh up keeps the data of the Consul it starts on `host:port` under `dataDir` (a server's raft state is tied to its address). */
export function consulDataDir(dataDir: string, host: string, port: number): string {
  return join(dataDir, `${host}-${port}`);
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Reads `--consul` / CONSUL_HTTP_ADDR as the rest of the mesh does: one address, or several
 * comma-separated (the host's own agent first). A bad entry is a CONFIG_INVALID that names it
 * and, for a list, the list it is in.
 */
export function parseAddressList(raw: string): ConsulAddress[] {
  try {
    return parseConsulAddresses(raw);
  } catch (e) {
    if (!raw.includes(",")) throw e;
    throw new MeshError(
      "CONFIG_INVALID",
      `${(e as Error).message} (in the address list "${raw}": give one address, or several separated by commas, the host's own Consul agent first).`,
      { cause: e },
    );
  }
}

/**
 * Finds the Consul to use: the first address that answers with a leader. If none does and the
 * first is on this machine, starts one there (keeping its data under `dataDir` when given);
 * a Consul elsewhere that does not answer is an error, since mesh up cannot start it.
 */
export async function findOrStartConsul(
  addresses: readonly ConsulAddress[],
  o: { token?: string | undefined; dataDir?: string | undefined; logDir: string },
  progress: (line: string) => void,
): Promise<MeshConsul> {
  const client = new ConsulClient({ address: addresses.map((a) => a.url).join(","), token: o.token });
  const urls = addresses.map((a) => a.url);
  try {
    if (await answers(client, addresses[0]!)) {
      const skipped = client.address.url === urls[0] ? "" : ` (${urls[0]} did not answer)`;
      progress(`using the Consul agent already running at ${client.address.url}${skipped}`);
      return {
        client,
        addresses: urls,
        url: client.address.url,
        dev: undefined,
        devOptions: undefined,
        dataDir: undefined,
        log: undefined,
      };
    }
    return { client, addresses: urls, ...(await startHere(addresses[0]!, o, progress)) };
  } catch (e) {
    client.destroy();
    throw e;
  }
}

/**
 * Whether some address answers with a leader. An unreachable list is an error unless its
 * first address is on this machine (then mesh up may start Consul there).
 */
async function answers(client: ConsulClient, first: ConsulAddress): Promise<boolean> {
  let leader = "";
  try {
    leader = await client.leader({ timeoutMs: 1_500 });
  } catch (e) {
    if (!isLoopback(first.host)) throw e;
  }
  if (leader || isLoopback(first.host)) return Boolean(leader);
  throw new MeshError(
    "CONSUL_UNREACHABLE",
    `Consul at ${first.url} has no leader, and it is not on this machine, so mesh up cannot start one there. Start it, or use --consul with a loopback address.`,
  );
}

/** Starts a Consul at `addr` (a loopback address): a single server keeping its data, or an in-memory -dev agent. */
async function startHere(
  addr: ConsulAddress,
  o: { dataDir?: string | undefined; logDir: string },
  progress: (line: string) => void,
): Promise<Pick<MeshConsul, "url" | "dev" | "devOptions" | "dataDir" | "log">> {
  const bindAddress = addr.host === "localhost" ? "127.0.0.1" : addr.host;
  const dataDir = o.dataDir === undefined ? undefined : consulDataDir(o.dataDir, bindAddress, addr.port);
  progress(
    dataDir
      ? `no Consul at ${addr.url}; starting one (a single server keeping its data in ${dataDir})`
      : `no Consul at ${addr.url}; starting a dev agent (consul agent -dev: in memory, nothing kept when it stops)`,
  );
  const binary = await resolveConsulBinary(progress);
  const log = join(o.logDir, "consul.log");
  const devOptions: DevConsulOptions = { bindAddress, httpPort: addr.port, binary, logFile: log, ...(dataDir ? { dataDir } : {}) };
  return { url: addr.url, dev: await startDevConsul(devOptions), devOptions, dataDir, log };
}
