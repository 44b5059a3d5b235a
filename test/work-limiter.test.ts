/**
 * The bulkhead (src/http/work-limiter.ts): its rules, each proved by the case it must refuse or
 * order. Work is held open by the test (deferred promises), so nothing depends on timing except the
 * queue timeout, which is only asserted to refuse, never measured.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../src/http/errors.js';
import { KeyedWorkLimiters, WorkLimiter, type WorkLimiterOptions } from '../src/http/work-limiter.js';

interface Held {
  readonly started: Promise<void>;
  release(value?: string): void;
  fail(e: Error): void;
}

/** Work that starts (noting it) and finishes only when the test says so. */
function held(log: string[], name: string): { work: () => Promise<string>; h: Held } {
  let markStarted!: () => void;
  const started = new Promise<void>((r) => (markStarted = r));
  let release!: (v: string) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<string>((res, rej) => {
    release = res;
    fail = rej;
  });
  return {
    work: async () => {
      log.push(`start ${name}`);
      markStarted();
      return done;
    },
    h: { started, release: (v = name) => release(v), fail },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function limiter(o: Partial<WorkLimiterOptions> = {}): WorkLimiter {
  return new WorkLimiter({ concurrency: 2, maxQueuedPerKey: 10, queueTimeoutMs: 60_000, ...o });
}

async function busy(p: Promise<unknown>, detail: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GatewayError);
    assert.equal(e.code, 'service.busy');
    assert.equal(e.status, 503);
    assert.match(e.message, detail);
    return true;
  });
}

describe('WorkLimiter (bulkhead)', () => {
  test('runs at most `concurrency` pieces at once; the next starts when one finishes', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 2 });
    const a = held(log, 'a');
    const b = held(log, 'b');
    const c = held(log, 'c');
    const pa = l.run('ES', a.work);
    const pb = l.run('ES', b.work);
    const pc = l.run('ES', c.work);
    await Promise.all([a.h.started, b.h.started]);
    await tick();
    assert.deepEqual(log, ['start a', 'start b']);
    assert.equal(l.running, 2);
    assert.equal(l.queued, 1);
    b.h.release();
    assert.equal(await pb, 'b');
    await c.h.started;
    assert.deepEqual(log, ['start a', 'start b', 'start c']);
    a.h.release();
    c.h.release();
    assert.deepEqual(await Promise.all([pa, pc]), ['a', 'c']);
    assert.equal(l.running, 0);
    assert.equal(l.queued, 0);
  });

  test('a piece that fails frees its slot for the next', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 1 });
    const a = held(log, 'a');
    const b = held(log, 'b');
    const pa = l.run('ES', a.work);
    const pb = l.run('ES', b.work);
    await a.h.started;
    a.h.fail(new Error('national server down'));
    await assert.rejects(pa, /national server down/);
    await b.h.started;
    b.h.release();
    assert.equal(await pb, 'b');
    assert.equal(l.running, 0);
  });

  test('a work function that throws synchronously frees its slot too', async () => {
    const l = limiter({ concurrency: 1 });
    await assert.rejects(
      l.run('ES', () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(l.running, 0);
    assert.equal(await l.run('ES', async () => 'next'), 'next');
  });

  test('refuses with service.busy (Retry-After) when the key\'s queue is full, and the refused piece never runs', async () => {
    const log: string[] = [];
    const refused: string[] = [];
    const l = limiter({ concurrency: 1, maxQueuedPerKey: 1, retryAfterSeconds: 2, onRefused: (key, reason) => refused.push(`${key} ${reason}`) });
    const a = held(log, 'a');
    const b = held(log, 'b');
    const c = held(log, 'c');
    const pa = l.run('ES', a.work);
    const pb = l.run('ES', b.work);
    const pc = l.run('ES', c.work);
    await assert.rejects(pc, (e: unknown) => e instanceof GatewayError && e.code === 'service.busy' && e.retryAfter === 2);
    assert.deepEqual(refused, ['ES queue-full']);
    // Another country still has its own place in the queue.
    const d = held(log, 'd');
    const pd = l.run('PT', d.work);
    assert.equal(l.queued, 2);
    a.h.release();
    await b.h.started;
    b.h.release();
    await d.h.started;
    d.h.release();
    await Promise.all([pa, pb, pd]);
    assert.ok(!log.includes('start c'), 'the refused piece never ran');
  });

  test('with no queue (maxQueuedPerKey 0) a piece beyond the slots is refused at once', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 1, maxQueuedPerKey: 0 });
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    await busy(l.run('ES', async () => 'x'), /queue full/);
    a.h.release();
    await pa;
  });

  test('a piece that waited longer than queueTimeoutMs is refused and leaves the queue', async () => {
    const log: string[] = [];
    const refused: string[] = [];
    const l = limiter({ concurrency: 1, queueTimeoutMs: 20, onRefused: (key, reason) => refused.push(`${key} ${reason}`) });
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    await busy(l.run('ES', held(log, 'late').work), /waited too long/);
    assert.deepEqual(refused, ['ES queue-timeout']);
    assert.equal(l.queued, 0);
    a.h.release();
    await pa;
    assert.ok(!log.includes('start late'));
    assert.equal(l.running, 0);
  });

  test('keys take turns: a country with many waiting cannot starve another', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 1 });
    const first = held(log, 'es0');
    const pending = [l.run('ES', first.work)];
    const works = new Map<string, ReturnType<typeof held>>();
    for (const name of ['es1', 'es2', 'es3', 'pt1', 'pt2', 'fr1']) {
      const w = held(log, name);
      works.set(name, w);
      pending.push(l.run(name.slice(0, 2).toUpperCase(), w.work));
    }
    await first.h.started;
    first.h.release();
    // Release each piece as it starts; the order of starts is the order of service.
    for (let i = 0; i < 6; i++) {
      await tick();
      const last = log.at(-1)?.replace('start ', '') ?? '';
      const w = works.get(last);
      assert.ok(w, `a piece started after ${log.join(', ')}`);
      await w.h.started;
      w.h.release();
      await tick();
    }
    await Promise.all(pending);
    assert.deepEqual(log, ['start es0', 'start es1', 'start pt1', 'start fr1', 'start es2', 'start pt2', 'start es3']);
  });

  test('a piece whose caller leaves while it waits leaves the queue at once, freeing its place', async () => {
    const log: string[] = [];
    const refused: string[] = [];
    const l = limiter({ concurrency: 1, maxQueuedPerKey: 1, onRefused: (key, reason) => refused.push(`${key} ${reason}`) });
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    const gone = new AbortController();
    const pb = l.run('ES', held(log, 'b').work, { signal: gone.signal });
    assert.equal(l.queued, 1);
    gone.abort();
    await busy(pb, /caller left/);
    assert.equal(l.queued, 0);
    // Its place is free again for a caller who is still there.
    const c = held(log, 'c');
    const pc = l.run('ES', c.work);
    assert.equal(l.queued, 1);
    a.h.release();
    await pa;
    await c.h.started;
    c.h.release();
    await pc;
    assert.deepEqual(log, ['start a', 'start c']);
    assert.deepEqual(refused, ['ES caller-left']);
    assert.equal(l.running, 0);
  });

  test('a caller already gone is refused without waiting, and one gone as its slot is granted is skipped', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 1 });
    const gone = new AbortController();
    gone.abort();
    await busy(l.run('ES', held(log, 'x').work, { signal: gone.signal }), /caller left/);
    assert.equal(l.running, 0);
    // Aborted in the same turn as the grant: the grant wins the race to the queue, the check after it skips the work.
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    const late = new AbortController();
    const pb = l.run('ES', held(log, 'b').work, { signal: late.signal });
    const c = held(log, 'c');
    const pc = l.run('ES', c.work);
    a.h.release();
    late.abort();
    await pa;
    await busy(pb, /caller left/);
    await c.h.started;
    c.h.release();
    await pc;
    assert.deepEqual(log, ['start a', 'start c']);
    assert.equal(l.running, 0);
    assert.equal(l.queued, 0);
  });

  test('the queue for all keys together is bounded too', async () => {
    const log: string[] = [];
    const l = limiter({ concurrency: 1, maxQueuedPerKey: 5, maxQueued: 2 });
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    const p = held(log, 'p');
    const f = held(log, 'f');
    const waiting = [l.run('PT', p.work), l.run('FR', f.work)];
    await busy(l.run('IT', async () => 'i'), /queue full/);
    assert.throws(() => l.checkRoom('IT'), (e: unknown) => e instanceof GatewayError && e.code === 'service.busy');
    a.h.release();
    await pa;
    await p.h.started;
    p.h.release();
    await f.h.started;
    f.h.release();
    await Promise.all(waiting);
    assert.deepEqual(log, ['start a', 'start p', 'start f']);
    // With room again, checkRoom lets it through.
    l.checkRoom('IT');
  });

  test('a metrics callback that throws changes neither the counts nor the outcome', async () => {
    const l = limiter({
      concurrency: 1,
      maxQueuedPerKey: 0,
      onChange: () => {
        throw new Error('metrics down');
      },
      onRefused: () => {
        throw new Error('metrics down');
      },
    });
    const log: string[] = [];
    const a = held(log, 'a');
    const pa = l.run('ES', a.work);
    await busy(l.run('ES', async () => 'x'), /queue full/);
    a.h.release();
    assert.equal(await pa, 'a');
    assert.equal(l.running, 0);
  });

  test('reports running and queued counts on every change', async () => {
    const seen: string[] = [];
    const log: string[] = [];
    const l = limiter({ concurrency: 1, onChange: (r, q) => seen.push(`${r}/${q}`) });
    const a = held(log, 'a');
    const b = held(log, 'b');
    const pa = l.run('ES', a.work);
    const pb = l.run('ES', b.work);
    a.h.release();
    await pa;
    await b.h.started;
    b.h.release();
    await pb;
    assert.deepEqual(seen, ['1/0', '1/1', '1/0', '0/0']);
  });

  test('refuses nonsensical settings at construction', () => {
    assert.throws(() => limiter({ concurrency: 0 }), RangeError);
    assert.throws(() => limiter({ concurrency: 1.5 }), RangeError);
    assert.throws(() => limiter({ maxQueuedPerKey: -1 }), RangeError);
    assert.throws(() => limiter({ queueTimeoutMs: 0 }), RangeError);
    assert.throws(() => limiter({ queueTimeoutMs: 2 ** 31 }), RangeError);
    assert.throws(() => limiter({ maxQueued: -1 }), RangeError);
    assert.throws(() => new KeyedWorkLimiters({ concurrency: 0, maxQueuedPerKey: 1, queueTimeoutMs: 1 }), RangeError);
  });
});

describe('KeyedWorkLimiters (one bulkhead per peer country)', () => {
  test('a country whose slots are all held does not hold up another country', async () => {
    const log: string[] = [];
    const changes: string[] = [];
    const limiters = new KeyedWorkLimiters({ concurrency: 1, maxQueuedPerKey: 0, queueTimeoutMs: 60_000, onChange: (key, r, q) => changes.push(`${key} ${r}/${q}`) });
    const dead = held(log, 'to DK');
    const pDead = limiters.run('DK', dead.work);
    await busy(limiters.run('DK', async () => 'x'), /queue full/);
    assert.equal(await limiters.run('PT', async () => 'to PT'), 'to PT');
    dead.h.release();
    assert.equal(await pDead, 'to DK');
    assert.deepEqual(changes, ['DK 1/0', 'PT 1/0', 'PT 0/0', 'DK 0/0']);
  });
});
