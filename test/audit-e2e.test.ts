/**
 * The audit trail of Kenneth's story on both gateways (issue 7): the expected BALP events, his
 * access log with proofs a citizen can check on his own, peers witnessing each other's log, fail
 * closed when the log cannot be written, and a rolled-back log caught by the peer's witness.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ES_PRACTITIONERS, KENNETH } from '../sandbox/seed.js';
import { verifyCheckpointJws } from '../src/audit/log.js';
import { verifyInclusion } from '../src/audit/merkle.js';
import { verifyAuditLog } from '../src/audit/verify.js';
import { signingKeysFor } from '../src/trust/trust-list.js';
import { startWorld, type World } from './helpers/world.js';
import { call as api } from './helpers/http.js';

const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');


async function kinds(world: World, country: 'DK' | 'ES'): Promise<string[]> {
  const db = country === 'DK' ? world.dk.gateway.db : world.es.gateway.db;
  const { rows } = await db.query<{ event: { subtype?: Array<{ system?: string; code?: string }>; outcome?: string } }>('SELECT event FROM audit_log ORDER BY seq');
  return rows.map((r) => `${r.event.subtype?.find((s) => s.system === 'urn:ncpeh:audit-kind')?.code ?? '?'}:${r.event.outcome ?? '?'}`);
}

describe('audit across both gateways', () => {
  let world: World;
  let kenneth: string;
  let ana: string;
  let ref: string;

  before(async () => {
    world = await startWorld();
    kenneth = await world.citizenSignIn('DK', KENNETH.identifier.value);
    const start = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const consent = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kenneth,
      body: { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: ['48765-2'], period: { start } },
    });
    assert.equal(consent.status, 201);
    ana = await world.hcpSignIn('ES', ANA?.personIdentifier.value ?? '');
    const found = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token: ana,
      body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
    });
    ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    const summary = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${ref}/summary`, { token: ana });
    assert.equal(summary.status, 200);
  });
  after(async () => world.close());

  test("Kenneth's flow leaves the expected AuditEvents on both sides", async () => {
    const dk = await kinds(world, 'DK');
    for (const k of ['sign-in:0', 'consent-change:0', 'query:0', 'export:0']) assert.ok(dk.includes(k), `DK has ${k}: ${dk.join(' ')}`);
    const es = await kinds(world, 'ES');
    for (const k of ['sign-in:0', 'query:0', 'import:0']) assert.ok(es.includes(k), `ES has ${k}: ${es.join(' ')}`);
  });

  test('his access log shows the Spanish doctor with a proof he can verify himself', async () => {
    const res = await api(`${world.dk.apiUrl}/api/v1/me/access-log`, { token: kenneth });
    assert.equal(res.status, 200);
    const checkpoint = res.body.checkpoint as { jws: string; treeSize: number };
    const entries = res.body.entries as Array<{ who: string; country: string | null; verified: boolean; proof: { leafIndex: number; treeSize: number; leafHash: string; auditPath: string[] } }>;
    const export_ = entries.find((e) => e.country === 'ES' && e.who.includes('Ana'));
    assert.ok(export_, JSON.stringify(entries.map((e) => [e.who, e.country])));
    assert.equal(export_.verified, true);
    // Independently of the gateway's own flag: the checkpoint is signed by DK's trust-list key...
    const list = world.es.gateway.trust.require();
    const cp = await verifyCheckpointJws(checkpoint.jws, { keys: signingKeysFor(list, 'DK') });
    assert.equal(cp.claims.treeSize, checkpoint.treeSize);
    // ...and the entry's path leads to its root (RFC 9162 section 2.1.3.2).
    for (const e of entries) {
      const ok = verifyInclusion(e.proof.leafIndex, e.proof.treeSize, Buffer.from(e.proof.leafHash, 'base64'), e.proof.auditPath.map((h) => Buffer.from(h, 'base64')), cp.rootHash);
      assert.ok(ok, `entry ${e.proof.leafIndex} verifies`);
    }
  });

  test('the consumer witnessed the provider\'s signed checkpoint, and both logs verify', async () => {
    const { rows } = await world.es.gateway.db.query<{ n: string | number }>("SELECT count(*) AS n FROM audit_witness WHERE peer_country = 'DK'");
    assert.ok(Number(rows[0]?.n) >= 1);
    for (const cw of [world.dk, world.es]) {
      const result = await verifyAuditLog(cw.gateway.db, { signingKeys: { keys: signingKeysFor(cw.gateway.trust.require(), cw.country) } });
      assert.deepEqual(result.ok, true, JSON.stringify(result));
    }
  });

  for (const side of ['DK', 'ES'] as const) {
    test(`audit store unavailable at ${side === 'DK' ? 'the provider' : 'the consumer'}: the summary is refused and nothing is disclosed`, async () => {
      const db = (side === 'DK' ? world.dk : world.es).gateway.db;
      await db.query('ALTER TABLE audit_log RENAME TO audit_log_offline');
      try {
        const res = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${ref}/summary`, { token: ana });
        assert.equal(res.status, 503);
        assert.equal((res.body.issue as Array<{ details: { coding: Array<{ code: string }> } }>)[0]?.details.coding[0]?.code, 'audit.unavailable');
        assert.ok(!JSON.stringify(res.body).includes('AllergyIntolerance'));
      } finally {
        await db.query('ALTER TABLE audit_log_offline RENAME TO audit_log');
      }
    });
  }

  test('a provider that restores an older log is caught by the consumer\'s witness', async () => {
    const db = world.dk.gateway.db;
    const witnessed = await world.es.gateway.db.query<{ n: string | number }>("SELECT max(tree_size) AS n FROM audit_witness WHERE peer_country = 'DK'");
    const size = Number(witnessed.rows[0]?.n);
    assert.ok(size > 2);
    // "Restore a backup": the log and its checkpoints as they were a few entries ago.
    await db.query('ALTER TABLE audit_log DISABLE TRIGGER ALL');
    await db.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL');
    await db.query('DELETE FROM audit_log WHERE seq >= $1', [size - 2]);
    await db.query('DELETE FROM audit_checkpoints WHERE tree_size >= $1', [size - 2]);
    await db.query('ALTER TABLE audit_log ENABLE TRIGGER ALL');
    await db.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER ALL');
    // Ordinary traffic continues; DK's next checkpoint goes out with the answer.
    const after = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token: ana,
      body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
    });
    assert.equal(after.status, 200);
    const metrics = await world.es.gateway.gateway.api.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /ncpeh_audit_witness_refusals_total\{peer="DK",reason="(rollback|fork|proof-invalid)",country="ES"\} [1-9]/);
  });
});
