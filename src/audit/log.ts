/**
 * The tamper-evident audit log (DESIGN.md flow 6, issue 7): an append-only table whose rows are the
 * leaves of an RFC 9162 Merkle tree, signed checkpoints (tree heads) of it, inclusion and
 * consistency proofs read from the database, and the witness records of peers' checkpoints.
 *
 * Correctness never depends on this process: an append is one INSERT that writes only where the
 * log ends (the primary key and a max(seq) guard in the same statement keep indices gap-free across
 * replicas, see `#insertContiguous`), appends waiting together share that statement (group commit),
 * and the in-memory tree is only a cache of committed rows, checked against the database before a
 * proof is served from it because other replicas append too.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { z } from 'zod';
import {
  checkCompactShape,
  checkHeaderAllowlist,
  checkKidKnown,
  checkSignature,
  checkType,
  signCompact,
  type JwksLike,
  type SigningKey,
} from '../crossborder/envelope.js';
import { GatewayError } from '../http/errors.js';
import type { Db, Queryable } from '../storage/db.js';
import { isConnectionFailure, isStorageUnavailable } from '../storage/errors.js';
import { canonicalJson, EMPTY_ROOT, HASH_BYTES, leafHash, MerkleTree, verifyConsistency } from './merkle.js';

export const CHECKPOINT_TYP = 'ncpeh-checkpoint+jws';

/**
 * pg_advisory_xact_lock key for witness records, shared by every replica on one database. An
 * arbitrary constant ("ncpw" in ASCII), distinct from the migration lock.
 */
const WITNESS_LOCK_KEY = 0x6e637077;

/**
 * How long this process trusts its cached newest witness of a peer before reading the database
 * again. Other replicas witness too: a peer rolled back to a checkpoint this replica saw last is
 * then caught here within this time, and at once by a replica that saw a newer one.
 */
const WITNESS_CACHE_MS = 5_000;

/** Most events written by one group-commit statement. */
const MAX_BATCH_EVENTS = 256;
/** Times an append re-reads the log's end after another replica appended first. */
const MAX_APPEND_ATTEMPTS = 20;

/**
 * Inserts a batch at consecutive indices, only if the log still ends right before the first one
 * ($2 = first - 1). The subquery does not depend on the rows, so all of them go in or none.
 */
const INSERT_CONTIGUOUS = `INSERT INTO audit_log (seq, recorded_at, patient_key, event, leaf_hash)
SELECT r.seq, r.recorded_at, r.patient_key, r.event, decode(r.leaf_hash, 'hex')
  FROM jsonb_to_recordset($1::jsonb) AS r(seq int8, recorded_at timestamptz, patient_key text, leaf_hash text, event jsonb)
 WHERE (SELECT coalesce(max(seq), -1) FROM audit_log) = $2::int8`;

function isUniqueViolation(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === '23505';
}

const MAX_CHECKPOINT_CHARS = 16 * 1024;
/** Rows read per round trip when the cache catches up; bounds memory per query, not in total. */
const SYNC_BATCH = 10_000;

// ---------------------------------------------------------------------------------------------
// Types

/** A FHIR AuditEvent from `buildAuditEvent`, or any plain JSON object. */
export type AuditEventJson = AuditEvent | Readonly<Record<string, unknown>>;

export interface AppendResult {
  seq: number;
  leafHash: Buffer;
}

export interface Checkpoint {
  treeSize: number;
  rootHash: Buffer;
  signedAt: Date;
  jws: string;
}

/** The claims a checkpoint JWS carries. `rootHash` is standard base64, `timestamp` epoch ms. */
export interface CheckpointClaims {
  treeSize: number;
  rootHash: string;
  timestamp: number;
  ncpId: string;
}

export interface InclusionProof {
  seq: number;
  treeSize: number;
  leafHash: Buffer;
  rootHash: Buffer;
  proof: Buffer[];
}

export interface PatientEvent {
  seq: number;
  recordedAt: Date;
  /** As stored: the AuditEvent, with `id` = seq. */
  event: Record<string, unknown>;
}

export interface WitnessInput {
  checkpointJws: string;
  /** Consistency proof (standard base64 hashes) from `fromSize` to the checkpoint's tree size. */
  consistencyProof?: readonly string[];
  /** The size the proof starts from; must be the size we last witnessed for that peer. */
  fromSize?: number;
  /**
   * The size our request asked the proof to start from (`auditFrom`). A proof from another size
   * than the one asked is refused: the peer never chooses where consistency is proven from.
   */
  askedFrom?: number;
}

export interface WitnessRecord {
  peerCountry: string;
  treeSize: number;
  rootHash: Buffer;
  receivedAt: Date;
  /** False when the checkpoint was already witnessed (same size, same root): nothing stored. */
  stored: boolean;
}

export interface CheckpointSchedule {
  /** Checkpoint once this many entries were appended since the latest checkpoint. */
  everyEntries: number;
  /** ... or once this much time passed since the latest checkpoint, if anything was appended. */
  everyMs: number;
  signingKey?: SigningKey;
  /** Background failures (database down, ...) go here; the next tick retries. */
  onError?: (error: unknown) => void;
}

export interface AuditLogOptions {
  /** Our NCP id, written into every checkpoint. */
  ncpId: string;
  /** How long a witnessed peer head is trusted from memory before the database is read again (default 5 s). */
  witnessCacheMs?: number;
  /** Default key for `checkpoint()` and the scheduler. */
  signingKey?: SigningKey;
  now?: () => Date;
}

/** Why a peer checkpoint was refused by `recordWitness`. */
export type WitnessRefusal = 'rollback' | 'fork' | 'proof-missing' | 'proof-invalid' | 'wrong-issuer';

/**
 * A peer's checkpoint that cannot extend what we witnessed before: a smaller tree (rollback), a
 * different root at the same size (fork), or a missing or failing consistency proof (rewrite).
 */
export class WitnessRefusedError extends GatewayError {
  readonly reason: WitnessRefusal;

  constructor(reason: WitnessRefusal, detail: string) {
    super('peer.bad-response', detail);
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** bigint columns: pg returns strings, PGlite numbers (or bigints); all become safe integers. */
export function toSafeInteger(value: unknown, what: string): number {
  const n = typeof value === 'bigint' || typeof value === 'string' || typeof value === 'number' ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`${what} is not a safe integer`);
  return n;
}

/** bytea columns: pg returns Buffer, PGlite Uint8Array. */
export function toBuffer(value: unknown, what: string): Buffer {
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw new Error(`${what} is not bytea`);
}

function toDate(value: unknown, what: string): Date {
  const d = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (d === undefined || Number.isNaN(d.getTime())) throw new Error(`${what} is not a timestamp`);
  return d;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Strict standard base64 of exactly one 32-byte hash. */
export function decodeHash(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === HASH_BYTES && bytes.toString('base64') === text ? bytes : undefined;
}

export function splitHashes(concatenated: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + HASH_BYTES <= concatenated.length; i += HASH_BYTES) out.push(concatenated.subarray(i, i + HASH_BYTES));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint JWS

const checkpointClaimsSchema = z.strictObject({
  treeSize: z.int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  rootHash: z.string(),
  timestamp: z.int().nonnegative(),
  ncpId: z.string().min(1).max(256),
});

export interface VerifiedCheckpoint {
  claims: CheckpointClaims;
  rootHash: Buffer;
  kid: string;
}

/**
 * Verifies a checkpoint JWS with the envelope's one-rule checks, in order: compact shape, header
 * allowlist (ES256 only, no embedded keys), `typ` ncpeh-checkpoint+jws (so no other signed object
 * of ours can pass as a tree head), kid among `keys`, signature, claims shape, root hash 32 bytes.
 */
export async function verifyCheckpointJws(jws: string, keys: JwksLike): Promise<VerifiedCheckpoint> {
  const token = checkCompactShape(jws, MAX_CHECKPOINT_CHARS);
  checkHeaderAllowlist(token.header);
  checkType(token.header, CHECKPOINT_TYP);
  const signer = checkKidKnown(token.header, keys);
  const payload = await checkSignature(token, signer);
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new GatewayError('envelope.malformed', 'checkpoint claims are not JSON');
  }
  const parsed = checkpointClaimsSchema.safeParse(json);
  if (!parsed.success) throw new GatewayError('envelope.malformed', 'checkpoint claims do not match {treeSize, rootHash, timestamp, ncpId}');
  const rootHash = decodeHash(parsed.data.rootHash);
  if (rootHash === undefined) throw new GatewayError('envelope.malformed', 'checkpoint rootHash is not a base64 SHA-256 hash');
  return { claims: parsed.data, rootHash, kid: signer.kid };
}

/** Reads a checkpoint's claims WITHOUT verifying the signature (for cross-checking stored columns). */
export function unverifiedCheckpointClaims(jws: string): CheckpointClaims | undefined {
  const payload = jws.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const parsed = checkpointClaimsSchema.safeParse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function signCheckpoint(key: SigningKey, claims: CheckpointClaims): Promise<string> {
  return signCompact(key, CHECKPOINT_TYP, { ...claims });
}

// ---------------------------------------------------------------------------------------------
// The log

interface LeafRow {
  [column: string]: unknown;
  seq: unknown;
  leaf_hash: unknown;
}

interface CheckpointRow {
  [column: string]: unknown;
  tree_size: unknown;
  root_hash: unknown;
  signed_at: unknown;
  jws: string;
}

function checkpointFromRow(row: CheckpointRow): Checkpoint {
  return {
    treeSize: toSafeInteger(row.tree_size, 'tree_size'),
    rootHash: toBuffer(row.root_hash, 'root_hash'),
    signedAt: toDate(row.signed_at, 'signed_at'),
    jws: row.jws,
  };
}

function recordedAtOf(event: Readonly<Record<string, unknown>>, fallback: Date): Date {
  const recorded = event['recorded'];
  if (typeof recorded === 'string') {
    const d = new Date(recorded);
    if (!Number.isNaN(d.getTime())) return d;
  }
  return fallback;
}

export interface AppendItem {
  event: AuditEventJson;
  patientKey?: string | undefined;
}

interface PendingAppend {
  items: readonly AppendItem[];
  resolve: (results: AppendResult[]) => void;
  reject: (error: unknown) => void;
}

/** What this process last witnessed from one peer (a cache of the newest audit_witness row). */
interface WitnessedHead {
  treeSize: number;
  rootHash: Buffer;
  /** The checkpoint JWS and its issuer, when we verified it ourselves; an identical one needs no second look. */
  jws?: string;
  ncpId?: string;
  /** When the database last confirmed this head (Date.now()); older than WITNESS_CACHE_MS is re-read. */
  confirmedAt: number;
}

export class AuditLog {
  readonly #db: Db;
  readonly #ncpId: string;
  readonly #signingKey: SigningKey | undefined;
  readonly #now: () => Date;
  readonly #witnessCacheMs: number;
  /** Cache of committed leaf hashes: our own appends extend it, and it is checked against (or topped up from) the database before a proof is served. */
  #tree = new MerkleTree();
  #syncing: Promise<void> | undefined;
  #schedule: { stop: () => void; kick: () => void; everyEntries: number } | undefined;
  /** Appends waiting for the writer, and whether it runs. */
  #pending: PendingAppend[] = [];
  #writing = false;
  /** Where we believe the log ends; undefined until read, and after any failed append. */
  #nextSeq: number | undefined;
  /** Tree size of the newest checkpoint this process has seen. */
  #checkpointedSize: number | undefined;
  #witnessed = new Map<string, WitnessedHead>();

  constructor(db: Db, opts: AuditLogOptions) {
    this.#db = db;
    this.#ncpId = opts.ncpId;
    this.#signingKey = opts.signingKey;
    this.#now = opts.now ?? (() => new Date());
    this.#witnessCacheMs = opts.witnessCacheMs ?? WITNESS_CACHE_MS;
  }

  /**
   * Appends one event and returns its leaf index. The event's `id` is set to its index, so the
   * leaf binds the position: a row moved to another `seq` no longer matches its own event.
   * The caller must await it and disclose nothing if it throws (fail closed): every failure is
   * GatewayError('audit.unavailable').
   */
  async append(event: AuditEventJson, opts: { patientKey?: string | undefined } = {}): Promise<AppendResult> {
    const [result] = await this.appendMany([{ event, patientKey: opts.patientKey }]);
    if (result === undefined) throw new GatewayError('audit.unavailable', 'append returned nothing');
    return result;
  }

  /**
   * Appends several events, in order, with consecutive indices. Appends waiting at the same time
   * are written together (group commit): one INSERT statement, so one round trip and one commit,
   * whatever the number of requests behind it. Each caller's promise settles when its rows are
   * committed, or with 'audit.unavailable' if they were not.
   */
  appendMany(items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<AppendResult[]>((resolve, reject) => {
      this.#pending.push({ items, resolve, reject });
      this.#startWriter();
    });
  }

  #startWriter(): void {
    if (this.#writing) return;
    this.#writing = true;
    void (async () => {
      while (this.#pending.length > 0) await this.#writeBatch(this.#takeBatch());
    })().finally(() => {
      this.#writing = false;
      if (this.#pending.length > 0) this.#startWriter();
    });
  }

  /** Whole appends, oldest first, up to MAX_BATCH_EVENTS events (always at least one append). */
  #takeBatch(): PendingAppend[] {
    let events = 0;
    let n = 0;
    while (n < this.#pending.length) {
      const size = this.#pending[n]?.items.length ?? 0;
      if (n > 0 && events + size > MAX_BATCH_EVENTS) break;
      events += size;
      n += 1;
    }
    return this.#pending.splice(0, n);
  }

  /** Never throws: every append of the batch is settled. */
  async #writeBatch(batch: readonly PendingAppend[]): Promise<void> {
    try {
      const results = await this.#insertContiguous(batch.flatMap((p) => p.items));
      let offset = 0;
      for (const p of batch) {
        p.resolve(results.slice(offset, offset + p.items.length));
        offset += p.items.length;
      }
    } catch (cause) {
      if (batch.length > 1 && !isConnectionFailure(cause) && !isStorageUnavailable(cause)) {
        // The database refused the statement, not the connection: one event it cannot hold (a NUL
        // character jsonb refuses, say) must fail its own append only, as it would on its own.
        for (const p of batch) await this.#writeBatch([p]);
        return;
      }
      const error = new GatewayError('audit.unavailable', 'the audit record could not be written', { cause });
      for (const p of batch) p.reject(error);
    } finally {
      this.#kickSchedule();
    }
  }

  /**
   * Writes `items` at the next free indices with one statement that inserts only if the log still
   * ends where we believe (`max(seq) = first - 1`). Another replica that appended in between makes
   * it insert nothing, or fail on the primary key; we then re-read the end and try again. A row at
   * index n can only be written once index n - 1 is committed, so readers never see a gap.
   */
  async #insertContiguous(items: readonly AppendItem[]): Promise<AppendResult[]> {
    for (let attempt = 1; ; attempt++) {
      this.#nextSeq ??= await this.#readNextSeq();
      const first = this.#nextSeq;
      const rows: string[] = [];
      const out: AppendResult[] = [];
      items.forEach((item, i) => {
        const seq = first + i;
        const event: Record<string, unknown> = { ...item.event, id: String(seq) };
        const text = canonicalJson(event);
        const hash = leafHash(text);
        out.push({ seq, leafHash: hash });
        const recordedAt = recordedAtOf(event, this.#now()).toISOString();
        // `text` is canonical JSON already, so it is spliced in as it is.
        rows.push(`{"seq":${seq},"recorded_at":"${recordedAt}","patient_key":${JSON.stringify(item.patientKey ?? null)},"leaf_hash":"${hash.toString('hex')}","event":${text}}`);
      });
      let inserted: number;
      try {
        ({ rowCount: inserted } = await this.#db.query(INSERT_CONTIGUOUS, [`[${rows.join(',')}]`, first - 1]));
      } catch (e) {
        this.#nextSeq = undefined;
        if (!isUniqueViolation(e)) throw e;
        inserted = 0;
      }
      if (inserted === items.length) {
        this.#nextSeq = first + items.length;
        // Our own committed rows extend the cached tree directly when they follow it.
        if (this.#tree.size === first) for (const r of out) this.#tree.push(r.leafHash);
        return out;
      }
      if (inserted !== 0) throw new Error(`audit append inserted ${inserted} of ${items.length} rows`);
      this.#nextSeq = undefined;
      if (attempt >= MAX_APPEND_ATTEMPTS) throw new Error(`audit append lost the race for the log's end ${attempt} times`);
    }
  }

  async #readNextSeq(): Promise<number> {
    const { rows } = await this.#db.query<{ next: unknown }>('SELECT (coalesce(max(seq) + 1, 0))::int8 AS next FROM audit_log');
    return toSafeInteger(rows[0]?.next, 'next seq');
  }

  /** After appends: checkpoint when `everyEntries` were appended since the latest known checkpoint. */
  #kickSchedule(): void {
    const schedule = this.#schedule;
    if (schedule === undefined) return;
    const end = this.#nextSeq;
    if (end === undefined || this.#checkpointedSize === undefined || end - this.#checkpointedSize >= schedule.everyEntries) schedule.kick();
  }

  /** Brings the cached tree up to every committed row. Concurrent callers share one refresh. */
  async #sync(): Promise<MerkleTree> {
    this.#syncing ??= this.#readNewLeaves().finally(() => {
      this.#syncing = undefined;
    });
    await this.#syncing;
    return this.#tree;
  }

  async #readNewLeaves(): Promise<void> {
    // The cache must describe what the database holds now. If its newest leaf is gone or differs
    // (a restored backup, manual tampering), rebuild from the database rather than sign over leaves
    // that no longer exist: a rollback must show in our checkpoints, where peers' witnesses see it.
    const cached = this.#tree.size;
    if (cached > 0) {
      const { rows } = await this.#db.query<LeafRow>('SELECT seq, leaf_hash FROM audit_log WHERE seq = $1', [cached - 1]);
      const row = rows[0];
      if (row === undefined || !toBuffer(row.leaf_hash, 'leaf_hash').equals(this.#tree.leafHash(cached - 1))) this.#tree = new MerkleTree();
    }
    for (;;) {
      const from = this.#tree.size;
      const { rows } = await this.#db.query<LeafRow>('SELECT seq, leaf_hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2', [from, SYNC_BATCH]);
      for (const row of rows) {
        const seq = toSafeInteger(row.seq, 'seq');
        // Our own appends may have extended the cache while this query ran: those rows are known.
        if (seq < this.#tree.size) {
          if (!toBuffer(row.leaf_hash, 'leaf_hash').equals(this.#tree.leafHash(seq))) throw new Error(`audit log entry ${seq} changed under the cache`);
          continue;
        }
        // A gap can only come from tampering; refuse to serve proofs over it.
        if (seq !== this.#tree.size) throw new Error(`audit log is not contiguous: expected entry ${this.#tree.size}, found ${seq}`);
        this.#tree.push(toBuffer(row.leaf_hash, 'leaf_hash'));
      }
      if (rows.length < SYNC_BATCH) return;
    }
  }

  /** Number of entries committed so far. */
  async size(): Promise<number> {
    return (await this.#sync()).size;
  }

  /** Root hash of the first `treeSize` entries. */
  async rootHash(treeSize?: number): Promise<Buffer> {
    const tree = await this.#sync();
    const n = treeSize ?? tree.size;
    if (!Number.isSafeInteger(n) || n < 0 || n > tree.size) throw new GatewayError('audit.proof-unavailable', `no tree of size ${n}`);
    return tree.root(n);
  }

  /**
   * Signs and stores a checkpoint over every committed entry. Two replicas checkpointing the same
   * size keep the first row; the stored one is returned either way.
   */
  async checkpoint(signingKey: SigningKey | undefined = this.#signingKey): Promise<Checkpoint> {
    if (signingKey === undefined) throw new Error('no signing key for audit checkpoints');
    const tree = await this.#sync();
    const treeSize = tree.size;
    const rootHash = treeSize === 0 ? EMPTY_ROOT : tree.root(treeSize);
    const signedAt = this.#now();
    const claims: CheckpointClaims = { treeSize, rootHash: rootHash.toString('base64'), timestamp: signedAt.getTime(), ncpId: this.#ncpId };
    const jws = await signCheckpoint(signingKey, claims);
    await this.#db.query('INSERT INTO audit_checkpoints (tree_size, root_hash, signed_at, jws) VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING', [
      treeSize,
      rootHash,
      signedAt.toISOString(),
      jws,
    ]);
    const stored = await this.#checkpointAt(treeSize);
    if (stored === undefined) throw new Error('checkpoint vanished after insert');
    return stored;
  }

  async #checkpointAt(treeSize: number): Promise<Checkpoint | undefined> {
    const { rows } = await this.#db.query<CheckpointRow>('SELECT tree_size, root_hash, signed_at, jws FROM audit_checkpoints WHERE tree_size = $1', [treeSize]);
    return rows[0] === undefined ? undefined : this.#seen(checkpointFromRow(rows[0]));
  }

  /** The checkpoint with the largest tree size, if any. */
  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    const { rows } = await this.#db.query<CheckpointRow>('SELECT tree_size, root_hash, signed_at, jws FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1');
    if (rows[0] === undefined) {
      this.#checkpointedSize ??= 0;
      return undefined;
    }
    return this.#seen(checkpointFromRow(rows[0]));
  }

  #seen(checkpoint: Checkpoint): Checkpoint {
    if (this.#checkpointedSize === undefined || checkpoint.treeSize > this.#checkpointedSize) this.#checkpointedSize = checkpoint.treeSize;
    return checkpoint;
  }

  /** Inclusion proof of entry `seq` in the tree of the first `treeSize` entries (RFC 9162 2.1.3.1). */
  async inclusionProofFor(seq: number, treeSize: number): Promise<InclusionProof> {
    const tree = await this.#sync();
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(treeSize) || seq < 0 || seq >= treeSize || treeSize > tree.size) {
      throw new GatewayError('audit.proof-unavailable', `no entry ${seq} in a tree of size ${treeSize}`);
    }
    return { seq, treeSize, leafHash: tree.leafHash(seq), rootHash: tree.root(treeSize), proof: tree.inclusionProof(seq, treeSize) };
  }

  /**
   * Inclusion proof of entry `seq` against the latest signed checkpoint, with that checkpoint, or
   * undefined while the entry is newer than every checkpoint (it is proven after the next one).
   */
  async inclusionProofAgainstLatest(seq: number): Promise<{ checkpoint: Checkpoint; proof: InclusionProof } | undefined> {
    const checkpoint = await this.latestCheckpoint();
    if (checkpoint === undefined || seq >= checkpoint.treeSize) return undefined;
    return { checkpoint, proof: await this.inclusionProofFor(seq, checkpoint.treeSize) };
  }

  /** Consistency proof between the trees of the first `m` and the first `n` entries (RFC 9162 2.1.4.1). */
  async consistencyProof(m: number, n: number): Promise<Buffer[]> {
    const tree = await this.#sync();
    if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n || n > tree.size) {
      throw new GatewayError('audit.proof-unavailable', `no consistency proof from ${m} to ${n}`);
    }
    return tree.consistencyProof(m, n);
  }

  /**
   * Consistency proof from the first `m` entries to a stored checkpoint. The cached tree answers
   * without a database read when it already holds the checkpoint's entries and reproduces its root;
   * otherwise it is refreshed first, and a checkpoint the committed entries do not reproduce
   * (a restored or altered database) gets no proof.
   */
  async consistencyProofTo(checkpoint: Checkpoint, m: number): Promise<Buffer[]> {
    const n = checkpoint.treeSize;
    if (!Number.isSafeInteger(m) || m < 0 || m > n) throw new GatewayError('audit.proof-unavailable', `no consistency proof from ${m} to ${n}`);
    const covers = (tree: MerkleTree): boolean => tree.size >= n && (n === 0 ? EMPTY_ROOT : tree.root(n)).equals(checkpoint.rootHash);
    let tree = this.#tree;
    if (!covers(tree)) {
      tree = await this.#sync();
      if (!covers(tree)) throw new GatewayError('audit.proof-unavailable', `checkpoint of size ${n} does not match the committed entries`);
    }
    return tree.consistencyProof(m, n);
  }

  /** The events recorded about one patient, oldest first, with their leaf index. */
  async eventsForPatient(patientKey: string): Promise<PatientEvent[]> {
    const { rows } = await this.#db.query<{ seq: unknown; recorded_at: unknown; event: unknown }>(
      'SELECT seq, recorded_at, event FROM audit_log WHERE patient_key = $1 ORDER BY seq',
      [patientKey],
    );
    return rows.map((row) => {
      if (!isRecord(row.event)) throw new Error('audit_log.event is not a JSON object');
      return { seq: toSafeInteger(row.seq, 'seq'), recordedAt: toDate(row.recorded_at, 'recorded_at'), event: row.event };
    });
  }

  /**
   * The largest tree size we witnessed from `peerCountry` (sent with requests, so the peer proves
   * consistency from there). Cached for WITNESS_CACHE_MS, then read from the database again, since
   * other replicas witness the same peer.
   */
  async lastWitnessedSize(peerCountry: string): Promise<number | undefined> {
    const cached = this.#witnessed.get(peerCountry);
    if (cached !== undefined && Date.now() - cached.confirmedAt < this.#witnessCacheMs) return cached.treeSize;
    const previous = await latestWitness(this.#db, peerCountry);
    this.#confirmWitnessed(peerCountry, previous);
    return previous?.treeSize;
  }

  /** The database's newest witness of the peer (read under the lock or just now) replaces the cache. */
  #confirmWitnessed(peerCountry: string, previous: WitnessRow | undefined, verified?: { jws: string; ncpId: string }): void {
    if (previous === undefined) {
      this.#witnessed.delete(peerCountry);
      return;
    }
    const cached = this.#witnessed.get(peerCountry);
    const same = cached !== undefined && cached.treeSize === previous.treeSize && cached.rootHash.equals(previous.rootHash);
    const keep = verified ?? (same && cached.jws !== undefined && cached.ncpId !== undefined ? { jws: cached.jws, ncpId: cached.ncpId } : undefined);
    this.#witnessed.set(peerCountry, { treeSize: previous.treeSize, rootHash: previous.rootHash, ...(keep ?? {}), confirmedAt: Date.now() });
  }

  /**
   * Witnesses a peer's checkpoint. The checks, in order: the JWS verifies with the peer's signing
   * keys from the trust list (and names the peer's NCP id when one is expected); then, against the
   * largest checkpoint witnessed from that peer before: not smaller (rollback), not a different root
   * at the same size (fork), and a larger one only with a consistency proof which verifies (RFC 9162
   * section 2.1.4.2) from exactly the size our request asked for. A refusal stores nothing.
   *
   * Two shortcuts, neither of which lets the peer choose anything:
   * - the very checkpoint (byte for byte) that this process verified as the newest witness, within
   *   WITNESS_CACHE_MS of the database confirming it, signed by a key the trust list still lists:
   *   nothing new to check or store;
   * - our request asked from an older witnessed size than the newest stored one (answers to
   *   concurrent requests, or another replica witnessed meanwhile): the proof is checked against
   *   that older witness and the checkpoint is not stored; the next request asks from the newest.
   */
  async recordWitness(peerCountry: string, input: WitnessInput, verifyKeys: JwksLike, opts: { expectedNcpId?: string } = {}): Promise<WitnessRecord> {
    const known = this.#witnessed.get(peerCountry);
    if (
      known?.jws !== undefined &&
      known.jws === input.checkpointJws &&
      Date.now() - known.confirmedAt < this.#witnessCacheMs &&
      (opts.expectedNcpId === undefined || opts.expectedNcpId === known.ncpId)
    ) {
      // The signing key must still be trusted (a key removed from the trust list is refused here).
      checkKidKnown(checkCompactShape(input.checkpointJws, MAX_CHECKPOINT_CHARS).header, verifyKeys);
      return { peerCountry, treeSize: known.treeSize, rootHash: known.rootHash, receivedAt: this.#now(), stored: false };
    }
    const verified = await verifyCheckpointJws(input.checkpointJws, verifyKeys);
    const { treeSize } = verified.claims;
    if (opts.expectedNcpId !== undefined && verified.claims.ncpId !== opts.expectedNcpId) {
      throw new WitnessRefusedError('wrong-issuer', `checkpoint names ${verified.claims.ncpId}, expected ${opts.expectedNcpId}`);
    }
    if (input.askedFrom !== undefined && input.fromSize !== undefined && input.fromSize !== input.askedFrom) {
      throw new WitnessRefusedError('proof-missing', `${peerCountry} proved consistency from ${input.fromSize}, but ${input.askedFrom} was asked`);
    }
    const proof = decodeProof(input.consistencyProof);
    const receivedAt = this.#now();

    let confirmed: WitnessRow | undefined;
    const result = await this.#db.transaction(async (tx): Promise<WitnessRecord> => {
      await tx.query(`SELECT pg_advisory_xact_lock(${WITNESS_LOCK_KEY})`);
      const previous = await latestWitness(tx, peerCountry);
      confirmed = previous;
      const record = { peerCountry, treeSize, rootHash: verified.rootHash, receivedAt };
      let fromSize: number | null = null;
      if (previous !== undefined) {
        checkNotRolledBack(peerCountry, previous, treeSize);
        if (previous.treeSize === treeSize) {
          checkSameRoot(peerCountry, previous, verified.rootHash);
          return { ...record, receivedAt: previous.receivedAt, stored: false };
        }
        if (input.askedFrom !== undefined && input.fromSize === input.askedFrom && input.askedFrom < previous.treeSize && proof !== undefined) {
          const older = await witnessAt(tx, peerCountry, input.askedFrom);
          if (older === undefined) throw new WitnessRefusedError('proof-missing', `${peerCountry} consistency proof starts at ${input.askedFrom}, a size never witnessed`);
          checkConsistent(peerCountry, older, treeSize, verified.rootHash, input.fromSize, proof);
          return { ...record, stored: false };
        }
        checkConsistent(peerCountry, previous, treeSize, verified.rootHash, input.fromSize, proof);
        fromSize = previous.treeSize;
      }
      await tx.query(
        'INSERT INTO audit_witness (peer_country, tree_size, root_hash, jws, received_at, from_size, consistency_proof) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [peerCountry, treeSize, verified.rootHash, input.checkpointJws, receivedAt.toISOString(), fromSize, fromSize === null ? null : Buffer.concat(proof ?? [])],
      );
      confirmed = { treeSize, rootHash: verified.rootHash, receivedAt };
      return { ...record, stored: true };
    }).catch((e: unknown) => {
      // Read under the lock, the database is the authority (e.g. after a restore of our own
      // database the cache may be ahead of it), refusal or not.
      if (confirmed !== undefined) this.#confirmWitnessed(peerCountry, confirmed);
      throw e;
    });
    // The cache holds the newest witness the database confirmed; it carries this JWS only when this
    // checkpoint is that newest witness (stored now, or equal to the stored one).
    const isNewest = confirmed !== undefined && confirmed.treeSize === result.treeSize && confirmed.rootHash.equals(result.rootHash);
    this.#confirmWitnessed(peerCountry, confirmed, isNewest ? { jws: input.checkpointJws, ncpId: verified.claims.ncpId } : undefined);
    return result;
  }

  /**
   * Checkpoints in the background: after `everyEntries` appends, or every `everyMs` when anything
   * was appended since the latest checkpoint. Counts come from the database, so replicas agree;
   * the timer is unref'd and never keeps the process alive. Returns a stop function.
   */
  startCheckpointing(schedule: CheckpointSchedule): { stop: () => void } {
    const key = schedule.signingKey ?? this.#signingKey;
    if (key === undefined) throw new Error('no signing key for audit checkpoints');
    if (!Number.isSafeInteger(schedule.everyEntries) || schedule.everyEntries < 1) throw new RangeError('everyEntries must be a positive integer');
    if (!Number.isFinite(schedule.everyMs) || schedule.everyMs < 1) throw new RangeError('everyMs must be positive');
    this.#schedule?.stop();

    let running: Promise<void> | undefined;
    let stopped = false;
    const tick = (force: 'entries' | 'time'): void => {
      if (stopped || running !== undefined) return;
      running = (async () => {
        const latest = await this.latestCheckpoint();
        const size = await this.size();
        const since = size - (latest?.treeSize ?? 0);
        const due = force === 'time' ? since > 0 || latest === undefined : since >= schedule.everyEntries;
        if (due) await this.checkpoint(key);
      })()
        .catch((e: unknown) => schedule.onError?.(e))
        .finally(() => {
          running = undefined;
        });
    };
    const timer = setInterval(() => tick('time'), schedule.everyMs);
    timer.unref();
    const handle = {
      everyEntries: schedule.everyEntries,
      stop: () => {
        stopped = true;
        clearInterval(timer);
        if (this.#schedule === handle) this.#schedule = undefined;
      },
      kick: () => tick('entries'),
    };
    this.#schedule = handle;
    return { stop: handle.stop };
  }
}

// ---------------------------------------------------------------------------------------------
// Witness checks (one rule each)

interface WitnessRow {
  treeSize: number;
  rootHash: Buffer;
  receivedAt: Date;
}


async function latestWitness(tx: Queryable, peerCountry: string): Promise<WitnessRow | undefined> {
  const { rows } = await tx.query<{ tree_size: unknown; root_hash: unknown; received_at: unknown }>(
    'SELECT tree_size, root_hash, received_at FROM audit_witness WHERE peer_country = $1 ORDER BY tree_size DESC LIMIT 1',
    [peerCountry],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    treeSize: toSafeInteger(row.tree_size, 'tree_size'),
    rootHash: toBuffer(row.root_hash, 'root_hash'),
    receivedAt: toDate(row.received_at, 'received_at'),
  };
}

async function witnessAt(tx: Queryable, peerCountry: string, treeSize: number): Promise<WitnessRow | undefined> {
  const { rows } = await tx.query<{ tree_size: unknown; root_hash: unknown; received_at: unknown }>(
    'SELECT tree_size, root_hash, received_at FROM audit_witness WHERE peer_country = $1 AND tree_size = $2',
    [peerCountry, treeSize],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return { treeSize: toSafeInteger(row.tree_size, 'tree_size'), rootHash: toBuffer(row.root_hash, 'root_hash'), receivedAt: toDate(row.received_at, 'received_at') };
}

function decodeProof(proof: readonly string[] | undefined): Buffer[] | undefined {
  if (proof === undefined) return undefined;
  return proof.map((h, i) => {
    const bytes = decodeHash(h);
    if (bytes === undefined) throw new WitnessRefusedError('proof-invalid', `consistency proof element ${i} is not a base64 SHA-256 hash`);
    return bytes;
  });
}

/** A log only grows: a smaller tree than one already seen means history was rolled back. */
function checkNotRolledBack(peer: string, previous: WitnessRow, treeSize: number): void {
  if (treeSize < previous.treeSize) {
    throw new WitnessRefusedError('rollback', `${peer} presented a tree of size ${treeSize}, smaller than the ${previous.treeSize} already witnessed: rollback`);
  }
}

/** Two roots for one size are two histories (a fork / split view). */
function checkSameRoot(peer: string, previous: WitnessRow, rootHash: Buffer): void {
  if (!previous.rootHash.equals(rootHash)) {
    throw new WitnessRefusedError('fork', `${peer} presented a different root for the already witnessed size ${previous.treeSize}: history was rewritten`);
  }
}

/** The new tree must extend the witnessed one, proven by RFC 9162 section 2.1.4.2. */
function checkConsistent(peer: string, previous: WitnessRow, treeSize: number, rootHash: Buffer, fromSize: number | undefined, proof: Buffer[] | undefined): void {
  if (previous.treeSize === 0) {
    if (!previous.rootHash.equals(EMPTY_ROOT)) throw new WitnessRefusedError('fork', `${peer} witnessed empty tree has a non-empty root`);
    return;
  }
  if (proof === undefined) {
    throw new WitnessRefusedError('proof-missing', `${peer} checkpoint of size ${treeSize} comes without a consistency proof from the witnessed ${previous.treeSize}`);
  }
  if (fromSize !== previous.treeSize) {
    throw new WitnessRefusedError('proof-missing', `${peer} consistency proof starts at ${String(fromSize)}, but ${previous.treeSize} was witnessed last`);
  }
  if (!verifyConsistency(previous.treeSize, treeSize, previous.rootHash, rootHash, proof)) {
    throw new WitnessRefusedError('proof-invalid', `${peer} checkpoint of size ${treeSize} is not consistent with the witnessed size ${previous.treeSize}: history was rewritten`);
  }
}
