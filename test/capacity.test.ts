/**
 * The bulkheads on the real path (src/http/work-limiter.ts, config `capacity`): the Danish gateway
 * answers one peer request at a time with one waiting, the Spanish gateway sends at most two to
 * Denmark at once with none waiting. The Danish national FHIR server is reached through a gate the
 * test holds shut, so "in work" and "queued" are states the test sees, not timings it hopes for.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { ES_PRACTITIONERS, KENNETH } from '../sandbox/seed.js';
import { relayPeerRefusal } from '../src/crossborder/consumer.js';
import { PeerRefusedError } from '../src/crossborder/peer-client.js';
import { GatewayError } from '../src/http/errors.js';
import { call as api, outcomeCode } from './helpers/http.js';
import { startWorld, type World } from './helpers/world.js';

const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
const PROBLEMS = '11450-4';
const ALLERGIES = '48765-2';

/** A forwarding proxy that holds every `$summary` request while shut. */
interface Gate {
  readonly url: string;
  target: string;
  held(): number;
  shut(): void;
  open(): void;
  close(): Promise<void>;
}

async function startGate(): Promise<Gate> {
  let shut = false;
  const waiting: Array<() => void> = [];
  const gate = {
    url: '',
    target: '',
    held: () => waiting.length,
    shut: () => {
      shut = true;
    },
    open: () => {
      shut = false;
      for (const go of waiting.splice(0)) go();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = (req.url ?? '').replace(/^\/fhir\/R4/, '');
    const upstream = await fetch(`${gate.target}${path}`, {
      method: req.method ?? 'GET',
      headers: { accept: req.headers.accept ?? 'application/fhir+json', ...(chunks.length > 0 ? { 'content-type': req.headers['content-type'] ?? 'application/fhir+json' } : {}) },
      ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
    });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/fhir+json' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  };
  const server: Server = createServer((req, res) => {
    const go = (): void => void forward(req, res).catch(() => res.destroy());
    if (shut && (req.url ?? '').includes('$summary')) waiting.push(go);
    else go();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  gate.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir/R4`;
  return gate;
}

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never happened: ${what}`);
}

describe('bulkheads: a gateway holds a bounded number of summaries in work, and says so when full', () => {
  let world: World;
  let gate: Gate;
  let anaToken: string;
  let ref: string;

  before(async () => {
    assert.ok(ANA);
    gate = await startGate();
    world = await startWorld({
      configure: (country, doc) => {
        if (country === 'DK') {
          const national = doc['nationalFhir'] as { baseUrl: string };
          gate.target = national.baseUrl;
          doc['nationalFhir'] = { ...national, baseUrl: gate.url };
          doc['capacity'] = { peerOperations: 1, queuePerKey: 1, queueTimeoutMs: 8_000 };
          // DK waits for its national server longer than ES waits for DK (see the last test).
          doc['nationalFhir'] = { ...(doc['nationalFhir'] as object), timeoutMs: 60_000 };
        } else {
          doc['capacity'] = { perPeer: 2, queuePerKey: 0, queueTimeoutMs: 8_000 };
        }
      },
    });
    const kenneth = await world.citizenSignIn('DK', KENNETH.identifier.value);
    const now = Date.now();
    const consent = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kenneth,
      body: {
        countries: ['ES'],
        roles: ['221'],
        purposes: ['TREAT'],
        sections: [PROBLEMS, ALLERGIES],
        period: { start: new Date(now - 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'), end: new Date(now + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z') },
      },
    });
    assert.equal(consent.status, 201, JSON.stringify(consent.body));
    anaToken = await world.hcpSignIn('ES', ANA.personIdentifier.value);
    const found = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token: anaToken,
      body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
    });
    assert.equal(found.status, 200, JSON.stringify(found.body));
    ref = String((found.body.matches as Array<{ ref: string }>)[0]?.ref);
  });
  after(async () => {
    gate.open();
    await world?.close();
    await gate?.close();
  });

  const summary = () => api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`, { token: anaToken });
  const metrics = async (c: 'dk' | 'es'): Promise<string> => (await world[c].gateway.gateway.api.inject({ method: 'GET', url: '/metrics' })).body;
  const metric = (text: string, name: string, labels: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  /** Both bulkheads empty again, and the next request is served. */
  const freeAgain = async (): Promise<void> => {
    await until('both bulkheads empty', async () => {
      const dk = await metrics('dk');
      const es = await metrics('es');
      return metric(dk, 'ncpeh_work_running', 'pool="peer-operations"') === 0 && metric(es, 'ncpeh_work_running', 'pool="per-peer",key="DK"') === 0;
    });
    const again = await summary();
    assert.equal(again.status, 200, JSON.stringify(again.body));
  };

  test('beyond the slots and the queue, each side refuses with service.busy (503, Retry-After); what was admitted is answered in full', async () => {
    gate.shut();
    // A: in work at DK (held at its national server).
    const a = summary();
    await until('DK holds A at its national server', () => gate.held() === 1);
    // B: ES's second slot for DK; at DK it waits behind A.
    const b = summary();
    await until('B queued at DK', async () => metric(await metrics('dk'), 'ncpeh_work_queued', 'pool="peer-operations"') === 1);
    assert.equal(metric(await metrics('dk'), 'ncpeh_work_running', 'pool="peer-operations"'), 1);

    // C: ES has no slot for DK left and no queue: refused by ES itself, never sent.
    const c = await summary();
    assert.equal(c.status, 503, JSON.stringify(c.body));
    assert.equal(outcomeCode(c.body), 'service.busy');
    assert.equal(c.headers.get('retry-after'), '1');
    assert.equal(metric(await metrics('es'), 'ncpeh_work_refused_total', 'pool="per-peer",reason="queue-full"'), 1);

    // D: any other request from ES reaching DK now finds DK's queue for ES full.
    await assert.rejects(
      world.es.gateway.peerClient.call('DK', '/ncp/v1/ping', { nonce: 'd' }, z.unknown()),
      (e: unknown) => e instanceof PeerRefusedError && e.peerStatus === 503 && e.peerCode === 'service.busy',
    );
    assert.equal(metric(await metrics('dk'), 'ncpeh_work_refused_total', 'pool="peer-operations",reason="queue-full"'), 1);
    assert.equal(gate.held(), 1, 'nothing refused reached the national server');

    gate.open();
    const [ra, rb] = await Promise.all([a, b]);
    for (const r of [ra, rb]) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.resourceType, 'Bundle');
    }
    await freeAgain();
  });

  test('a peer that stays silent longer than ES waits: the EHR gets peer.unreachable, not a dropped connection', async () => {
    gate.shut();
    try {
      // DK holds the request at its shut national server (which it would wait 60 s for); ES gives
      // up on DK's answer after the peer client's 15 s. The API listener must still be there to say so.
      const r = await summary();
      assert.equal(r.status, 502, JSON.stringify(r.body));
      assert.equal(outcomeCode(r.body), 'peer.unreachable');
      assert.equal(gate.held(), 1);
    } finally {
      gate.open();
    }
    await freeAgain();
  });

  test('an EHR that hangs up while its summary is in work abroad frees its slot at once', async () => {
    gate.shut();
    try {
      const hangUp = new AbortController();
      const gone = fetch(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`, {
        headers: { authorization: `Bearer ${anaToken}` },
        signal: hangUp.signal,
      }).catch((e: unknown) => e);
      await until('DK holds the request at its national server', () => gate.held() === 1);
      assert.equal(metric(await metrics('es'), 'ncpeh_work_running', 'pool="per-peer",key="DK"'), 1);
      hangUp.abort();
      await gone;
      // DK still holds its side at the shut gate; ES has stopped waiting for it.
      await until('ES released its slot for DK', async () => metric(await metrics('es'), 'ncpeh_work_running', 'pool="per-peer",key="DK"') === 0);
      assert.equal(gate.held(), 1);
    } finally {
      gate.open();
    }
    await until('DK done', async () => metric(await metrics('dk'), 'ncpeh_work_running', 'pool="peer-operations"') === 0);
  });

  test('a peer at capacity reaches the EHR as service.busy with Retry-After, not as the peer being down', () => {
    assert.throws(
      () => relayPeerRefusal(new PeerRefusedError(503, 'service.busy')),
      (e: unknown) => e instanceof GatewayError && e.code === 'service.busy' && e.status === 503 && e.retryAfter === 1,
    );
    assert.throws(
      () => relayPeerRefusal(new PeerRefusedError(503, 'storage.unavailable')),
      (e: unknown) => e instanceof GatewayError && e.code === 'peer.unreachable',
    );
  });
});
