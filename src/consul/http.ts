import { Agent, request, type Dispatcher } from "undici";
import type { ConsulAddress } from "./address.ts";

/** TLS for Consul's HTTPS API, as Consul's own CLI takes it (CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY, ...). */
export interface ConsulTls {
  /** PEM of the CA(s) that signed Consul's certificate (CONSUL_CACERT / CONSUL_CAPATH). Default: the system's. */
  ca?: string;
  /** PEM client certificate and key, when Consul verifies incoming connections (CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY). */
  cert?: string;
  key?: string;
  /** False skips verifying Consul's certificate (CONSUL_HTTP_SSL_VERIFY=false): for a test set-up only. @default true */
  verify?: boolean;
  /** The name Consul's certificate must carry, when it differs from the host (CONSUL_TLS_SERVER_NAME). */
  serverName?: string;
}

export interface HttpRequest {
  method: "GET" | "PUT" | "DELETE";
  /** Path under /v1, e.g. `/kv/toolmesh/x`. */
  path: string;
  query?: Record<string, string | true | undefined>;
  body?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON, or the text when it is not JSON. */
  body: unknown;
  text: string;
  /** The address that answered. */
  address: ConsulAddress;
}

/**
 * Why a request got no HTTP answer. "not-sent": no connection was made, so Consul cannot have
 * acted on it (refused, no route, unknown host, connect timeout): safe to send anywhere again.
 * "unknown": the connection broke or timed out after the request went out; a write may have
 * been applied.
 */
export class TransportFailure extends Error {
  override readonly name = "TransportFailure";
  readonly kind: "not-sent" | "unknown";
  readonly code: string;
  readonly address: ConsulAddress;

  constructor(kind: "not-sent" | "unknown", code: string, address: ConsulAddress, cause: unknown) {
    super(`${code} from ${address.url}`, { cause });
    this.kind = kind;
    this.code = code;
    this.address = address;
  }
}

/** Errors meaning the request never reached a Consul process. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
]);

/** How long a connection attempt to one Consul address may take before the next is tried. @default 2000 */
export const CONSUL_CONNECT_TIMEOUT_MS = 2_000;

/**
 * Consul's HTTP API on one or more addresses (CONSUL_HTTP_ADDR, comma-separated). The first
 * is the one to use (the host's own Consul agent); the others are tried, in order, only when
 * a request cannot reach it at all (nothing was sent, so nothing can be applied twice). The
 * address that answered last is kept for the next request.
 */
export class ConsulHttp {
  readonly addresses: readonly ConsulAddress[];
  private readonly dispatchers: Dispatcher[];
  private readonly headers: Record<string, string>;
  private current = 0;

  constructor(addresses: readonly ConsulAddress[], options: { token?: string; tls?: ConsulTls } = {}) {
    this.addresses = addresses;
    this.headers = options.token ? { "x-consul-token": options.token } : {};
    const tls = options.tls ?? {};
    this.dispatchers = addresses.map(
      (a) =>
        new Agent({
          connectTimeout: CONSUL_CONNECT_TIMEOUT_MS,
          // Long blocking queries share the pool with short calls.
          connections: 64,
          ...(a.secure
            ? {
                connect: {
                  ...(tls.ca ? { ca: tls.ca } : {}),
                  ...(tls.cert ? { cert: tls.cert } : {}),
                  ...(tls.key ? { key: tls.key } : {}),
                  rejectUnauthorized: tls.verify ?? true,
                  ...(tls.serverName ? { servername: tls.serverName } : {}),
                },
              }
            : {}),
        }),
    );
  }

  /** The address requests go to now. */
  get active(): ConsulAddress {
    return this.addresses[this.current]!;
  }

  /**
   * Sends one request: to the active address, then (only when it could not be reached) to each
   * other address once. Throws TransportFailure when none answered; an abort of `signal`
   * rethrows its reason.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    let last: TransportFailure | undefined;
    for (let tried = 0; tried < this.addresses.length; tried++) {
      const i = (this.current + tried) % this.addresses.length;
      try {
        const res = await this.sendTo(i, req);
        this.current = i;
        return res;
      } catch (e) {
        if (!(e instanceof TransportFailure) || e.kind !== "not-sent") throw e;
        last = e;
      }
    }
    throw last!;
  }

  private async sendTo(i: number, req: HttpRequest): Promise<HttpResponse> {
    const address = this.addresses[i]!;
    const url = new URL(`${address.url}/v1${req.path}`);
    for (const [k, v] of Object.entries(req.query ?? {})) {
      if (v === undefined) continue;
      url.searchParams.set(k, v === true ? "" : v);
    }
    const timeout = AbortSignal.timeout(req.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    const body = req.body === undefined ? undefined : typeof req.body === "string" ? req.body : JSON.stringify(req.body);
    try {
      const res = await request(url, {
        method: req.method,
        headers: { ...this.headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body } : {}),
        signal,
        dispatcher: this.dispatchers[i]!,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const text = await res.body.text();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(",") : v;
      return { status: res.statusCode, headers, body: parse(text), text, address };
    } catch (e) {
      if (req.signal?.aborted) throw req.signal.reason;
      if (timeout.aborted) throw new TransportFailure("unknown", "ETIMEDOUT", address, e);
      const code = errorCode(e);
      throw new TransportFailure(NOT_SENT.has(code) ? "not-sent" : "unknown", code, address, e);
    }
  }

  /** Closes every connection so the process can exit. */
  destroy(): void {
    for (const d of this.dispatchers) void d.destroy().catch(() => undefined);
  }
}

function errorCode(e: unknown): string {
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 4; depth++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === "string") return c;
    cur = (cur as { cause?: unknown }).cause;
  }
  return (e as { message?: string } | undefined)?.message ?? String(e);
}

function parse(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
