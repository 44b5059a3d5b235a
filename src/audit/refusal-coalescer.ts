/**
 * Audit records for refusals that an unauthenticated party can cause at will: a TLS handshake the
 * peer listener refuses costs the caller a few bytes, and each one was a `serious` record in the
 * audit log (a database write and a Merkle leaf, kept for as long as the log is kept). Flooding the
 * listener with bad handshakes then grew the log and loaded its database without bound.
 *
 * Per (reason, remote address) and window: the first refusal is written at once, as before; the
 * ones after it in the same window are counted, and one record with the count is written when the
 * window ends. So every refusal is accounted for, and an unauthenticated source writes at most two
 * records per reason and window. The number of sources tracked in a window is bounded too; beyond
 * it, refusals from new sources are counted together under one key (address `various`), which also
 * gets a first record and a summary. Counters in metrics still see every refusal.
 */

export interface Refusal {
  /** A short code with no content taken from the caller (e.g. OpenSSL's CERT_HAS_EXPIRED). */
  readonly reason: string;
  readonly remoteAddress: string;
  /** 0 for the first refusal of a window; otherwise how many more came in the window just ended. */
  readonly repeated: number;
  /** The window's length, for the summary's wording. */
  readonly windowMs: number;
}

export interface RefusalCoalescerOptions {
  readonly windowMs: number;
  /** Distinct (reason, address) pairs tracked per window; new pairs beyond it share one key. */
  readonly maxSources: number;
  /** Writes one audit record (and whatever log line goes with it). Its failures go to `onError`. */
  readonly write: (refusal: Refusal) => Promise<void>;
  readonly onError: (error: unknown) => void;
}

/** The address refusals from sources beyond `maxSources` are counted under. */
export const VARIOUS_ADDRESSES = 'various';

interface Window {
  reason: string;
  remoteAddress: string;
  more: number;
}

export class RefusalCoalescer {
  readonly #opts: RefusalCoalescerOptions;
  #window = new Map<string, Window>();
  #timer: NodeJS.Timeout | undefined;
  readonly #writes = new Set<Promise<void>>();

  constructor(opts: RefusalCoalescerOptions) {
    if (!Number.isFinite(opts.windowMs) || opts.windowMs < 1) throw new RangeError('windowMs must be positive');
    if (!Number.isSafeInteger(opts.maxSources) || opts.maxSources < 1) throw new RangeError('maxSources must be a positive integer');
    this.#opts = opts;
  }

  /** One refusal: written now if it is the first of its source in this window, else counted. */
  refuse(reason: string, remoteAddress: string): void {
    let key = `${reason}\n${remoteAddress}`;
    let address = remoteAddress;
    if (!this.#window.has(key) && this.#window.size >= this.#opts.maxSources) {
      key = `${reason}\n${VARIOUS_ADDRESSES}`;
      address = VARIOUS_ADDRESSES;
    }
    const known = this.#window.get(key);
    if (known !== undefined) {
      known.more += 1;
      return;
    }
    this.#window.set(key, { reason, remoteAddress: address, more: 0 });
    this.#write({ reason, remoteAddress: address, repeated: 0, windowMs: this.#opts.windowMs });
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.#opts.windowMs).unref();
  }

  /** Ends the window: one record per source that refused more than once in it. */
  flush(): void {
    const ended = this.#window;
    this.#window = new Map();
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    for (const w of ended.values()) {
      if (w.more > 0) this.#write({ reason: w.reason, remoteAddress: w.remoteAddress, repeated: w.more, windowMs: this.#opts.windowMs });
    }
  }

  /** Ends the window and waits for every record written so far (on shutdown, before the database closes). */
  async close(): Promise<void> {
    this.flush();
    await Promise.all([...this.#writes]);
  }

  #write(refusal: Refusal): void {
    const p = this.#opts
      .write(refusal)
      .catch((e: unknown) => this.#opts.onError(e))
      .finally(() => this.#writes.delete(p));
    this.#writes.add(p);
  }
}

/** `outcomeDesc` of the audit record: `tls:<reason>`, and for a summary how many more and over what time. */
export function refusalDescription(prefix: string, r: Refusal): string {
  return r.repeated === 0 ? `${prefix}${r.reason}` : `${prefix}${r.reason} x${r.repeated} more within ${Math.round(r.windowMs / 1000)} s`;
}
