import assert from 'node:assert/strict';
import nodeCrypto, { createHash } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  canonicalJson,
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  MerkleTree,
  nodeHash,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/merkle.js';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');

// ---------------------------------------------------------------------------------------------
// Published RFC 6962 / RFC 9162 test vectors, copied as data from the Go reference implementation
// github.com/transparency-dev/merkle (formerly google/trillian's merkle package):
//   testonly/constants.go     LeafInputs(), NodeHashes() (level 0), RootHashes()
//   testonly/reference_test.go TestRefInclusionProof, TestRefConsistencyProof
//   proof/verify_test.go       inclusionProofs, consistencyProofs (its `leaf` field is 1-based)

/** testonly/constants.go LeafInputs(): the 8 leaves' data. */
const LEAF_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hex);

/** testonly/constants.go NodeHashes()[0]: HASH(0x00 || leaf) of each input. */
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
].map(hex);

/** testonly/constants.go RootHashes(): MTH of the first n leaves, n = 0..8. */
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(hex);

/** reference_test.go TestRefInclusionProof plus verify_test.go inclusionProofs (index 0-based here). */
const INCLUSION_VECTORS: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 1, proof: [] },
  { index: 0, size: 2, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7'] },
  { index: 1, size: 2, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

/** reference_test.go TestRefConsistencyProof plus verify_test.go consistencyProofs. */
const CONSISTENCY_VECTORS: { m: number; n: number; proof: string[] }[] = [
  { m: 1, n: 1, proof: [] },
  {
    m: 1,
    n: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    m: 2,
    n: 5,
    proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'],
  },
  {
    m: 6,
    n: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    m: 6,
    n: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers: a seeded PRNG (mulberry32) so every run checks the same trees, and an independent
// reference that follows RFC 9162 section 2.1's recursive definitions literally.

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomLeaves(rand: () => number, n: number): Buffer[] {
  return Array.from({ length: n }, () => leafHash(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)))));
}

function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

function refMth(d: Buffer[]): Buffer {
  if (d.length === 0) return createHash('sha256').digest();
  if (d.length === 1) return d[0]!;
  const s = k(d.length);
  return nodeHash(refMth(d.slice(0, s)), refMth(d.slice(s)));
}

function refPath(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...refPath(m, d.slice(0, s)), refMth(d.slice(s))] : [...refPath(m - s, d.slice(s)), refMth(d.slice(0, s))];
}

function refSubproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [refMth(d)];
  const s = k(d.length);
  return m <= s ? [...refSubproof(m, d.slice(0, s), b), refMth(d.slice(s))] : [...refSubproof(m - s, d.slice(s), false), refMth(d.slice(0, s))];
}

function flipBit(h: Buffer, rand: () => number): Buffer {
  const out = Buffer.from(h);
  const bit = Math.floor(rand() * out.length * 8);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');

// ---------------------------------------------------------------------------------------------

describe('Merkle tree (RFC 9162 section 2.1)', () => {
  describe('published vectors (transparency-dev/merkle)', () => {
    test('leaf hash is SHA-256(0x00 || data) for every published leaf', () => {
      LEAF_INPUTS.forEach((input, i) => assert.deepEqual(leafHash(input), LEAF_HASHES[i]));
    });

    test('the empty tree hash is SHA-256 of nothing', () => {
      assert.deepEqual(EMPTY_ROOT, ROOTS[0]);
      assert.deepEqual(rootFromLeafHashes([]), ROOTS[0]);
    });

    test('roots of the trees of 1..8 published leaves match', () => {
      for (let n = 0; n <= 8; n++) assert.deepEqual(rootFromLeafHashes(LEAF_HASHES.slice(0, n)), ROOTS[n], `size ${n}`);
    });

    for (const v of INCLUSION_VECTORS) {
      test(`inclusion proof for leaf ${v.index} of ${v.size} equals the published one and verifies`, () => {
        const leaves = LEAF_HASHES.slice(0, v.size);
        const proof = inclusionProof(v.index, leaves);
        assert.deepEqual(proof, v.proof.map(hex));
        assert.ok(verifyInclusion(v.index, v.size, LEAF_HASHES[v.index]!, proof, ROOTS[v.size]!));
      });
    }

    for (const v of CONSISTENCY_VECTORS) {
      test(`consistency proof from ${v.m} to ${v.n} equals the published one and verifies`, () => {
        const proof = new MerkleTree(LEAF_HASHES).consistencyProof(v.m, v.n);
        assert.deepEqual(proof, v.proof.map(hex));
        assert.ok(verifyConsistency(v.m, v.n, ROOTS[v.m]!, ROOTS[v.n]!, v.proof.map(hex)));
      });
    }

    test('corrupted published inclusion proofs are refused (verify_test.go corruptInclusionProof probes)', () => {
      for (const v of INCLUSION_VECTORS.filter((x) => x.proof.length > 0)) {
        const proof = v.proof.map(hex);
        const root = ROOTS[v.size]!;
        const leaf = LEAF_HASHES[v.index]!;
        const probes: [string, boolean][] = [
          ['index - 1', verifyInclusion(v.index - 1, v.size, leaf, proof, root)],
          ['index + 1', verifyInclusion(v.index + 1, v.size, leaf, proof, root)],
          ['index ^ 2', verifyInclusion(v.index ^ 2, v.size, leaf, proof, root)],
          ['size * 2', verifyInclusion(v.index, v.size * 2, leaf, proof, root)],
          ['size / 2', verifyInclusion(v.index, Math.floor(v.size / 2), leaf, proof, root)],
          ['wrong leaf', verifyInclusion(v.index, v.size, SOME_HASH, proof, root)],
          ['empty root', verifyInclusion(v.index, v.size, leaf, proof, EMPTY_ROOT)],
          ['random root', verifyInclusion(v.index, v.size, leaf, proof, SOME_HASH)],
          ['trailing root', verifyInclusion(v.index, v.size, leaf, [...proof, root], root)],
          ['preceding root', verifyInclusion(v.index, v.size, leaf, [root, ...proof], root)],
          ['trailing garbage', verifyInclusion(v.index, v.size, leaf, [...proof, Buffer.alloc(0)], root)],
          ['removed component', verifyInclusion(v.index, v.size, leaf, proof.slice(0, -1), root)],
        ];
        for (const [name, accepted] of probes) assert.equal(accepted, false, `${v.index}/${v.size}: ${name}`);
      }
    });

    test('corrupted published consistency proofs are refused (verify_test.go corruptConsistencyProof probes)', () => {
      for (const v of CONSISTENCY_VECTORS.filter((x) => x.proof.length > 0)) {
        const proof = v.proof.map(hex);
        const r1 = ROOTS[v.m]!;
        const r2 = ROOTS[v.n]!;
        const probes: [string, boolean][] = [
          ['m - 1', verifyConsistency(v.m - 1, v.n, r1, r2, proof)],
          ['m + 1', verifyConsistency(v.m + 1, v.n, r1, r2, proof)],
          ['m ^ 2', verifyConsistency(v.m ^ 2, v.n, r1, r2, proof)],
          ['n * 2', verifyConsistency(v.m, v.n * 2, r1, r2, proof)],
          ['n / 2', verifyConsistency(v.m, Math.floor(v.n / 2), r1, r2, proof)],
          ['wrong root1', verifyConsistency(v.m, v.n, SOME_HASH, r2, proof)],
          ['wrong root2', verifyConsistency(v.m, v.n, r1, SOME_HASH, proof)],
          ['swapped roots', verifyConsistency(v.m, v.n, r2, r1, proof)],
          ['empty proof', verifyConsistency(v.m, v.n, r1, r2, [])],
          ['trailing root1', verifyConsistency(v.m, v.n, r1, r2, [...proof, r1])],
          ['trailing root2', verifyConsistency(v.m, v.n, r1, r2, [...proof, r2])],
          ['preceding root1', verifyConsistency(v.m, v.n, r1, r2, [r1, ...proof])],
          ['preceding root2', verifyConsistency(v.m, v.n, r1, r2, [r2, ...proof])],
          ['preceding proof[0]', verifyConsistency(v.m, v.n, r1, r2, [proof[0]!, ...proof])],
          ['truncated proof', verifyConsistency(v.m, v.n, r1, r2, proof.slice(0, -1))],
        ];
        for (const [name, accepted] of probes) assert.equal(accepted, false, `${v.m}->${v.n}: ${name}`);
      }
    });
  });

  describe('edge cases the RFC leaves to the caller', () => {
    test('a consistency proof between equal sizes is empty and needs equal roots', () => {
      assert.ok(verifyConsistency(5, 5, ROOTS[5]!, ROOTS[5]!, []));
      assert.equal(verifyConsistency(5, 5, ROOTS[5]!, ROOTS[4]!, []), false);
      assert.equal(verifyConsistency(5, 5, ROOTS[5]!, ROOTS[5]!, [ROOTS[5]!]), false);
    });

    test('every tree extends the empty one, but only from the real empty root', () => {
      assert.ok(verifyConsistency(0, 8, EMPTY_ROOT, ROOTS[8]!, []));
      assert.equal(verifyConsistency(0, 8, SOME_HASH, ROOTS[8]!, []), false);
      assert.equal(verifyConsistency(0, 8, EMPTY_ROOT, ROOTS[8]!, [EMPTY_ROOT]), false);
    });

    test('a smaller second tree (rollback) is never consistent', () => {
      assert.equal(verifyConsistency(8, 6, ROOTS[8]!, ROOTS[6]!, []), false);
    });

    test('inclusion in an empty tree, or past its end, is refused', () => {
      assert.equal(verifyInclusion(0, 0, SOME_HASH, [], EMPTY_ROOT), false);
      assert.equal(verifyInclusion(8, 8, LEAF_HASHES[7]!, [], ROOTS[8]!), false);
      assert.equal(verifyInclusion(-1, 8, LEAF_HASHES[0]!, [], ROOTS[8]!), false);
    });

    test('a one-leaf tree: its root is the leaf hash and the proof is empty', () => {
      const h = leafHash('data');
      assert.ok(verifyInclusion(0, 1, h, [], h));
      assert.equal(verifyInclusion(0, 1, h, [], Buffer.alloc(0)), false);
    });

    test('proof generation refuses indices and sizes outside the tree', () => {
      const tree = new MerkleTree(LEAF_HASHES);
      assert.throws(() => tree.inclusionProof(8, 8), RangeError);
      assert.throws(() => tree.inclusionProof(0, 9), RangeError);
      assert.throws(() => tree.consistencyProof(5, 4), RangeError);
      assert.throws(() => tree.root(9), RangeError);
      assert.throws(() => tree.push(Buffer.alloc(31)), RangeError);
    });
  });

  describe('property tests (seeded PRNG)', () => {
    const rand = prng(0x9162);
    const MAX = 70;
    const leaves = randomLeaves(rand, MAX);
    const tree = new MerkleTree(leaves);

    test('roots and proofs equal the literal RFC definitions for every size 1..70', () => {
      for (let n = 1; n <= MAX; n++) {
        const d = leaves.slice(0, n);
        assert.deepEqual(tree.root(n), refMth(d), `root ${n}`);
        for (let i = 0; i < n; i++) assert.deepEqual(tree.inclusionProof(i, n), refPath(i, d), `path ${i}/${n}`);
        for (let m = 1; m < n; m++) assert.deepEqual(tree.consistencyProof(m, n), refSubproof(m, d, true), `proof ${m}->${n}`);
      }
    });

    test('every inclusion proof the tree emits verifies, for every size 1..70 and every index', () => {
      for (let n = 1; n <= MAX; n++) {
        const root = tree.root(n);
        for (let i = 0; i < n; i++) assert.ok(verifyInclusion(i, n, leaves[i]!, tree.inclusionProof(i, n), root), `${i}/${n}`);
      }
    });

    test('every consistency proof the tree emits verifies, for every 0 <= m <= n <= 70', () => {
      for (let n = 1; n <= MAX; n++) {
        for (let m = 0; m <= n; m++) assert.ok(verifyConsistency(m, n, tree.root(m), tree.root(n), tree.consistencyProof(m, n)), `${m}->${n}`);
      }
    });

    test('a single flipped bit in a proof hash, the root or the leaf makes inclusion fail', () => {
      for (let n = 1; n <= MAX; n++) {
        const root = tree.root(n);
        for (let i = 0; i < n; i++) {
          const proof = tree.inclusionProof(i, n);
          assert.equal(verifyInclusion(i, n, flipBit(leaves[i]!, rand), proof, root), false, `leaf ${i}/${n}`);
          assert.equal(verifyInclusion(i, n, leaves[i]!, proof, flipBit(root, rand)), false, `root ${i}/${n}`);
          proof.forEach((_, j) => {
            const bad = proof.map((h, x) => (x === j ? flipBit(h, rand) : h));
            assert.equal(verifyInclusion(i, n, leaves[i]!, bad, root), false, `proof[${j}] ${i}/${n}`);
          });
        }
      }
    });

    test('a single flipped bit in a consistency proof hash or either root makes it fail', () => {
      for (let n = 2; n <= MAX; n++) {
        for (let m = 1; m < n; m++) {
          const proof = tree.consistencyProof(m, n);
          const r1 = tree.root(m);
          const r2 = tree.root(n);
          assert.equal(verifyConsistency(m, n, flipBit(r1, rand), r2, proof), false, `root1 ${m}->${n}`);
          assert.equal(verifyConsistency(m, n, r1, flipBit(r2, rand), proof), false, `root2 ${m}->${n}`);
          proof.forEach((_, j) => {
            const bad = proof.map((h, x) => (x === j ? flipBit(h, rand) : h));
            assert.equal(verifyConsistency(m, n, r1, r2, bad), false, `proof[${j}] ${m}->${n}`);
          });
        }
      }
    });

    test('a proof presented for the wrong index or size fails', () => {
      for (let n = 2; n <= MAX; n++) {
        const root = tree.root(n);
        for (let i = 0; i < n; i++) {
          const proof = tree.inclusionProof(i, n);
          for (const j of [i - 1, i + 1]) if (j >= 0 && j < n) assert.equal(verifyInclusion(j, n, leaves[i]!, proof, root), false, `index ${j} for ${i}/${n}`);
          assert.equal(verifyInclusion(i, n * 2, leaves[i]!, proof, root), false, `size ${n * 2} for ${i}/${n}`);
          assert.equal(verifyInclusion(i, Math.floor(n / 2), leaves[i]!, proof, root), false, `size ${Math.floor(n / 2)} for ${i}/${n}`);
        }
        for (let m = 1; m < n; m++) {
          const proof = tree.consistencyProof(m, n);
          const r1 = tree.root(m);
          const r2 = tree.root(n);
          if (m > 1) assert.equal(verifyConsistency(m - 1, n, r1, r2, proof), false, `m-1 for ${m}->${n}`);
          assert.equal(verifyConsistency(m + 1, n, r1, r2, proof), false, `m+1 for ${m}->${n}`);
          assert.equal(verifyConsistency(m, n * 2, r1, r2, proof), false, `n*2 for ${m}->${n}`);
        }
      }
    });

    test('the array helpers agree with the tree', () => {
      const d = leaves.slice(0, 37);
      assert.deepEqual(rootFromLeafHashes(d), tree.root(37));
      assert.deepEqual(inclusionProof(20, d), tree.inclusionProof(20, 37));
      assert.deepEqual(consistencyProof(13, d), tree.consistencyProof(13, 37));
    });

    test('1e5 leaves: a proof hashes O(log^2 n) nodes, never the whole tree again', () => {
      const big = Array.from({ length: 100_000 }, (_, i) => leafHash(`entry ${i}`));
      const t = new MerkleTree(big);
      const root = t.root();
      // Counts the hashes the tree computes (work, not time): node:crypto's createHash is wrapped
      // and the wrapper made visible to merkle.ts's named import.
      const original = nodeCrypto.createHash;
      let hashes = 0;
      nodeCrypto.createHash = ((...args: Parameters<typeof original>) => {
        hashes++;
        return original(...args);
      });
      syncBuiltinESMExports();
      try {
        for (let x = 0; x < 1_000; x++) {
          const i = Math.floor(rand() * big.length);
          const m = 1 + Math.floor(rand() * (big.length - 1));
          const before = hashes;
          const inclusion = t.inclusionProof(i);
          const rootM = t.root(m);
          const consistency = t.consistencyProof(m);
          // log2(1e5) < 17: three proofs of at most 17 subtree hashes of at most 17 node hashes
          // each. Recomputing from the leaves would be about 1e5 per proof.
          assert.ok(hashes - before <= 3 * 17 * 17, `one round hashed ${hashes - before} nodes`);
          assert.ok(verifyInclusion(i, big.length, big[i]!, inclusion, root));
          assert.ok(verifyConsistency(m, big.length, rootM, root, consistency));
        }
      } finally {
        nodeCrypto.createHash = original;
        syncBuiltinESMExports();
      }
      assert.ok(hashes > 0, 'the wrapper saw the tree hash');
    });
  });
});

describe('canonical JSON (leaf data)', () => {
  test('object members are sorted recursively and there is no whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  test('the same value in another member order has the same leaf data', () => {
    assert.equal(canonicalJson({ x: 1, y: [1, 2], z: { q: 'a', p: 'b' } }), canonicalJson({ z: { p: 'b', q: 'a' }, y: [1, 2], x: 1 }));
  });

  test('members that are undefined are left out, as in the stored JSON', () => {
    assert.equal(canonicalJson({ a: undefined, b: 2 }), '{"b":2}');
  });

  test('strings are escaped as JSON.stringify does and keys sort by UTF-16 code units', () => {
    assert.equal(canonicalJson({ 'é': '"\n', e: 'ü', Z: 0 }), '{"Z":0,"e":"ü","é":"\\"\\n"}');
  });

  test('values JSON cannot carry exactly are refused', () => {
    assert.throws(() => canonicalJson({ n: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson({ n: Number.POSITIVE_INFINITY }), TypeError);
    assert.throws(() => canonicalJson({ d: new Date(0) }), TypeError);
    assert.throws(() => canonicalJson({ b: 1n }), TypeError);
    assert.throws(() => canonicalJson([undefined]), TypeError);
    assert.throws(() => canonicalJson(undefined), TypeError);
  });
});

describe('MerkleTree memory: a stored hash keeps nothing else alive', () => {
  // The leaves the audit log reads back are small Buffers cut from Node's shared 8 KB pool (pg's
  // bytea parsing, Buffer.from). A tree that kept such a Buffer, or a copy cut from the pool, kept
  // the whole chunk alive: between two leaves the gateway allocates other pool buffers, so each leaf
  // could hold 8 KB. This measures array-buffer memory after a full GC, not time.
  // (The roots the tree computes are checked against the RFC vectors above.)
  test('20,000 leaves cut from the pool between other allocations hold about 64 bytes each, not pool chunks', () => {
    // In a child process with --expose-gc, so that the count after a full collection is exact.
    const script = `
      import { leafHash, MerkleTree } from ${JSON.stringify(pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'audit', 'merkle.ts')).href)};
      gc();
      const before = process.memoryUsage().arrayBuffers;
      const tree = new MerkleTree();
      let garbage;
      for (let i = 0; i < 20000; i++) {
        const h = Buffer.alloc(4);
        h.writeUInt32BE(i);
        tree.push(Buffer.from(leafHash(h)));
        // What else the process cuts from the pool meanwhile (dropped at once).
        garbage = Buffer.allocUnsafe(3000);
      }
      garbage = undefined;
      // V8 frees the memory of dead array buffers on a background thread after a collection, so one
      // reading straight after gc() can still count some of them: collect and read until two
      // readings agree.
      let held = Number.POSITIVE_INFINITY;
      for (let round = 0; round < 50; round++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
        const now = process.memoryUsage().arrayBuffers - before;
        if (now === held) break;
        held = now;
      }
      process.stdout.write(JSON.stringify({ held, size: tree.size }));
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { held, size } = JSON.parse(r.stdout) as { held: number; size: number };
    assert.equal(size, 20_000);
    // 20,000 leaves and 19,999 inner nodes at 32 bytes, rows doubling: at most ~2.6 MB (2.1 MB
    // measured). A pool chunk kept per leaf or two would be 80-160 MB.
    assert.ok(held < 6_000_000, `the tree holds ${held} bytes of array buffers`);
  });

  test('a hash read from the tree is a copy: changing it changes nothing stored', () => {
    const tree = new MerkleTree(LEAF_HASHES.slice(0, 5));
    const root = tree.root();
    tree.leafHash(2).fill(0);
    tree.root(4).fill(0);
    assert.ok(tree.root().equals(root));
    assert.ok(tree.leafHash(2).equals(LEAF_HASHES[2] ?? Buffer.alloc(0)));
  });
});
