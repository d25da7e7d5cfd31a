import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { MeshError } from "../protocol/errors.ts";
import { DEFAULT_CONSUL_ADDR, parseConsulAddresses } from "./address.ts";
import { parseDurationMs, type ConsulClientOptions } from "./client.ts";
import type { ConsulTls } from "./http.ts";

/** What a command line may say instead of the environment (flags win). */
export interface ConsulFlags {
  /** --consul */
  address?: string | undefined;
  /** --token */
  token?: string | undefined;
}

const bool = z
  .string()
  .regex(/^(1|0|true|false|yes|no|on|off)$/i, "expected true or false")
  .transform((v) => /^(1|true|yes|on)$/i.test(v));

/**
 * How every toolmesh process connects to Consul, read once from Consul's own variables (the
 * ones its CLI reads, so one environment serves both):
 * - CONSUL_HTTP_ADDR: the host's Consul agent (host:port, http(s)://host:port), or several,
 *   comma-separated, tried in order when the first cannot be reached. @default http://127.0.0.1:8500
 * - CONSUL_HTTP_SSL=true: https for an address given without a scheme.
 * - CONSUL_CACERT / CONSUL_CAPATH: CA certificate file / directory of PEM files for Consul's certificate.
 * - CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY: a client certificate (when Consul has verify_incoming).
 * - CONSUL_HTTP_SSL_VERIFY=false: do not verify Consul's certificate (test set-ups only).
 * - CONSUL_TLS_SERVER_NAME: the name Consul's certificate carries, when not the address's host.
 * - CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE: the ACL token.
 * - MESH_CONSUL_RETRY_MS: how long requests that need Consul's leader are retried (DEFAULT_CONSUL_RETRY_MS).
 * - MESH_CONSUL_MAX_STALE: how stale a discovery read may be (DEFAULT_MAX_STALE).
 * A file that cannot be read or a malformed value is a CONFIG_INVALID naming its variable.
 */
export function consulSettings(flags: ConsulFlags = {}, env: NodeJS.ProcessEnv = process.env): ConsulClientOptions {
  const ssl = parse("CONSUL_HTTP_SSL", bool, env);
  const verify = parse("CONSUL_HTTP_SSL_VERIFY", bool, env);
  const raw = flags.address ?? nonEmpty(env["CONSUL_HTTP_ADDR"]) ?? DEFAULT_CONSUL_ADDR;
  const address = ssl
    ? raw
        .split(",")
        .map((a) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(a.trim()) ? a.trim() : `https://${a.trim()}`))
        .join(",")
    : raw;
  parseConsulAddresses(address); // a clear CONFIG_INVALID now rather than at the first request
  const token = flags.token ?? nonEmpty(env["CONSUL_HTTP_TOKEN"]) ?? fileText("CONSUL_HTTP_TOKEN_FILE", env)?.trim();
  const ca = fileText("CONSUL_CACERT", env) ?? caDir(env);
  const cert = fileText("CONSUL_CLIENT_CERT", env);
  const key = fileText("CONSUL_CLIENT_KEY", env);
  if ((cert === undefined) !== (key === undefined)) {
    throw new MeshError(
      "CONFIG_INVALID",
      "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together: set both (a client certificate and its key) or neither.",
    );
  }
  const serverName = nonEmpty(env["CONSUL_TLS_SERVER_NAME"]);
  const tls: ConsulTls = {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(verify !== undefined ? { verify } : {}),
    ...(serverName ? { serverName } : {}),
  };
  const retry = nonEmpty(env["MESH_CONSUL_RETRY_MS"]);
  if (retry !== undefined && !/^\d+$/.test(retry)) {
    throw new MeshError("CONFIG_INVALID", `MESH_CONSUL_RETRY_MS is "${retry}"; expected a whole number of milliseconds (0: never retry).`);
  }
  const maxStale = nonEmpty(env["MESH_CONSUL_MAX_STALE"]);
  if (maxStale !== undefined) parseDurationMs(maxStale);
  return Object.freeze({
    address,
    ...(token ? { token } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
    ...(retry !== undefined ? { retryMs: Number(retry) } : {}),
    ...(maxStale !== undefined ? { maxStale } : {}),
  });
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === "" ? undefined : v;
}

function parse<T>(name: string, schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T | undefined {
  const v = nonEmpty(env[name]);
  if (v === undefined) return undefined;
  const r = schema.safeParse(v.trim());
  if (!r.success) throw new MeshError("CONFIG_INVALID", `${name} is "${v}"; ${r.error.issues[0]?.message ?? "invalid"}.`);
  return r.data;
}

function fileText(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const path = nonEmpty(env[name]);
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new MeshError("CONFIG_INVALID", `${name} names ${path}, which cannot be read: ${(e as Error).message}.`, { cause: e });
  }
}

function caDir(env: NodeJS.ProcessEnv): string | undefined {
  const dir = nonEmpty(env["CONSUL_CAPATH"]);
  if (dir === undefined) return undefined;
  try {
    const pems = readdirSync(dir)
      .filter((f) => /\.(pem|crt)$/i.test(f))
      .map((f) => readFileSync(join(dir, f), "utf8"));
    if (pems.length === 0) throw new Error("it holds no .pem or .crt file");
    return pems.join("\n");
  } catch (e) {
    throw new MeshError("CONFIG_INVALID", `CONSUL_CAPATH names ${dir}, which cannot be read: ${(e as Error).message}.`, { cause: e });
  }
}
