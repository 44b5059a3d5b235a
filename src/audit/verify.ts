/**
 * `ncpeh audit verify`: recomputes the whole audit tree from the database and checks it against
 * itself, our signed checkpoints and the witness records of peers' checkpoints. Trusts no stored
 * hash: every leaf hash is recomputed from its event. Reports the first inconsistency, precisely.
 *
 * Order of the checks (the first failure is reported):
 *   1. entries, in seq order: contiguous from 0; the event's id is its seq; leaf hash = its event;
 *   2. our checkpoints, by size: signature, claims = columns, size within the log, root = recomputed;
 *   3. witness records, per peer by size: claims = columns, each extends the previous one by a
 *      consistency proof (and, given the peers' keys, each signature verifies).
 */
import type { JwksLike, PublicJwk } from '../crossborder/envelope.js';
import type { Db } from '../storage/db.js';
import { splitHashes, toBuffer, toSafeInteger, unverifiedCheckpointClaims, verifyCheckpointJws } from './log.js';
import { canonicalJson, EMPTY_ROOT, leafHash, MerkleTree, verifyConsistency } from './merkle.js';

export type VerifyResult = { ok: true; size: number; checkpoints: number; witnesses: number } | { ok: false; problem: string; seq?: number };

export interface VerifyOptions {
  /** Our public signing keys (current and retired), which must have signed every checkpoint. */
  signingKeys: JwksLike | readonly PublicJwk[];
  /** Peers' signing keys by country; when given, each witnessed checkpoint's signature is re-checked. */
  peerKeys?: Readonly<Record<string, JwksLike>>;
  /** Rows fetched per round trip. */
  batchSize?: number;
}

const DEFAULT_BATCH = 5_000;

function fail(problem: string, seq?: number): VerifyResult {
  return seq === undefined ? { ok: false, problem } : { ok: false, problem, seq };
}

function isKeyList(keys: JwksLike | readonly PublicJwk[]): keys is readonly PublicJwk[] {
  return Array.isArray(keys);
}

function asJwks(keys: JwksLike | readonly PublicJwk[]): JwksLike {
  return isKeyList(keys) ? { keys } : keys;
}

/** Entries: returns the recomputed tree, or the first problem. */
async function checkEntries(db: Db, batch: number): Promise<MerkleTree | VerifyResult> {
  const tree = new MerkleTree();
  let after = -1;
  for (;;) {
    const { rows } = await db.query<{ seq: unknown; event: unknown; leaf_hash: unknown }>(
      'SELECT seq, event, leaf_hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2',
      [after, batch],
    );
    for (const row of rows) {
      const seq = toSafeInteger(row.seq, 'seq');
      const expected = tree.size;
      if (seq !== expected) {
        return expected === 0 ? fail(`entries missing before ${seq}`, 0) : fail(`entries missing after ${expected - 1}`, expected);
      }
      const event = row.event;
      if (typeof event !== 'object' || event === null || Array.isArray(event)) return fail(`entry ${seq}: event is not a JSON object`, seq);
      // The id binds the position into the leaf: a row moved to another seq no longer matches.
      const id = (event as Record<string, unknown>)['id'];
      if (id !== String(seq)) return fail(`entry ${seq}: event id ${JSON.stringify(id)} does not match its position (rows reordered?)`, seq);
      let recomputed: Buffer;
      try {
        recomputed = leafHash(canonicalJson(event));
      } catch {
        return fail(`entry ${seq}: event cannot be serialised canonically`, seq);
      }
      let stored: Buffer;
      try {
        stored = toBuffer(row.leaf_hash, 'leaf_hash');
      } catch {
        return fail(`entry ${seq}: leaf hash is missing`, seq);
      }
      if (!recomputed.equals(stored)) return fail(`entry ${seq}: leaf hash does not match its event`, seq);
      tree.push(recomputed);
      after = seq;
    }
    if (rows.length < batch) return tree;
  }
}

async function checkCheckpoints(db: Db, tree: MerkleTree, keys: JwksLike): Promise<number | VerifyResult> {
  const { rows } = await db.query<{ tree_size: unknown; root_hash: unknown; jws: string }>('SELECT tree_size, root_hash, jws FROM audit_checkpoints ORDER BY tree_size');
  for (const row of rows) {
    const size = toSafeInteger(row.tree_size, 'tree_size');
    const at = `checkpoint at size ${size}`;
    let claims;
    try {
      ({ claims } = await verifyCheckpointJws(row.jws, keys));
    } catch {
      return fail(`${at}: signature does not verify with our signing keys`);
    }
    const stored = toBuffer(row.root_hash, 'root_hash');
    if (claims.treeSize !== size || claims.rootHash !== stored.toString('base64')) return fail(`${at}: stored size or root differs from the signed checkpoint`);
    if (size > tree.size) {
      return fail(`${at}: the log has only ${tree.size} entries (entries after ${tree.size - 1} were removed)`, tree.size);
    }
    const root = size === 0 ? EMPTY_ROOT : tree.root(size);
    if (!root.equals(stored)) return fail(`${at}: root differs from the one recomputed from the entries`);
  }
  return rows.length;
}

async function checkWitnesses(db: Db, peerKeys: Readonly<Record<string, JwksLike>> | undefined): Promise<number | VerifyResult> {
  const { rows } = await db.query<{ peer_country: string; tree_size: unknown; root_hash: unknown; jws: string; from_size: unknown; consistency_proof: unknown }>(
    'SELECT peer_country, tree_size, root_hash, jws, from_size, consistency_proof FROM audit_witness ORDER BY peer_country, tree_size',
  );
  let previous: { peer: string; size: number; root: Buffer } | undefined;
  for (const row of rows) {
    const peer = row.peer_country;
    const size = toSafeInteger(row.tree_size, 'tree_size');
    const root = toBuffer(row.root_hash, 'root_hash');
    const at = `witness of ${peer} at size ${size}`;
    const keys = peerKeys?.[peer];
    if (keys !== undefined) {
      try {
        await verifyCheckpointJws(row.jws, keys);
      } catch {
        return fail(`${at}: signature does not verify with ${peer}'s keys`);
      }
    }
    const claims = unverifiedCheckpointClaims(row.jws);
    if (claims === undefined || claims.treeSize !== size || claims.rootHash !== root.toString('base64')) {
      return fail(`${at}: stored size or root differs from the signed checkpoint`);
    }
    const prior = previous?.peer === peer ? previous : undefined;
    if (prior !== undefined) {
      const fromSize = row.from_size === null ? undefined : toSafeInteger(row.from_size, 'from_size');
      if (fromSize !== prior.size) return fail(`${at}: does not chain from the previous witnessed size ${prior.size}`);
      const proof = row.consistency_proof === null ? [] : splitHashes(toBuffer(row.consistency_proof, 'consistency_proof'));
      if (!verifyConsistency(prior.size, size, prior.root, root, proof)) return fail(`${at}: not consistent with the witnessed size ${prior.size}`);
    }
    previous = { peer, size, root };
  }
  return rows.length;
}

export async function verifyAuditLog(db: Db, opts: VerifyOptions): Promise<VerifyResult> {
  const tree = await checkEntries(db, opts.batchSize ?? DEFAULT_BATCH);
  if (!(tree instanceof MerkleTree)) return tree;
  const checkpoints = await checkCheckpoints(db, tree, asJwks(opts.signingKeys));
  if (typeof checkpoints !== 'number') return checkpoints;
  const witnesses = await checkWitnesses(db, opts.peerKeys);
  if (typeof witnesses !== 'number') return witnesses;
  return { ok: true, size: tree.size, checkpoints, witnesses };
}
