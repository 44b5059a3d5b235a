/**
 * The sender side of data back home: submissions stored durably (encrypted) together with their
 * delivery state in one row, and a worker that delivers them to the patient's country with retries.
 * Safe with several replicas on one PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED and a
 * lease measured in database time, so a crashed worker's claim simply expires.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import type { Db } from '../storage/db.js';
import type { PeerClient } from '../crossborder/peer-client.js';
import { isTransientPeerFailure, PeerRefusedError } from '../crossborder/peer-client.js';
import type { DataKeys } from './data-keys.js';

export type SubmissionStatus = 'queued' | 'delivering' | 'delivered' | 'failed';

export interface SubmissionView {
  readonly trackingId: string;
  readonly status: SubmissionStatus;
  readonly country: string;
  readonly submittedAt: Date;
  readonly attempts: number;
  readonly deliveredAt: Date | null;
  readonly receipt: string | null;
  readonly reason: string | null;
}

export const ReceiptResultSchema = z.object({ receipt: z.string().min(10).max(16 * 1024) }).strict();

const Payload = z.object({ bundle: z.record(z.string(), z.unknown()), hcp: z.string() }).strict();

type Row = {
  tracking_id: string;
  client_id: string;
  idempotency_key: string;
  body_hash: string;
  country: string;
  patient_ref: string;
  submitted_at: Date | string;
  key_id: string | null;
  payload: Buffer | Uint8Array | null;
  status: SubmissionStatus;
  attempts: number | string;
  last_error: string | null;
  receipt_jws: string | null;
  delivered_at: Date | string | null;
};

function view(r: ViewRow): SubmissionView {
  return {
    trackingId: r.tracking_id,
    status: r.status,
    country: r.country,
    submittedAt: new Date(r.submitted_at),
    attempts: Number(r.attempts),
    deliveredAt: r.delivered_at === null ? null : new Date(r.delivered_at),
    receipt: r.receipt_jws,
    reason: r.status === 'failed' ? r.last_error : null,
  };
}

const aadOf = (trackingId: string): string => `ncpeh-submission:${trackingId}`;

/** What `view` and the idempotency check read: not the sealed payload, which only delivery needs. */
const VIEW_COLUMN_NAMES = ['tracking_id', 'body_hash', 'status', 'country', 'submitted_at', 'attempts', 'delivered_at', 'receipt_jws', 'last_error'] as const;
const VIEW_COLUMNS = VIEW_COLUMN_NAMES.join(', ');
type ViewRow = Pick<Row, (typeof VIEW_COLUMN_NAMES)[number]>;

export class SubmissionStore {
  readonly #db: Db;
  readonly #keys: DataKeys;

  constructor(db: Db, keys: DataKeys) {
    this.#db = db;
    this.#keys = keys;
  }

  /**
   * Stores a submission and its delivery state in ONE statement (the row is the outbox entry).
   * The same client and Idempotency-Key with the same body returns the original submission; with a
   * different body it is a conflict, and nothing is stored.
   */
  async submit(input: {
    clientId: string;
    idempotencyKey: string;
    bodyHash: string;
    country: string;
    patientRef: string;
    hcpSubject: string;
    hcpToken: string;
    bundle: Record<string, unknown>;
  }): Promise<{ view: SubmissionView; created: boolean }> {
    const trackingId = randomUUID();
    const { keyId, sealed } = this.#keys.encrypt(Buffer.from(JSON.stringify({ bundle: input.bundle, hcp: input.hcpToken }), 'utf8'), aadOf(trackingId));
    const inserted = await this.#db.query<ViewRow>(
      `INSERT INTO submissions (tracking_id, client_id, idempotency_key, body_hash, country, patient_ref, hcp_subject, key_id, payload, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued')
       ON CONFLICT (client_id, idempotency_key) DO NOTHING
       RETURNING ${VIEW_COLUMNS}`,
      [trackingId, input.clientId, input.idempotencyKey, input.bodyHash, input.country, input.patientRef, input.hcpSubject, keyId, sealed],
    );
    const row = inserted.rows[0];
    if (row !== undefined) return { view: view(row), created: true };
    const existing = await this.#db.query<ViewRow>(`SELECT ${VIEW_COLUMNS} FROM submissions WHERE client_id = $1 AND idempotency_key = $2`, [input.clientId, input.idempotencyKey]);
    const original = existing.rows[0];
    if (original === undefined) throw new GatewayError('storage.unavailable', 'idempotency row vanished', { retryAfter: 1 });
    if (original.body_hash !== input.bodyHash) throw new GatewayError('submission.idempotency-conflict');
    return { view: view(original), created: false };
  }

  /** Only the submitting client may read a submission; anyone else gets "no such submission". */
  async status(trackingId: string, clientId: string): Promise<SubmissionView> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(trackingId)) throw new GatewayError('submission.not-found');
    const { rows } = await this.#db.query<ViewRow>(`SELECT ${VIEW_COLUMNS} FROM submissions WHERE tracking_id = $1 AND client_id = $2`, [trackingId, clientId]);
    const row = rows[0];
    if (row === undefined) throw new GatewayError('submission.not-found');
    return view(row);
  }

  /**
   * Claims due submissions for delivery: not leased (or lease expired), not for a country whose
   * circuit is open, and only the oldest undelivered one per patient reference, so a patient's
   * documents arrive in the order they were submitted.
   *
   * How, so that no backlog makes it expensive (bench/README.md, step 5; each shape measured with
   * and without planner statistics):
   * - the patients that have a due row at all are found first (a backlog waiting for its retry
   *   costs a poll next to nothing); for each, its oldest undelivered row is one probe of the
   *   partial index submissions_pending_heads (LIMIT 1 in submission order). A one-patient backlog
   *   of 10,000 rows: 3-4 ms, where sorting all of them (the form before) cost 6-12 ms and the
   *   per-row "is there an older one" search before that 40-400 ms at 2,000 rows;
   * - those heads are filtered (due, not leased) and the oldest 4 x limit of them taken inside the
   *   same sub-select, so the array the outer query matches against stays small whatever the plan;
   * - the due and lease conditions are repeated on the locked row itself, so that PostgreSQL
   *   re-checks them against its newest version when another replica leased it in the meantime
   *   (READ COMMITTED re-evaluation): a row is never out twice.
   * When other replicas hold all of the 4 x limit oldest heads, a pass claims fewer rows; the next
   * pass sees the rest.
   */
  async claim(limit: number, leaseSeconds: number, skipCountries: readonly string[]): Promise<Row[]> {
    // One statement is one transaction: the rows it locks (SKIP LOCKED) are leased when it commits.
    const { rows } = await this.#db.query<Row>(
      `UPDATE submissions s SET status = 'delivering', lease_until = now() + make_interval(secs => $2), attempts = s.attempts + 1
        WHERE s.tracking_id IN (
          SELECT o.tracking_id
            FROM submissions o
           WHERE o.tracking_id = ANY (ARRAY(
                   SELECT head.tracking_id
                     FROM (SELECT DISTINCT d.country, d.patient_ref
                             FROM submissions d
                            WHERE d.status IN ('queued', 'delivering')
                              AND d.next_attempt_at <= now()
                              AND (d.lease_until IS NULL OR d.lease_until < now())
                              AND NOT (d.country = ANY($3::text[]))) due
                    CROSS JOIN LATERAL (
                           SELECT p.tracking_id, p.submitted_at, p.next_attempt_at, p.lease_until
                             FROM submissions p
                            WHERE p.country = due.country
                              AND p.patient_ref = due.patient_ref
                              AND p.status IN ('queued', 'delivering')
                            ORDER BY p.submitted_at, p.tracking_id
                            LIMIT 1) head
                    WHERE head.next_attempt_at <= now()
                      AND (head.lease_until IS NULL OR head.lease_until < now())
                    ORDER BY head.submitted_at
                    LIMIT $1 * 4))
             AND o.status IN ('queued', 'delivering')
             AND o.next_attempt_at <= now()
             AND (o.lease_until IS NULL OR o.lease_until < now())
             AND NOT (o.country = ANY($3::text[]))
           ORDER BY o.submitted_at
           LIMIT $1
           FOR UPDATE OF o SKIP LOCKED)
        RETURNING s.*`,
      [limit, leaseSeconds, [...skipCountries]],
    );
    return rows;
  }

  decryptPayload(row: Row): { bundle: Record<string, unknown>; hcp: string } {
    if (row.payload === null || row.key_id === null) throw new Error(`submission ${row.tracking_id} has no payload`);
    const plain = this.#keys.decrypt(row.key_id, Buffer.from(row.payload), aadOf(row.tracking_id));
    return Payload.parse(JSON.parse(plain.toString('utf8')));
  }

  /*
   * The three outcomes of a delivery attempt. Each applies only while the attempt still holds its
   * lease: the row is 'delivering' with the attempt count its claim set (a fencing token). A worker
   * that stalled past its lease, while another took the row over, must not set a delivered row
   * back to queued or failed, nor release a row the other worker holds: that would put a document
   * out twice and two of one patient's documents out at once. Each returns whether it applied.
   */
  async markDelivered(lease: Lease, receipt: string): Promise<boolean> {
    const { rowCount } = await this.#db.query(
      "UPDATE submissions SET status = 'delivered', receipt_jws = $3, delivered_at = now(), lease_until = NULL, last_error = NULL WHERE tracking_id = $1 AND status = 'delivering' AND attempts = $2",
      [lease.trackingId, lease.attempts, receipt],
    );
    return rowCount === 1;
  }

  async markRetry(lease: Lease, delaySeconds: number, error: string): Promise<boolean> {
    const { rowCount } = await this.#db.query(
      "UPDATE submissions SET status = 'queued', next_attempt_at = now() + make_interval(secs => $3), lease_until = NULL, last_error = $4 WHERE tracking_id = $1 AND status = 'delivering' AND attempts = $2",
      [lease.trackingId, lease.attempts, delaySeconds, error],
    );
    return rowCount === 1;
  }

  /** Dead letter: kept (never deleted undelivered), flagged failed with the reason. */
  async markFailed(lease: Lease, error: string): Promise<boolean> {
    const { rowCount } = await this.#db.query(
      "UPDATE submissions SET status = 'failed', lease_until = NULL, last_error = $3 WHERE tracking_id = $1 AND status = 'delivering' AND attempts = $2",
      [lease.trackingId, lease.attempts, error],
    );
    return rowCount === 1;
  }

  /** Purges payloads of delivered submissions after the retention window; undelivered data stays. */
  async purgeDelivered(retentionHours: number): Promise<number> {
    const { rowCount } = await this.#db.query(
      "UPDATE submissions SET payload = NULL, key_id = NULL WHERE status = 'delivered' AND payload IS NOT NULL AND delivered_at < now() - make_interval(hours => $1)",
      [retentionHours],
    );
    return rowCount;
  }

  async queueDepth(): Promise<number> {
    const { rows } = await this.#db.query<{ n: string | number }>("SELECT count(*) AS n FROM submissions WHERE status IN ('queued', 'delivering')");
    return Number(rows[0]?.n ?? 0);
  }
}

/** One delivery attempt's hold on a row: its id and the attempt count its claim set. */
export interface Lease {
  readonly trackingId: string;
  readonly attempts: number;
}

export interface WorkerOptions {
  readonly store: SubmissionStore;
  /** Only `call` is used: the delivery is one peer request. */
  readonly peers: Pick<PeerClient, 'call'>;
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  readonly onDelivered?: (row: { trackingId: string; country: string; patientRef: string }, receipt: string) => Promise<void>;
  /** Checks the receipt: signed by the receiving country, for this message and this content. Throws if not. */
  readonly verifyReceipt?: (country: string, receipt: string, expected: { messageId: string; bundle: Record<string, unknown> }) => Promise<void>;
  readonly onDeadLetter?: (row: { trackingId: string; country: string }, reason: string) => void;
  readonly pollMs?: number;
  readonly batch?: number;
  readonly leaseSeconds?: number;
  readonly baseDelaySeconds?: number;
  readonly maxDelaySeconds?: number;
  /** Consecutive transient failures that open a country's circuit, and for how long. */
  readonly breakerThreshold?: number;
  readonly breakerOpenMs?: number;
}

/** Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"). */
export function backoffSeconds(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.max(base, Math.round(ceiling * random()));
}

export class OutboxWorker {
  readonly #o: WorkerOptions;
  readonly #breakers = new Map<string, { failures: number; openUntil: number }>();
  /** The next pass, when one is scheduled: at once (after a pass that found work) or after the poll. */
  #next: { kind: 'immediate'; handle: NodeJS.Immediate } | { kind: 'timer'; handle: NodeJS.Timeout } | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #kicked = false;

  constructor(opts: WorkerOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#stopped = false;
    this.#loop();
  }

  /**
   * One pass, then the next one scheduled. Single flight: there is at most one pass under way and at
   * most one scheduled, whoever calls (start, kick, the schedule itself). Two passes at once would
   * not deliver a row twice (the claim locks), but each would run the claim statement, and a kick per
   * submission would multiply them.
   */
  #loop(): void {
    this.#cancelNext();
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#kicked = true;
      return;
    }
    this.#kicked = false;
    let more = false;
    this.#running = this.runOnce()
      .then((claimed) => {
        // Anything claimed means there may be more due (one patient's documents go one at a time,
        // in order): go again at once, and wait for the poll only when a pass found nothing.
        more = claimed > 0;
      })
      .catch((err: unknown) => this.#o.log.warn({ err }, 'outbox pass failed'))
      .finally(() => {
        this.#running = undefined;
        if (this.#stopped) return;
        if (more || this.#kicked) {
          this.#next = { kind: 'immediate', handle: setImmediate(() => this.#loop()) };
          return;
        }
        const timer = setTimeout(() => this.#loop(), this.#o.pollMs ?? 500);
        timer.unref();
        this.#next = { kind: 'timer', handle: timer };
      });
  }

  #cancelNext(): void {
    const next = this.#next;
    this.#next = undefined;
    if (next?.kind === 'immediate') clearImmediate(next.handle);
    if (next?.kind === 'timer') clearTimeout(next.handle);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelNext();
    await this.#running;
  }

  /** Nudges the worker (e.g. right after a submission) instead of waiting for the next poll. */
  kick(): void {
    if (this.#stopped) return;
    // A pass under way may have claimed before this submission was committed: #loop marks it to go
    // again after that pass. A pass already due at once needs nothing more.
    if (this.#running === undefined && this.#next?.kind === 'immediate') return;
    this.#loop();
  }

  #openCountries(): string[] {
    const now = Date.now();
    return [...this.#breakers.entries()].filter(([, b]) => b.openUntil > now).map(([c]) => c);
  }

  /** One pass: claim due rows, deliver them concurrently (each country's circuit respected). */
  async runOnce(): Promise<number> {
    const rows = await this.#o.store.claim(this.#o.batch ?? 16, this.#o.leaseSeconds ?? 60, this.#openCountries());
    await Promise.all(rows.map((row) => this.#deliver(row)));
    return rows.length;
  }

  #leaseLost(row: { tracking_id: string; country: string; attempts: unknown }, outcome: string): void {
    this.#o.log.warn(
      { trackingId: row.tracking_id, country: row.country, attempts: Number(row.attempts), outcome },
      'delivery attempt outlived its lease; another attempt holds the submission, this outcome is dropped',
    );
  }

  async #deliver(row: Awaited<ReturnType<SubmissionStore['claim']>>[number]): Promise<void> {
    const { store, peers } = this.#o;
    const attempts = Number(row.attempts);
    const lease: Lease = { trackingId: row.tracking_id, attempts };
    try {
      const payload = store.decryptPayload(row);
      const answer = await peers.call(
        row.country,
        '/ncp/v1/documents',
        {
          hcp: payload.hcp,
          ref: row.patient_ref,
          messageId: row.tracking_id,
          submittedAt: new Date(row.submitted_at).toISOString(),
          bundle: payload.bundle,
        },
        ReceiptResultSchema,
      );
      try {
        await this.#o.verifyReceipt?.(row.country, answer.payload.receipt, { messageId: row.tracking_id, bundle: payload.bundle });
      } catch (cause) {
        throw new GatewayError('peer.bad-response', 'receipt does not match the submission', { cause });
      }
      this.#breakers.delete(row.country);
      if (!(await store.markDelivered(lease, answer.payload.receipt))) {
        // The receiver keeps the first delivery of a message id; the attempt that holds the row now
        // gets the same receipt and records it.
        this.#leaseLost(row, 'delivered');
        return;
      }
      await this.#o.onDelivered?.({ trackingId: row.tracking_id, country: row.country, patientRef: row.patient_ref }, answer.payload.receipt);
    } catch (e) {
      const reason = e instanceof PeerRefusedError ? `${e.peerStatus} ${e.peerCode ?? ''}`.trim() : e instanceof GatewayError ? e.code : 'internal error';
      // 409 from the receiver is a conflict of the envelope (e.g. a replayed jti), not of the data:
      // a fresh envelope on the next attempt resolves it.
      const transient = isTransientPeerFailure(e) || (e instanceof PeerRefusedError && e.peerStatus === 409) || !(e instanceof GatewayError);
      if (transient) {
        const b = this.#breakers.get(row.country) ?? { failures: 0, openUntil: 0 };
        b.failures += 1;
        if (b.failures >= (this.#o.breakerThreshold ?? 5)) b.openUntil = Date.now() + (this.#o.breakerOpenMs ?? 30_000);
        this.#breakers.set(row.country, b);
        const delay = backoffSeconds(attempts, this.#o.baseDelaySeconds ?? 1, this.#o.maxDelaySeconds ?? 300);
        if (!(await store.markRetry(lease, delay, reason))) {
          this.#leaseLost(row, reason);
          return;
        }
        this.#o.log.warn({ trackingId: row.tracking_id, country: row.country, attempts, delay, reason }, 'delivery failed; will retry');
      } else {
        if (!(await store.markFailed(lease, reason))) {
          this.#leaseLost(row, reason);
          return;
        }
        this.#o.onDeadLetter?.({ trackingId: row.tracking_id, country: row.country }, reason);
        this.#o.log.error({ trackingId: row.tracking_id, country: row.country, reason }, 'delivery refused permanently; parked as dead letter');
      }
    }
  }
}
