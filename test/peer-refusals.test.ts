/**
 * Refused TLS handshakes on a real peer listener: every one is counted, and the audit log gets the
 * first from a source at once and the rest of the window as one record with their count, so that
 * anyone able to open a TCP connection cannot grow the audit log at will.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { startTestGateway } from './helpers/gateway.js';
import { handshakeError } from './helpers/tls.js';

type Running = Awaited<ReturnType<typeof startTestGateway>>;

const FLOOD = 30;

describe('refused peer handshakes in the audit log', () => {
  let deployment: TestDeployment;
  let es: Running;

  before(async () => {
    deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
    const file = deployment.configFile('ES');
    const doc = JSON.parse(await readFile(file, 'utf8')) as { peer: Record<string, unknown> };
    doc.peer.refusedHandshakeAuditSeconds = 1;
    await writeFile(file, JSON.stringify(doc, null, 2));
    es = await startTestGateway(deployment, 'ES');
  });
  after(async () => {
    await es?.stop();
    await deployment?.cleanup();
  });

  async function counted(): Promise<Map<string, number>> {
    const metrics = await es.gateway.api.inject({ method: 'GET', url: '/metrics' });
    const out = new Map<string, number>();
    for (const m of metrics.body.matchAll(/ncpeh_peer_tls_refusals_total\{reason="([A-Z0-9_]+)",country="ES"\} (\d+)/g)) out.set(m[1] ?? '', Number(m[2]));
    return out;
  }

  async function audited(): Promise<string[]> {
    const { rows } = await es.db.query<{ event: { outcomeDesc?: string; subtype?: Array<{ system?: string; code?: string }> } }>('SELECT event FROM audit_log ORDER BY seq');
    return rows
      .filter((r) => r.event.subtype?.some((c) => c.system === 'urn:ncpeh:audit-kind' && c.code === 'peer-auth-failure') === true)
      .map((r) => r.event.outcomeDesc ?? '');
  }

  /** Refusals an audit record stands for: 1 for the first of a window, N for "xN more". */
  function accountedFor(descriptions: readonly string[], reason: string): number {
    let n = 0;
    for (const d of descriptions) {
      if (d === `tls:${reason}`) n += 1;
      const more = new RegExp(`^tls:${reason} x(\\d+) more within 1 s$`).exec(d);
      if (more !== null) n += Number(more[1]);
    }
    return n;
  }

  test(`${FLOOD} handshakes without a client certificate: ${FLOOD} counted, a few audit records that account for all of them`, async () => {
    const ca = await readFile(deployment.pki.ca.cert);
    for (let i = 0; i < FLOOD; i++) {
      assert.equal(await handshakeError(`${es.peerUrl}/ncp/v1/ping`, { ca }), 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    }
    const reasons = [...(await counted()).entries()];
    assert.equal(reasons.length, 1, `one reason: ${JSON.stringify(reasons)}`);
    const [reason, count] = reasons[0] ?? ['', 0];
    assert.equal(count, FLOOD);

    // The window is 1 s: wait for the summaries (at most a few windows' worth).
    let descriptions = await audited();
    for (let i = 0; i < 100 && accountedFor(descriptions, reason) < FLOOD; i++) {
      await new Promise((r) => setTimeout(r, 100));
      descriptions = await audited();
    }
    assert.equal(accountedFor(descriptions, reason), FLOOD, descriptions.join(' | '));
    assert.ok(descriptions.length <= FLOOD / 3, `${descriptions.length} records for ${FLOOD} refusals: ${descriptions.join(' | ')}`);
    assert.ok(descriptions.some((d) => /^tls:[A-Z0-9_]+ x\d+ more within 1 s$/.test(d)), 'a summary record with the count');
  });
});
