/**
 * A small FHIR R4 REST client (read, search, instance operation, create, transaction) on an undici
 * connection pool, for the national servers this gateway talks to: the FHIR server behind the
 * Patient Summary and the practitioner registry.
 *
 * Why not fhir-kit-client, the library first chosen for this: it goes through the WHATWG `fetch`
 * (Request, Headers, web streams) on every call. Reading Kenneth's Patient Summary from the sandbox
 * server cost 0.90-0.93 ms of the caller's CPU through it and 0.39-0.40 ms through undici's
 * `request`, measured back to back in one process; the provider does that read on every fetch
 * (bench/README.md).
 *
 * What it promises: a JSON answer parsed (`{}` for an empty 2xx body), or a `FhirHttpError` carrying
 * the HTTP status (any non-2xx, or a body that is not JSON), or the transport's own error (refused,
 * reset, timed out, too large). Callers map those to their stable codes and validate what they
 * read. A GET whose kept-alive connection the server had closed is sent once more; a POST never.
 */
import { Pool } from 'undici';

export const FHIR_JSON = 'application/fhir+json';

export interface FhirRestOptions {
  readonly baseUrl: string;
  /** Whole-request limit: connect, headers and body. */
  readonly timeoutMs: number;
  /** Largest answer read; a bigger one fails the request. */
  readonly maxResponseBytes?: number;
  /** Sockets kept to the server at most (requests beyond wait in the pool's queue). */
  readonly connections?: number;
}

/** The server answered with a status other than 2xx, or with a body that is not JSON. */
export class FhirHttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'FhirHttpError';
    this.status = status;
  }
}

/** Search parameters: a repeated parameter (e.g. `_include`) is an array. */
export type SearchParams = Readonly<Record<string, string | number | readonly string[]>>;

export class FhirRestClient {
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #timeoutMs: number;

  constructor(opts: FhirRestOptions) {
    const url = new URL(opts.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`FHIR base URL must be http(s): ${opts.baseUrl}`);
    if (url.search !== '' || url.hash !== '') throw new Error('FHIR base URL must not carry a query or fragment');
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs;
    this.#pool = new Pool(url.origin, {
      connections: opts.connections ?? 32,
      // Below the idle timeout of common servers (HAPI/Jetty: 30 s), so that we, not they, close an
      // idle connection; a server that sends a Keep-Alive hint is followed (undici).
      keepAliveTimeout: 4_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      maxResponseSize: opts.maxResponseBytes ?? 32 * 1024 * 1024,
    });
  }

  /** `GET [base]/[type]/[id]`. */
  read(resourceType: string, id: string): Promise<unknown> {
    return this.#request('GET', `/${segment(resourceType)}/${segment(id)}`);
  }

  /** `GET [base]/[type]?params`. */
  search(resourceType: string, params: SearchParams): Promise<unknown> {
    return this.#request('GET', `/${segment(resourceType)}${queryOf(params)}`);
  }

  /** `GET [base]/[type]/[id]/$[name]` (an operation without side effects, e.g. Patient/$summary). */
  instanceOperation(resourceType: string, id: string, name: string): Promise<unknown> {
    return this.#request('GET', `/${segment(resourceType)}/${segment(id)}/$${segment(name)}`);
  }

  /** `POST [base]/[type]`. */
  create(resource: { readonly resourceType: string }): Promise<unknown> {
    return this.#request('POST', `/${segment(resource.resourceType)}`, resource);
  }

  /** `POST [base]` with a transaction (or batch) Bundle. */
  transaction(bundle: { readonly resourceType: 'Bundle' }): Promise<unknown> {
    return this.#request('POST', '', bundle);
  }

  /** Closes the pooled connections (pending requests finish first). */
  close(): Promise<void> {
    return this.#pool.close();
  }

  async #request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const send = (): ReturnType<Pool['request']> =>
      this.#pool.request({
        method,
        path: `${this.#basePath}${path}` || '/',
        headers: body === undefined ? { accept: FHIR_JSON } : { accept: FHIR_JSON, 'content-type': FHIR_JSON },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
      });
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await send();
    } catch (e) {
      // A kept-alive connection the server closed just as we reused it: a GET is safe to send once
      // more, on a new connection (within the same time limit). Anything else is the caller's error.
      if (method !== 'GET' || !isClosedConnection(e) || signal.aborted) throw e;
      res = await send();
    }
    // Read to the end whatever the status, so the connection goes back to the pool.
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode > 299) throw new FhirHttpError(res.statusCode, `${method} ${path}: HTTP ${res.statusCode}`);
    // An empty success (e.g. 201 with Prefer: return=minimal) carries no resource.
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FhirHttpError(res.statusCode, `${method} ${path}: the answer is not JSON`);
    }
  }
}

function isClosedConnection(e: unknown): boolean {
  const code = typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

/** One path segment; FHIR types, ids and operation names never need escaping, anything else gets it. */
function segment(s: string): string {
  if (s.length === 0) throw new Error('empty FHIR path segment');
  return encodeURIComponent(s);
}

function queryOf(params: SearchParams): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const item of v as readonly string[]) q.append(k, item);
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
