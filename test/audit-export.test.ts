import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { buildAuditEvent, type AuditOutcome } from '../src/audit/balp.js';
import {
  escapeSdParam,
  exportNdjson,
  exportToSyslog,
  formatSyslog,
  frameSyslog,
  SyslogExportError,
  SyslogTlsExporter,
  type AuditExportEntry,
} from '../src/audit/export.js';
import { AuditLog } from '../src/audit/log.js';
import { canonicalJson, leafHashOfJson } from '../src/audit/merkle.js';
import type { Db } from '../src/storage/db.js';
import { initPki } from '../src/trust/pki.js';
import { openTestDb } from './helpers/db.js';

const DK = 'urn:ncpeh:ncp:DK';
const ES = 'urn:ncpeh:ncp:ES';
const PATIENT_KEY = 'DK-CPR-0101901234';
const BOM = '\uFEFF';

function event(i: number, outcome: AuditOutcome = 'success'): ReturnType<typeof buildAuditEvent> {
  return buildAuditEvent({
    kind: i % 2 === 0 ? 'export' : 'read',
    outcome,
    recorded: new Date(Date.UTC(2025, 2, 1, 10, 0, i)),
    client: { id: ES, network: '10.0.0.7' },
    server: { id: DK, network: 'https://ncp.dk.example/ncp/v1' },
    sourceCountry: 'ES',
    patient: { reference: 'Patient/opaque-7f3a' },
    transactionId: `req-${i}`,
  });
}

async function seed(db: Db, n: number, from = 0): Promise<void> {
  const log = new AuditLog(db, { ncpId: DK });
  for (let i = from; i < from + n; i++) await log.append(event(i), { patientKey: PATIENT_KEY });
}

/** A Writable with a tiny buffer that completes writes asynchronously, so backpressure is real. */
function slowSink(): { stream: Writable; text: () => string; drains: () => number } {
  const chunks: Buffer[] = [];
  let drains = 0;
  const stream = new Writable({
    highWaterMark: 64,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      setImmediate(cb);
    },
  });
  stream.on('drain', () => drains++);
  return { stream, text: () => Buffer.concat(chunks).toString('utf8'), drains: () => drains };
}

async function ndjson(db: Db, opts: Parameters<typeof exportNdjson>[2] = {}): Promise<{ count: number; lines: Record<string, unknown>[]; raw: string; drains: number }> {
  const sink = slowSink();
  const count = await exportNdjson(db, sink.stream, opts);
  const raw = sink.text();
  assert.ok(raw.endsWith('\n') || raw === '');
  const lines = raw === '' ? [] : raw.slice(0, -1).split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { count, lines, raw, drains: sink.drains() };
}

describe('NDJSON export', () => {
  let db: Db;
  before(async () => {
    db = await openTestDb();
    await seed(db, 5);
  });
  after(() => db.close());

  test('writes one parseable line per entry in seq order, with leaf hashes that match the events', async () => {
    const { count, lines, drains } = await ndjson(db, { batch: 2 });
    assert.equal(count, 5);
    assert.deepEqual(
      lines.map((l) => l['seq']),
      [0, 1, 2, 3, 4],
    );
    assert.ok(drains > 0, 'the export waited for drain');
    for (const line of lines) {
      assert.deepEqual(Object.keys(line), ['seq', 'recordedAt', 'leafHash', 'event']);
      assert.equal(line['leafHash'], leafHashOfJson(line['event']).toString('base64'));
      assert.equal((line['event'] as Record<string, unknown>)['id'], String(line['seq']));
    }
    assert.equal(lines[3]?.['recordedAt'], '2025-03-01T10:00:03.000Z');
  });

  test('never exports the patient key', async () => {
    const { raw } = await ndjson(db);
    assert.ok(!raw.includes(PATIENT_KEY));
    assert.ok(!/patient_?key/i.test(raw));
  });

  test('exports only entries after `since` and up to `until`', async () => {
    const later = await ndjson(db, { since: 2, batch: 1 });
    assert.equal(later.count, 2);
    assert.deepEqual(
      later.lines.map((l) => l['seq']),
      [3, 4],
    );
    const middle = await ndjson(db, { since: 0, until: 2 });
    assert.deepEqual(
      middle.lines.map((l) => l['seq']),
      [1, 2],
    );
    assert.equal((await ndjson(db, { since: 4 })).count, 0);
  });

  test('rejects a non-integer batch', async () => {
    await assert.rejects(ndjson(db, { batch: 0 }), RangeError);
  });
});

describe('RFC 5424 formatting', () => {
  const leafHash = Buffer.alloc(32, 0xab);
  const ev: Record<string, unknown> = { ...event(1, 'serious'), id: '7' };
  const entry: AuditExportEntry = { seq: 7, recordedAt: new Date('2025-03-01T10:00:01.000Z'), leafHash, event: ev };

  test('PRI is facility * 8 + severity from the outcome, version 1, MSGID the audit kind, BOM before the JSON', () => {
    const msg = formatSyslog(entry, { hostname: 'ncp.dk.example', facility: 13 });
    assert.equal(
      msg,
      `<108>1 2025-03-01T10:00:01.000Z ncp.dk.example ncpeh - read [ncpeh@32473 seq="7" leafHash="${leafHash.toString('base64')}"] ${BOM}${canonicalJson(ev)}`,
    );
    // outcome '8' (serious) is warning (4): 13 * 8 + 4.
    assert.ok(msg.startsWith('<108>1 '));
  });

  test('severity follows the outcome and the facility is configurable (authpriv 10)', () => {
    const pri = (outcome: AuditOutcome): string => formatSyslog({ ...entry, event: { ...event(0, outcome) } }, { hostname: 'h', facility: 10 }).split(' ')[0] ?? '';
    assert.equal(pri('success'), '<86>1');
    assert.equal(pri('minor'), '<85>1');
    assert.equal(pri('serious'), '<84>1');
    assert.equal(pri('major'), '<83>1');
  });

  test('header fields are printable US-ASCII within their maximum length, NILVALUE when absent', () => {
    const msg = formatSyslog({ ...entry, event: { resourceType: 'AuditEvent', outcome: '0' } }, { hostname: `bad host\u00e9${'x'.repeat(300)}`, appName: 'a'.repeat(60), procId: '42' });
    const [, , hostname, appName, procId, msgId] = msg.split(' ');
    assert.equal(hostname, `badhost${'x'.repeat(248)}`);
    assert.equal(appName, 'a'.repeat(48));
    assert.equal(procId, '42');
    assert.equal(msgId, '-');
    assert.equal(formatSyslog(entry, { hostname: '' }).split(' ')[2], '-');
  });

  test('escapes ", \\ and ] in SD-PARAM values (RFC 5424 section 6.3.3)', () => {
    assert.equal(escapeSdParam('a"b\\c]d'), 'a\\"b\\\\c\\]d');
  });

  test('frames with the octet count of the UTF-8 message (RFC 5425)', () => {
    const framed = frameSyslog('é');
    assert.equal(framed.toString('utf8'), '2 é');
  });
});

interface Collector {
  port: number;
  frames: string[];
  connections: () => number;
  dropAll: () => void;
  close: () => Promise<void>;
}

/** A syslog collector on loopback speaking RFC 5425: TLS, octet-counted frames. */
async function startCollector(key: Buffer, cert: Buffer): Promise<Collector> {
  const frames: string[] = [];
  const sockets = new Set<tls.TLSSocket>();
  let connections = 0;
  const server = tls.createServer({ key, cert, minVersion: 'TLSv1.2' }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) return;
        const lenText = buf.subarray(0, sp).toString('ascii');
        assert.match(lenText, /^[1-9][0-9]*$/, 'MSGLEN is a positive decimal');
        const len = Number(lenText);
        if (buf.length < sp + 1 + len) return;
        frames.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
        buf = buf.subarray(sp + 1 + len);
      }
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    frames,
    connections: () => connections,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function parseFrame(frame: string): { pri: string; msgId: string; seq: number; leafHash: string; event: unknown } {
  const m = /^<(\d+)>1 \S+ \S+ ncpeh - (\S+) \[ncpeh@32473 seq="(\d+)" leafHash="([A-Za-z0-9+/=]+)"\] \uFEFF(\{.*\})$/s.exec(frame);
  assert.ok(m, `frame has the RFC 5424 shape: ${frame.slice(0, 120)}`);
  return { pri: m[1] ?? '', msgId: m[2] ?? '', seq: Number(m[3]), leafHash: m[4] ?? '', event: JSON.parse(m[5] ?? '') };
}

describe('syslog over TLS', () => {
  let dir: string;
  let db: Db;
  let collector: Collector;
  let ca: Buffer;
  let otherCa: Buffer;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ncpeh-audit-export-'));
    const pki = await initPki({ outDir: path.join(dir, 'pki'), countries: ['DK'] });
    const other = await initPki({ outDir: path.join(dir, 'other-pki'), countries: ['DK'] });
    const dk = pki.countries['DK'];
    assert.ok(dk);
    ca = await readFile(pki.ca.cert);
    otherCa = await readFile(other.ca.cert);
    collector = await startCollector(await readFile(dk.tlsServerKey), await readFile(dk.tlsServerCert));
    db = await openTestDb();
    await seed(db, 5);
  });
  after(async () => {
    await collector.close();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  function exporter(trust: Buffer): SyslogTlsExporter {
    return new SyslogTlsExporter({ host: '127.0.0.1', port: collector.port, ca: trust, hostname: 'ncp.dk.example', facility: 13, connectTimeoutMs: 5_000 });
  }

  async function waitForFrames(n: number): Promise<void> {
    for (let i = 0; i < 200 && collector.frames.length < n; i++) await sleep(10);
  }

  test('a collector trusted through the configured CA receives one octet-counted frame per entry, on one connection', async () => {
    const ex = exporter(ca);
    try {
      const last = await exportToSyslog(db, ex, { batch: 2 });
      assert.equal(last, 4);
      await waitForFrames(5);
      const parsed = collector.frames.map(parseFrame);
      assert.deepEqual(
        parsed.map((p) => p.seq),
        [0, 1, 2, 3, 4],
      );
      for (const p of parsed) {
        assert.equal(p.pri, '110'); // log audit (13) * 8 + info (6)
        assert.equal(p.msgId, p.seq % 2 === 0 ? 'export' : 'read');
        assert.equal(p.leafHash, leafHashOfJson(p.event).toString('base64'));
      }
      assert.ok(!collector.frames.join('').includes(PATIENT_KEY));

      // The cursor resumes after the last seq sent; the connection is reused.
      await seed(db, 2, 5);
      assert.equal(await exportToSyslog(db, ex, { since: last }), 6);
      await waitForFrames(7);
      assert.deepEqual(
        collector.frames.slice(5).map((f) => parseFrame(f).seq),
        [5, 6],
      );
      assert.equal(await exportToSyslog(db, ex, { since: 6 }), 6, 'nothing new: the cursor stays');
      assert.equal(collector.connections(), 1);
    } finally {
      await ex.close();
    }
  });

  test('reconnects on the next send after the collector dropped the connection', async () => {
    const ex = exporter(ca);
    const before = collector.frames.length;
    const connections = collector.connections();
    try {
      const { rows } = await db.query<{ seq: unknown }>('SELECT max(seq) AS seq FROM audit_log');
      const since = Number(rows[0]?.seq) - 1;
      assert.equal(await exportToSyslog(db, ex, { since }), since + 1);
      await waitForFrames(before + 1);
      collector.dropAll();
      await sleep(100);
      assert.equal(await exportToSyslog(db, ex, { since }), since + 1);
      await waitForFrames(before + 2);
      assert.equal(collector.frames.length, before + 2);
      assert.equal(collector.connections(), connections + 2);
    } finally {
      await ex.close();
    }
  });

  test('refuses a collector whose certificate does not chain to the configured CA, and sends nothing', async () => {
    const ex = exporter(otherCa);
    const before = collector.frames.length;
    try {
      const error = await exportToSyslog(db, ex, {}).then(
        () => assert.fail('export to an untrusted collector succeeded'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof SyslogExportError);
      assert.equal(error.lastSent, undefined);
      // The collector's certificate was issued by another CA: node's verification refuses the chain.
      assert.ok(error.cause instanceof Error);
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      await sleep(50);
      assert.equal(collector.frames.length, before);
    } finally {
      await ex.close();
    }
  });
});
