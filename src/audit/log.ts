/**
 * The tamper-evident audit log (DESIGN.md flow 6, issue 7): an append-only table whose rows are the
 * leaves of an RFC 9162 Merkle tree, signed checkpoints (tree heads) of it, inclusion and
 * consistency proofs read from the database, and the witness records of peers' checkpoints.
 *
 * Correctness never depends on this process: appends serialise through one advisory lock in
 * PostgreSQL (DESIGN.md section 5), and the in-memory tree is only a cache of rows already
 * committed, refreshed from the database before every use because other replicas append too.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import jose from 'node-jose';
import { z } from 'zod';
import {
  checkCompactShape,
  checkHeaderAllowlist,
  checkKidKnown,
  checkSignature,
  checkType,
  type JwksLike,
  type SigningKey,
} from '../crossborder/envelope.js';
import { GatewayError } from '../http/errors.js';
import type { Db, Queryable } from '../storage/db.js';
import { canonicalJson, EMPTY_ROOT, HASH_BYTES, leafHash, MerkleTree, verifyConsistency } from './merkle.js';

export const CHECKPOINT_TYP = 'ncpeh-checkpoint+jws';

/**
 * pg_advisory_xact_lock keys, shared by every replica on one database. Arbitrary constants
 * ("ncpa" and "ncpw" in ASCII), distinct from the migration lock.
 */
const APPEND_LOCK_KEY = 0x6e637061;
const WITNESS_LOCK_KEY = 0x6e637077;

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
  const signer = jose.JWS.createSign({ format: 'compact', fields: { alg: 'ES256', kid: key.kid, typ: CHECKPOINT_TYP } }, key.key);
  const out: unknown = await signer.update(JSON.stringify(claims), 'utf8').final();
  if (typeof out !== 'string') throw new Error('node-jose did not return a compact JWS');
  return out;
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

export class AuditLog {
  readonly #db: Db;
  readonly #ncpId: string;
  readonly #signingKey: SigningKey | undefined;
  readonly #now: () => Date;
  /** Cache of committed leaf hashes; always topped up from the database before use. */
  #tree = new MerkleTree();
  #syncing: Promise<void> | undefined;
  #schedule: { stop: () => void; kick: () => void } | undefined;

  constructor(db: Db, opts: AuditLogOptions) {
    this.#db = db;
    this.#ncpId = opts.ncpId;
    this.#signingKey = opts.signingKey;
    this.#now = opts.now ?? (() => new Date());
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

  /** Appends several events in one transaction, in order, with consecutive indices. */
  async appendMany(items: readonly AppendItem[]): Promise<AppendResult[]> {
    try {
      return await this.#db.transaction(async (tx) => {
        // One writer at a time across all replicas: the lock is held until COMMIT, so max(seq)
        // read under it is final and the next writer sees this transaction's rows.
        await tx.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK_KEY})`);
        const { rows } = await tx.query<{ next: unknown }>('SELECT (coalesce(max(seq) + 1, 0))::int8 AS next FROM audit_log');
        let seq = toSafeInteger(rows[0]?.next, 'next seq');
        const out: AppendResult[] = [];
        for (const item of items) {
          const event: Record<string, unknown> = { ...item.event, id: String(seq) };
          const text = canonicalJson(event);
          const hash = leafHash(text);
          await tx.query('INSERT INTO audit_log (seq, recorded_at, patient_key, event, leaf_hash) VALUES ($1, $2, $3, $4::jsonb, $5)', [
            seq,
            recordedAtOf(event, this.#now()).toISOString(),
            item.patientKey ?? null,
            text,
            hash,
          ]);
          out.push({ seq, leafHash: hash });
          seq += 1;
        }
        return out;
      });
    } catch (cause) {
      throw new GatewayError('audit.unavailable', 'the audit record could not be written', { cause });
    } finally {
      this.#schedule?.kick();
    }
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
    return rows[0] === undefined ? undefined : checkpointFromRow(rows[0]);
  }

  /** The checkpoint with the largest tree size, if any. */
  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    const { rows } = await this.#db.query<CheckpointRow>('SELECT tree_size, root_hash, signed_at, jws FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1');
    return rows[0] === undefined ? undefined : checkpointFromRow(rows[0]);
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
   * Witnesses a peer's checkpoint. The checks, in order: the JWS verifies with the peer's signing
   * keys from the trust list (and names the peer's NCP id when one is expected); then, against the
   * largest checkpoint witnessed from that peer before: not smaller (rollback), not a different root
   * at the same size (fork), and a larger one only with a consistency proof from exactly that size
   * which verifies (RFC 9162 section 2.1.4.2). A refusal stores nothing.
   */
  async recordWitness(peerCountry: string, input: WitnessInput, verifyKeys: JwksLike, opts: { expectedNcpId?: string } = {}): Promise<WitnessRecord> {
    const verified = await verifyCheckpointJws(input.checkpointJws, verifyKeys);
    const { treeSize } = verified.claims;
    if (opts.expectedNcpId !== undefined && verified.claims.ncpId !== opts.expectedNcpId) {
      throw new WitnessRefusedError('wrong-issuer', `checkpoint names ${verified.claims.ncpId}, expected ${opts.expectedNcpId}`);
    }
    const proof = decodeProof(input.consistencyProof);
    const receivedAt = this.#now();

    return this.#db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${WITNESS_LOCK_KEY})`);
      const previous = await latestWitness(tx, peerCountry);
      const record = { peerCountry, treeSize, rootHash: verified.rootHash, receivedAt };
      let fromSize: number | null = null;
      if (previous !== undefined) {
        checkNotRolledBack(peerCountry, previous, treeSize);
        if (previous.treeSize === treeSize) {
          checkSameRoot(peerCountry, previous, verified.rootHash);
          return { ...record, receivedAt: previous.receivedAt, stored: false };
        }
        checkConsistent(peerCountry, previous, treeSize, verified.rootHash, input.fromSize, proof);
        fromSize = previous.treeSize;
      }
      await tx.query(
        'INSERT INTO audit_witness (peer_country, tree_size, root_hash, jws, received_at, from_size, consistency_proof) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [peerCountry, treeSize, verified.rootHash, input.checkpointJws, receivedAt.toISOString(), fromSize, fromSize === null ? null : Buffer.concat(proof ?? [])],
      );
      return { ...record, stored: true };
    });
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
