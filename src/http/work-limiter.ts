/**
 * A bulkhead for the heavy work of a gateway (a Patient Summary is parsed, filtered, signed,
 * encrypted, decrypted and serialised: about a megabyte of short-lived memory and a few ms of CPU
 * each). At most `concurrency` pieces run at once; the rest wait in a bounded queue per key
 * (a peer country), served round-robin so that one busy or hostile caller cannot starve the others.
 * A full queue, or a wait longer than `queueTimeoutMs`, is refused at once with `service.busy`
 * (503, Retry-After), so memory stays bounded whatever the number of open connections.
 *
 * Running more at once than the cores can serve only holds more documents in memory: on the bench
 * (bench/README.md, settings compared within one run) 50 connections took the provider gateway to
 * 300-326 MB resident with no bound and to 215-253 MB with 8 at a time, throughput within noise.
 */
import type { FastifyReply } from 'fastify';
import { GatewayError } from './errors.js';

/**
 * The default bulkheads (config `capacity`): the configuration schema's defaults, and what a
 * PeerClient or the peer routes use when built without one (tests, tools).
 */
export const CAPACITY_DEFAULTS = { concurrency: 8, maxQueuedPerKey: 64, maxQueued: 256, queueTimeoutMs: 4_000 } as const;

export interface WorkLimiterOptions {
  /** Pieces of work running at once (all keys together). */
  readonly concurrency: number;
  /** Pieces waiting per key; one more is refused. 0 = no queue. */
  readonly maxQueuedPerKey: number;
  /** Pieces waiting for all keys together (default: no bound beyond the per-key one). */
  readonly maxQueued?: number;
  /**
   * A piece that waited this long is refused (and never runs). Keep it below the caller's own
   * patience (the API listener's idle timeout, the peer client's header timeout), or the caller
   * hangs up before the refusal can reach it.
   */
  readonly queueTimeoutMs: number;
  /** Seconds for the refusal's Retry-After. */
  readonly retryAfterSeconds?: number;
  /** Called whenever the number running or waiting changes (metrics). */
  readonly onChange?: (running: number, queued: number) => void;
  /** Called for every refusal (metrics). */
  readonly onRefused?: (key: string, reason: Refusal) => void;
}

export type Refusal = 'queue-full' | 'queue-timeout' | 'caller-left';

export interface RunOptions {
  /**
   * Aborted when nobody wants the answer any more (the caller hung up): a piece still waiting
   * leaves the queue at once, and one granted a slot meanwhile is skipped, its slot passing on.
   */
  readonly signal?: AbortSignal | undefined;
}

interface Waiter {
  readonly key: string;
  readonly grant: () => void;
  readonly refuse: (e: GatewayError) => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
}

export class WorkLimiter {
  readonly #opts: WorkLimiterOptions;
  #running = 0;
  #queued = 0;
  /** Waiting pieces per key; the Map's order is the round-robin order of the keys. */
  readonly #queues = new Map<string, Waiter[]>();

  constructor(opts: WorkLimiterOptions) {
    checkOptions(opts);
    this.#opts = opts;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * Refuses now (as `run` would) when a piece for `key` would find no slot and no place in the
   * queue: lets a listener refuse before it reads a request body it could not work on.
   */
  checkRoom(key: string): void {
    if (this.#running >= this.#opts.concurrency && !this.#hasRoom(key)) throw this.#refuse(key, 'queue-full');
  }

  /** Runs `work` when a slot is free (at once if one is), holding the slot until it settles. */
  async run<T>(key: string, work: () => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const left = (): boolean => opts.signal?.aborted === true;
    if (left()) throw this.#refuse(key, 'caller-left');
    if (this.#running < this.#opts.concurrency) {
      this.#running++;
      this.#changed();
    } else {
      // On grant, the slot is handed over by the piece that finished: #running already counts it.
      await this.#wait(key, opts.signal);
    }
    try {
      // The caller may have left in the moment between the grant and now.
      if (left()) throw this.#refuse(key, 'caller-left');
      return await work();
    } finally {
      this.#release();
    }
  }

  #hasRoom(key: string): boolean {
    const perKey = this.#queues.get(key)?.length ?? 0;
    return perKey < this.#opts.maxQueuedPerKey && this.#queued < (this.#opts.maxQueued ?? Number.POSITIVE_INFINITY);
  }

  #wait(key: string, signal: AbortSignal | undefined): Promise<void> {
    if (!this.#hasRoom(key)) return Promise.reject(this.#refuse(key, 'queue-full'));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        key,
        grant: () => {
          clearTimeout(waiter.timer);
          if (waiter.onAbort !== undefined) signal?.removeEventListener('abort', waiter.onAbort);
          resolve();
        },
        refuse: (e) => {
          clearTimeout(waiter.timer);
          if (waiter.onAbort !== undefined) signal?.removeEventListener('abort', waiter.onAbort);
          this.#remove(waiter);
          reject(e);
        },
        timer: undefined,
        onAbort: undefined,
      };
      waiter.timer = setTimeout(() => waiter.refuse(this.#refuse(key, 'queue-timeout')), this.#opts.queueTimeoutMs);
      if (signal !== undefined) {
        waiter.onAbort = () => waiter.refuse(this.#refuse(key, 'caller-left'));
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      const queue = this.#queues.get(key);
      if (queue === undefined) this.#queues.set(key, [waiter]);
      else queue.push(waiter);
      this.#queued++;
      this.#changed();
    });
  }

  /** A finished piece hands its slot to the next waiter, taking keys in turn; else frees it. */
  #release(): void {
    const next = this.#takeNext();
    if (next === undefined) this.#running--;
    else next.grant();
    this.#changed();
  }

  #takeNext(): Waiter | undefined {
    for (const [key, queue] of this.#queues) {
      const waiter = queue.shift();
      // The key goes to the end of the order (or leaves it when it has nobody left waiting).
      this.#queues.delete(key);
      if (queue.length > 0) this.#queues.set(key, queue);
      if (waiter !== undefined) {
        this.#queued--;
        return waiter;
      }
    }
    return undefined;
  }

  #remove(waiter: Waiter): void {
    const queue = this.#queues.get(waiter.key);
    const at = queue?.indexOf(waiter) ?? -1;
    if (queue === undefined || at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.#queues.delete(waiter.key);
    this.#queued--;
    this.#changed();
  }

  #refuse(key: string, reason: Refusal): GatewayError {
    try {
      this.#opts.onRefused?.(key, reason);
    } catch {
      // Metrics must never decide the outcome of a request.
    }
    const detail = { 'queue-full': 'queue full', 'queue-timeout': 'waited too long', 'caller-left': 'the caller left while queued' }[reason];
    return new GatewayError('service.busy', detail, { retryAfter: this.#opts.retryAfterSeconds ?? 1 });
  }

  #changed(): void {
    try {
      this.#opts.onChange?.(this.#running, this.#queued);
    } catch {
      // As above: the counts stay right whatever a metrics callback does.
    }
  }
}

function checkOptions(opts: WorkLimiterOptions): void {
  if (!Number.isSafeInteger(opts.concurrency) || opts.concurrency < 1) throw new RangeError('concurrency must be a positive integer');
  if (!Number.isSafeInteger(opts.maxQueuedPerKey) || opts.maxQueuedPerKey < 0) throw new RangeError('maxQueuedPerKey must be a non-negative integer');
  if (opts.maxQueued !== undefined && (!Number.isSafeInteger(opts.maxQueued) || opts.maxQueued < 0)) throw new RangeError('maxQueued must be a non-negative integer');
  // setTimeout takes at most 2^31 - 1 ms; more would fire at once.
  if (!Number.isFinite(opts.queueTimeoutMs) || opts.queueTimeoutMs <= 0 || opts.queueTimeoutMs > 2 ** 31 - 1) throw new RangeError('queueTimeoutMs must be positive and below 2^31 ms');
}

/** One WorkLimiter per key, each with its own slots: a slow peer country holds only its own. */
export class KeyedWorkLimiters {
  readonly #opts: WorkLimiterOptions;
  readonly #limiters = new Map<string, WorkLimiter>();
  readonly #onChange: ((key: string, running: number, queued: number) => void) | undefined;

  constructor(opts: Omit<WorkLimiterOptions, 'onChange'> & { onChange?: (key: string, running: number, queued: number) => void }) {
    const { onChange, ...rest } = opts;
    this.#opts = rest;
    this.#onChange = onChange;
    // Fail at construction, not at the first request.
    checkOptions(rest);
  }

  run<T>(key: string, work: () => Promise<T>, opts?: RunOptions): Promise<T> {
    let limiter = this.#limiters.get(key);
    if (limiter === undefined) {
      const onChange = this.#onChange;
      limiter = new WorkLimiter({ ...this.#opts, ...(onChange === undefined ? {} : { onChange: (r, q) => onChange(key, r, q) }) });
      this.#limiters.set(key, limiter);
    }
    return limiter.run(key, work, opts);
  }
}

/** Aborted when the connection closes before the answer to `reply` was sent (the caller left). */
export function callerLeft(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  if (res.socket?.destroyed === true) controller.abort();
  else res.once('close', () => (res.writableFinished ? undefined : controller.abort()));
  return controller.signal;
}
