import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RefusalCoalescer, refusalDescription, VARIOUS_ADDRESSES, type Refusal } from '../src/audit/refusal-coalescer.js';

function recorder(opts: { maxSources?: number; windowMs?: number; fail?: boolean } = {}) {
  const written: Refusal[] = [];
  const errors: unknown[] = [];
  const coalescer = new RefusalCoalescer({
    windowMs: opts.windowMs ?? 3_600_000,
    maxSources: opts.maxSources ?? 8,
    write: async (r) => {
      if (opts.fail === true) throw new Error('audit store down');
      written.push(r);
    },
    onError: (e) => errors.push(e),
  });
  return { coalescer, written, errors };
}

describe('RefusalCoalescer (refused handshakes in the audit log)', () => {
  test('the first refusal of a source is written at once, the rest of the window as one count', async () => {
    const { coalescer, written } = recorder();
    for (let i = 0; i < 50; i++) coalescer.refuse('CERT_HAS_EXPIRED', '192.0.2.7');
    await coalescer.close();
    assert.deepEqual(
      written.map((r) => [r.reason, r.remoteAddress, r.repeated]),
      [
        ['CERT_HAS_EXPIRED', '192.0.2.7', 0],
        ['CERT_HAS_EXPIRED', '192.0.2.7', 49],
      ],
    );
  });

  test('sources are told apart by reason and address; a single refusal gets no summary', async () => {
    const { coalescer, written } = recorder();
    coalescer.refuse('CERT_HAS_EXPIRED', '192.0.2.7');
    coalescer.refuse('UNABLE_TO_VERIFY_LEAF_SIGNATURE', '192.0.2.7');
    coalescer.refuse('CERT_HAS_EXPIRED', '192.0.2.8');
    coalescer.refuse('CERT_HAS_EXPIRED', '192.0.2.8');
    await coalescer.close();
    assert.deepEqual(
      written.map((r) => `${r.reason} ${r.remoteAddress} ${r.repeated}`),
      ['CERT_HAS_EXPIRED 192.0.2.7 0', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE 192.0.2.7 0', 'CERT_HAS_EXPIRED 192.0.2.8 0', 'CERT_HAS_EXPIRED 192.0.2.8 1'],
    );
  });

  test('a new window writes the first refusal at once again', async () => {
    const { coalescer, written } = recorder();
    coalescer.refuse('X', '192.0.2.7');
    coalescer.refuse('X', '192.0.2.7');
    coalescer.flush();
    coalescer.refuse('X', '192.0.2.7');
    await coalescer.close();
    assert.deepEqual(
      written.map((r) => r.repeated),
      [0, 1, 0],
    );
  });

  test('the window ends by itself', async () => {
    const { coalescer, written } = recorder({ windowMs: 30 });
    coalescer.refuse('X', '192.0.2.7');
    coalescer.refuse('X', '192.0.2.7');
    coalescer.refuse('X', '192.0.2.7');
    for (let i = 0; i < 100 && written.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      written.map((r) => r.repeated),
      [0, 2],
    );
    await coalescer.close();
  });

  test('many addresses: beyond maxSources they share one key per reason, and every refusal is counted', async () => {
    const { coalescer, written } = recorder({ maxSources: 4 });
    for (let i = 0; i < 1000; i++) coalescer.refuse('CERT_HAS_EXPIRED', `198.51.100.${i % 250}`);
    await coalescer.close();
    // 4 tracked addresses + the shared key, each a first record and (having repeated) a summary.
    assert.ok(written.length <= 10, `${written.length} records for 1000 refusals`);
    assert.equal(
      written.reduce((n, r) => n + 1 + r.repeated, 0) - written.filter((r) => r.repeated > 0).length,
      1000,
      'first records plus counts account for every refusal',
    );
    assert.ok(written.some((r) => r.remoteAddress === VARIOUS_ADDRESSES), 'the shared key is written');
  });

  test('a failed write is reported to onError, not thrown', async () => {
    const failing = recorder({ fail: true });
    failing.coalescer.refuse('X', '192.0.2.7');
    await failing.coalescer.close();
    assert.equal(failing.errors.length, 1);
  });

  test('the description keeps the reason first and says how many more, over what time', () => {
    assert.equal(refusalDescription('tls:', { reason: 'CERT_HAS_EXPIRED', remoteAddress: 'a', repeated: 0, windowMs: 60_000 }), 'tls:CERT_HAS_EXPIRED');
    assert.equal(
      refusalDescription('tls:', { reason: 'CERT_HAS_EXPIRED', remoteAddress: 'a', repeated: 41, windowMs: 60_000 }),
      'tls:CERT_HAS_EXPIRED x41 more within 60 s',
    );
  });

  test('refuses a window or a bound that is not positive', () => {
    const write = async () => undefined;
    assert.throws(() => new RefusalCoalescer({ windowMs: 0, maxSources: 1, write, onError: () => undefined }), RangeError);
    assert.throws(() => new RefusalCoalescer({ windowMs: 1000, maxSources: 0, write, onError: () => undefined }), RangeError);
  });
});
