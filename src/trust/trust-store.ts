/**
 * Holds the trust list in force and reloads it (issue 3): at boot, periodically, and on SIGHUP (wired
 * in main.ts). A refused list is logged and reported, and the last good list stays in force; a held
 * list that passes its nextUpdate stops being trusted even if no newer one arrives (fail closed,
 * DESIGN.md section 6).
 */
import { readFile } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { GatewayError, isGatewayError } from '../http/errors.js';
import { isTrustListExpired, parseAnchorKeys, verifyTrustList, type AnchorKey, type TrustList } from './trust-list.js';

/** A signed list is a few kB per country; anything near this is not a trust list. */
export const MAX_TRUST_LIST_BYTES = 1024 * 1024;
const FETCH_TIMEOUT_MS = 10_000;

export type TrustListSource = { readonly file: string } | { readonly url: string; readonly dispatcher?: Dispatcher };

export type LoadOutcome = 'loaded' | 'unchanged' | 'rejected';

export interface TrustListRejection {
  /** `trust-list.invalid` (the document was refused) or `trust-list.unavailable` (it could not be read). */
  readonly code: 'trust-list.invalid' | 'trust-list.unavailable';
  /** Which rule or step refused it; a small fixed set, safe as a metric label. */
  readonly rule: string;
}

interface LogFn {
  (obj: object, msg?: string): void;
}

export interface TrustStoreLogger {
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
}

export interface TrustStoreOptions {
  readonly source: TrustListSource;
  /** Configured anchors, validated here so a bad configuration stops the boot. */
  readonly anchorKeys: readonly unknown[];
  readonly now?: () => Date;
  readonly log: TrustStoreLogger;
  /** Alerting hook (e.g. a prom-client counter labelled by `rule`). */
  readonly onRejected?: (reason: TrustListRejection) => void;
  /** Called with each newly accepted list (e.g. set a sequence gauge, rebuild TLS pins). */
  readonly onChanged?: (list: TrustList) => void;
}

export class TrustStore {
  readonly #source: TrustListSource;
  readonly #anchorKeys: readonly AnchorKey[];
  readonly #now: () => Date;
  readonly #log: TrustStoreLogger;
  readonly #onRejected: ((reason: TrustListRejection) => void) | undefined;
  readonly #onChanged: ((list: TrustList) => void) | undefined;

  #current: TrustList | undefined;
  #running: Promise<LoadOutcome> | undefined;
  #queued: Promise<LoadOutcome> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Bumped by stop(): a refresh chain from before a stop/start must not schedule a second timer. */
  #refreshGeneration = 0;

  constructor(options: TrustStoreOptions) {
    if ('url' in options.source && new URL(options.source.url).protocol !== 'https:') {
      throw new Error('the trust list URL must use https');
    }
    this.#source = options.source;
    this.#anchorKeys = parseAnchorKeys(options.anchorKeys);
    this.#now = options.now ?? (() => new Date());
    this.#log = options.log;
    this.#onRejected = options.onRejected;
    this.#onChanged = options.onChanged;
  }

  /** The list last accepted, even if expired; trust decisions must use `require()`. */
  current(): TrustList | undefined {
    return this.#current;
  }

  /** The list in force; throws `trust-list.unavailable` when none was accepted or the held one expired. */
  require(): TrustList {
    const list = this.#current;
    if (list === undefined) throw new GatewayError('trust-list.unavailable', 'no trust list loaded');
    if (isTrustListExpired(list, this.#now())) throw new GatewayError('trust-list.unavailable', 'trust list expired');
    return list;
  }

  /** For the readiness probe. */
  isReady(): boolean {
    const list = this.#current;
    return list !== undefined && !isTrustListExpired(list, this.#now());
  }

  /**
   * Reads and verifies the source. Safe to call at any time: a call during a load waits for one more
   * load after it (shared by every such caller) rather than joining the one in flight, because that
   * one may have read the source before the change that prompted the call (a SIGHUP after replacing
   * the file). Never rejects.
   */
  load(): Promise<LoadOutcome> {
    if (this.#running === undefined) return this.#start();
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.#start();
    });
    return this.#queued;
  }

  /** Reloads every `intervalMs` after the previous load finished, so loads never overlap. */
  startAutoRefresh(intervalMs: number): void {
    this.stop();
    this.#schedule(intervalMs, this.#refreshGeneration);
  }

  stop(): void {
    this.#refreshGeneration++;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(intervalMs: number, generation: number): void {
    if (generation !== this.#refreshGeneration) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.load().then(() => this.#schedule(intervalMs, generation));
    }, intervalMs);
    // A refresh timer alone must not keep the process alive at shutdown.
    this.#timer.unref();
  }

  #start(): Promise<LoadOutcome> {
    const run = this.#loadOnce().finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #loadOnce(): Promise<LoadOutcome> {
    let text: string;
    try {
      text = await this.#read();
    } catch (e) {
      return this.#reject(
        { code: 'trust-list.unavailable', rule: isGatewayError(e) && e.detail !== undefined ? e.detail : 'read-failed' },
        e,
      );
    }
    const current = this.#current;
    try {
      const result = await verifyTrustList(text.trim(), { anchorKeys: this.#anchorKeys, now: this.#now(), current });
      if (result.unchanged) {
        this.#log.info({ sequence: result.list.sequence }, 'trust list unchanged');
        return 'unchanged';
      }
      // Another load cannot run concurrently (see load()), so `current` is still the baseline here.
      this.#current = result.list;
      this.#log.info(
        { sequence: result.list.sequence, previousSequence: current?.sequence, nextUpdate: result.list.nextUpdate },
        'trust list loaded',
      );
      this.#notify(() => this.#onChanged?.(result.list));
      return 'loaded';
    } catch (e) {
      if (isGatewayError(e) && e.code === 'trust-list.invalid') {
        return this.#reject({ code: e.code, rule: e.detail ?? 'unknown' }, e);
      }
      return this.#reject({ code: 'trust-list.invalid', rule: 'internal' }, e);
    }
  }

  #reject(reason: TrustListRejection, error: unknown): 'rejected' {
    this.#log.error(
      {
        code: reason.code,
        rule: reason.rule,
        // Schema problems name their paths; the list is public data, so they are safe to log.
        problems: isGatewayError(error) && error.expression.length > 0 ? error.expression : undefined,
        cause: errorMessage(isGatewayError(error) ? error.cause : error),
        keptSequence: this.#current?.sequence,
      },
      'trust list refused; keeping the last good list',
    );
    this.#notify(() => this.#onRejected?.(reason));
    return 'rejected';
  }

  /** A throwing hook must not turn a load into an unhandled rejection or undo its outcome. */
  #notify(hook: () => void): void {
    try {
      hook();
    } catch (e) {
      this.#log.warn({ cause: errorMessage(e) }, 'trust list hook failed');
    }
  }

  async #read(): Promise<string> {
    const source = this.#source;
    if ('file' in source) {
      const bytes = await readFile(source.file);
      if (bytes.byteLength > MAX_TRUST_LIST_BYTES) throw new GatewayError('trust-list.unavailable', 'too-large');
      return bytes.toString('utf8');
    }
    return fetchTrustList(source.url, source.dispatcher);
  }
}

/**
 * undici `request` follows no redirects (that needs the redirect interceptor), so a 3xx is refused as
 * a non-200 status: the list must come from the configured URL, not wherever it points.
 */
async function fetchTrustList(url: string, dispatcher: Dispatcher | undefined): Promise<string> {
  const response = await request(url, {
    method: 'GET',
    headers: { accept: 'application/jose, text/plain' },
    headersTimeout: FETCH_TIMEOUT_MS,
    bodyTimeout: FETCH_TIMEOUT_MS,
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    ...(dispatcher === undefined ? {} : { dispatcher }),
  });
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new GatewayError('trust-list.unavailable', 'http-status', { cause: new Error(`HTTP ${response.statusCode}`) });
  }
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_TRUST_LIST_BYTES) {
    response.body.destroy();
    throw new GatewayError('trust-list.unavailable', 'too-large');
  }
  // Counted while streaming: the Content-Length header may be absent or wrong.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.byteLength;
    if (size > MAX_TRUST_LIST_BYTES) {
      response.body.destroy();
      throw new GatewayError('trust-list.unavailable', 'too-large');
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function errorMessage(e: unknown): string | undefined {
  if (e === undefined) return undefined;
  if (e instanceof Error) return e.message;
  return typeof e === 'string' ? e : 'non-Error value thrown';
}
