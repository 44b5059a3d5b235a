/**
 * Merkle tree hashing and proofs exactly as RFC 9162 section 2.1 defines them (the same hashing as
 * RFC 6962 section 2.1, so Certificate Transparency tooling and test vectors apply). Pure: no I/O,
 * only node:crypto SHA-256.
 *
 * Hashes are 32-byte Buffers. Tree sizes and indices are JavaScript numbers (safe integers); all
 * index arithmetic divides instead of using `>>`, which would truncate to 32 bits.
 */
import { createHash } from 'node:crypto';

export const HASH_BYTES = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** RFC 9162 section 2.1.1: MTH({}) = HASH(). */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/** RFC 9162 section 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0)). The 0x00 prefix separates leaves from nodes. */
export function leafHash(data: Uint8Array | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return createHash('sha256').update(LEAF_PREFIX).update(bytes).digest();
}

/** RFC 9162 section 2.1.1: HASH(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two strictly smaller than n (RFC 9162 section 2.1.1's k), for n >= 2. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2(n) when n is an exact power of two (1, 2, 4, ...), otherwise undefined. */
function exactLog2(n: number): number | undefined {
  if (n < 1) return undefined;
  let level = 0;
  while (n % 2 === 0) {
    n /= 2;
    level++;
  }
  return n === 1 ? level : undefined;
}

function isHash(value: Uint8Array): boolean {
  return value.length === HASH_BYTES;
}

function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
}

/**
 * One level of a tree's stored nodes: the hashes back to back in one byte array that doubles when
 * full. A Buffer per hash would cost an object and a backing store each, and a 32-byte Buffer.from
 * is cut from Node's shared 8 KB pool, so each hash a tree kept could keep a whole pool chunk alive:
 * a heap snapshot of a gateway under load found 24 MB held that way by 3,000 leaves (bench/README.md).
 * Reads return copies: nothing outside can change a stored node.
 */
class HashRow {
  #bytes = new Uint8Array(HASH_BYTES * 64);
  #count = 0;

  get length(): number {
    return this.#count;
  }

  push(hash: Uint8Array): void {
    const at = this.#count * HASH_BYTES;
    if (at + HASH_BYTES > this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2);
      grown.set(this.#bytes);
      this.#bytes = grown;
    }
    this.#bytes.set(hash, at);
    this.#count++;
  }

  at(index: number): Buffer | undefined {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#count) return undefined;
    // Its own memory, not a slice of Node's pool: a caller that keeps it keeps 32 bytes only.
    const copy = Buffer.allocUnsafeSlow(HASH_BYTES);
    copy.set(this.#bytes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES));
    return copy;
  }
}

/**
 * A tree kept as its levels of complete subtrees: level 0 holds the leaf hashes, level h holds the
 * hash of every complete, aligned subtree of 2^h leaves built so far. Appending is amortised O(1);
 * any MTH(D[a:b]) needed by a proof is assembled from O(log n) stored nodes, so a proof costs
 * O(log^2 n) hashes without recomputing the tree. Nodes of complete subtrees never change when the
 * tree grows, so one instance answers for every size up to `size`. About 64 bytes per leaf.
 */
export class MerkleTree {
  readonly #levels: HashRow[] = [new HashRow()];

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const h of leafHashes) this.push(h);
  }

  get size(): number {
    return this.#levels[0]?.length ?? 0;
  }

  /** Appends one leaf hash (already HASH(0x00 || data)). */
  push(hash: Uint8Array): void {
    if (!isHash(hash)) throw new RangeError('a leaf hash must be 32 bytes');
    let node: Uint8Array = hash;
    for (let level = 0; ; level++) {
      const row = (this.#levels[level] ??= new HashRow());
      row.push(node);
      if (row.length % 2 !== 0) return;
      const left = row.at(row.length - 2);
      if (left === undefined) return;
      node = nodeHash(left, node);
    }
  }

  leafHash(index: number): Buffer {
    const h = this.#levels[0]?.at(index);
    if (h === undefined) throw new RangeError(`no leaf ${index} in a tree of ${this.size}`);
    return h;
  }

  /** MTH(D[start:end]); `start` must be a multiple of the largest power of two <= end - start. */
  #subtreeHash(start: number, end: number): Buffer {
    const n = end - start;
    if (n === 0) return Buffer.from(EMPTY_ROOT);
    // A complete aligned subtree is stored as one node.
    const level = exactLog2(n);
    if (level !== undefined && start % n === 0) {
      const stored = this.#levels[level]?.at(start / n);
      if (stored !== undefined) return stored;
    }
    const k = splitPoint(n);
    return nodeHash(this.#subtreeHash(start, start + k), this.#subtreeHash(start + k, end));
  }

  /** RFC 9162 section 2.1.1: the Merkle Tree Hash of the first `size` leaves (default: all). */
  root(size: number = this.size): Buffer {
    checkSize('size', size);
    if (size > this.size) throw new RangeError(`tree size ${size} is larger than the ${this.size} leaves known`);
    return this.#subtreeHash(0, size);
  }

  /** RFC 9162 section 2.1.3.1: PATH(m, D[n]) for leaf `index` in the tree of the first `size` leaves. */
  inclusionProof(index: number, size: number = this.size): Buffer[] {
    checkSize('index', index);
    checkSize('size', size);
    if (size > this.size) throw new RangeError(`tree size ${size} is larger than the ${this.size} leaves known`);
    if (index >= size) throw new RangeError(`leaf ${index} is not in a tree of ${size}`);
    return this.#path(index, 0, size);
  }

  #path(m: number, start: number, end: number): Buffer[] {
    const n = end - start;
    if (n <= 1) return [];
    const k = splitPoint(n);
    // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    if (m < k) return [...this.#path(m, start, start + k), this.#subtreeHash(start + k, end)];
    return [...this.#path(m - k, start + k, end), this.#subtreeHash(start, start + k)];
  }

  /**
   * RFC 9162 section 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true) between the tree of the first
   * `m` leaves and that of the first `n`. Defined for 0 < m < n; m == n (and m == 0) give the empty
   * proof, which `verifyConsistency` accepts only with the matching roots.
   */
  consistencyProof(m: number, n: number = this.size): Buffer[] {
    checkSize('m', m);
    checkSize('n', n);
    if (n > this.size) throw new RangeError(`tree size ${n} is larger than the ${this.size} leaves known`);
    if (m > n) throw new RangeError(`cannot prove consistency from ${m} back to the smaller ${n}`);
    if (m === 0 || m === n) return [];
    return this.#subproof(m, 0, n, true);
  }

  #subproof(m: number, start: number, end: number, b: boolean): Buffer[] {
    const n = end - start;
    // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
    if (m === n) return b ? [] : [this.#subtreeHash(start, end)];
    const k = splitPoint(n);
    if (m <= k) return [...this.#subproof(m, start, start + k, b), this.#subtreeHash(start + k, end)];
    return [...this.#subproof(m - k, start + k, end, false), this.#subtreeHash(start, start + k)];
  }
}

/** MTH over the given leaf hashes. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Buffer {
  return new MerkleTree(hashes).root();
}

/** PATH(index, D[n]) over the given leaf hashes (n = their count). */
export function inclusionProof(index: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  return new MerkleTree(leafHashes).inclusionProof(index);
}

/** PROOF(m, D[n]) over the given leaf hashes (n = their count). */
export function consistencyProof(m: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  return new MerkleTree(leafHashes).consistencyProof(m);
}

/**
 * RFC 9162 section 2.1.3.2, step by step. Returns whether `proof` shows that `leafHash` is leaf
 * `index` of the tree of `size` leaves whose root is `root`. Malformed input is simply false.
 */
export function verifyInclusion(index: number, size: number, leafHashValue: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0) return false;
  if (!isHash(leafHashValue) || !isHash(root) || !proof.every(isHash)) return false;
  // 1. leaf_index >= tree_size fails.
  if (index >= size) return false;
  // 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHashValue);
  // 4. For each p in inclusion_path:
  for (const p of proof) {
    // a. sn == 0 fails.
    if (sn === 0) return false;
    // b. If LSB(fn) is set, or fn == sn: r = HASH(0x01 || p || r), then (LSB(fn) unset) shift
    //    until LSB(fn) is set or fn is 0. Otherwise r = HASH(0x01 || r || p).
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    // c. Shift both once.
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. sn must be 0 and r must equal the root.
  return sn === 0 && r.equals(root);
}

/**
 * RFC 9162 section 2.1.4.2 for 0 < m < n. The edge cases the RFC leaves to the caller: m == n
 * is consistent only with an empty proof and equal roots; m == 0 only with an empty proof and
 * rootM = MTH({}) (every tree extends the empty one, but a claimed "empty" root must be the real
 * one). m > n is a rollback and never consistent.
 */
export function verifyConsistency(m: number, n: number, rootM: Uint8Array, rootN: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false;
  if (!isHash(rootM) || !isHash(rootN) || !proof.every(isHash)) return false;
  if (m === n) return proof.length === 0 && Buffer.from(rootM).equals(rootN);
  if (m === 0) return proof.length === 0 && EMPTY_ROOT.equals(rootM);
  // 1. An empty consistency_path fails.
  if (proof.length === 0) return false;
  // 2. If first is an exact power of 2, prepend first_hash.
  const path: Uint8Array[] = exactLog2(m) !== undefined ? [rootM, ...proof] : [...proof];
  // 3. fn = first - 1, sn = second - 1.
  let fn = m - 1;
  let sn = n - 1;
  // 4. While LSB(fn) is set, shift both.
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. fr = sr = first value of the path.
  const [first, ...rest] = path;
  if (first === undefined) return false;
  let fr: Buffer = Buffer.from(first);
  let sr: Buffer = Buffer.from(first);
  // 6. For each subsequent c:
  for (const c of rest) {
    // a. sn == 0 fails.
    if (sn === 0) return false;
    // b. LSB(fn) set or fn == sn: both fold c from the left, then shift until LSB(fn) or fn == 0.
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      // Otherwise only the second tree grows to the right.
      sr = nodeHash(sr, c);
    }
    // c. Shift both once.
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7. fr == first_hash, sr == second_hash, sn == 0.
  return sn === 0 && fr.equals(rootM) && sr.equals(rootN);
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON (leaf data)

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Deterministic JSON for leaf data, in the manner of RFC 8785 (JCS): object members sorted by their
 * UTF-16 code units (JavaScript's default string order), no whitespace, strings and numbers as
 * ECMAScript's JSON.stringify writes them (which is what JCS specifies). Members whose value is
 * `undefined` are left out, as JSON.stringify does; anything JSON cannot carry exactly (NaN,
 * Infinity, BigInt, functions, class instances such as Date, `undefined` in an array) is refused,
 * so a value never hashes differently from the JSON that is stored.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot carry a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        return `[${value
          .map((item: unknown) => {
            if (item === undefined) throw new TypeError('canonical JSON cannot carry undefined in an array');
            return canonicalJson(item);
          })
          .join(',')}]`;
      }
      if (!isPlainObject(value)) throw new TypeError('canonical JSON carries only plain objects');
      const record = value as Record<string, unknown>;
      const members = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`);
      return `{${members.join(',')}}`;
    }
    case 'undefined':
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new TypeError(`canonical JSON cannot carry a ${typeof value}`);
  }
}

/** Leaf hash of a JSON value: HASH(0x00 || canonicalJson(value)). */
export function leafHashOfJson(value: unknown): Buffer {
  return leafHash(canonicalJson(value));
}
