/**
 * `npm run demo`: Kenneth's story, headless, against the running sandbox (`npm start`). Every step
 * prints what it did and what came back; any unexpected answer stops the demo with exit code 1.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { clientAssertion, sandboxClientFiles } from './clients.js';
import { ehrClientId } from './eid.js';
import { followLoginRedirects } from './oidc-op.js';
import { ES_PRACTITIONERS, KENNETH } from './seed.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SANDBOX = join(ROOT, '.sandbox');

const Endpoints = z.object({
  countries: z.record(z.string(), z.object({ api: z.string(), peer: z.string(), fhir: z.string().optional(), oidc: z.string().optional(), saml: z.string().optional() })),
});

let step = 0;
function say(title: string, detail = ''): void {
  step += 1;
  process.stdout.write(`\n${step}. ${title}\n${detail.length > 0 ? `   ${detail.replace(/\n/g, '\n   ')}\n` : ''}`);
}

class DemoFailure extends Error {}

async function call(
  url: string,
  init: { method?: string; token?: string; body?: unknown; cookie?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    redirect: 'manual',
    headers: {
      ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
      ...(init.cookie === undefined ? {} : { cookie: init.cookie }),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text.length === 0 ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    json = { text };
  }
  return { status: res.status, json, headers: res.headers };
}

function expect(cond: boolean, what: string, got: unknown): void {
  if (!cond) throw new DemoFailure(`${what}; got ${JSON.stringify(got).slice(0, 600)}`);
}

async function main(): Promise<void> {
  let endpoints: z.infer<typeof Endpoints>;
  try {
    endpoints = Endpoints.parse(JSON.parse(await readFile(join(SANDBOX, 'endpoints.json'), 'utf8')));
  } catch {
    throw new DemoFailure('no .sandbox/endpoints.json: start the sandbox first with `npm start`');
  }
  const dk = endpoints.countries.DK;
  const es = endpoints.countries.ES;
  if (dk === undefined || es === undefined || es.saml === undefined) throw new DemoFailure('the sandbox must run DK and ES with eID providers');
  const ana = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
  if (ana === undefined) throw new DemoFailure('seed has no physician');

  // 1. Kenneth signs in at the Danish gateway with his national eID (OIDC code flow + PKCE).
  const login = await fetch(`${dk.api}/api/v1/auth/login`, { redirect: 'manual' });
  const loginCookie = /ncpeh_login=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')?.[1];
  const location = login.headers.get('location');
  expect(login.status === 302 && location !== null && loginCookie !== undefined, 'login redirects to the eID provider', login.status);
  const authUrl = new URL(location ?? '');
  authUrl.searchParams.set('login_hint', KENNETH.identifier.value);
  const callback = await followLoginRedirects(authUrl.toString(), `${dk.api}/api/v1/auth/callback`);
  const session = await call(callback.toString(), { cookie: `ncpeh_login=${loginCookie ?? ''}` });
  expect(session.status === 200 && typeof session.json.access_token === 'string', 'citizen session issued', session.json);
  const kenneth = String(session.json.access_token);
  say('Kenneth signs in at the Danish gateway with his eID', `session for CPR ${KENNETH.identifier.value} (LoA substantial)`);

  // 2. He grants Spanish physicians Problems + Allergies for ten days, for treatment.
  const now = Date.now();
  const consent = await call(`${dk.api}/api/v1/me/consents`, {
    token: kenneth,
    body: {
      countries: ['ES'],
      roles: ['221'],
      purposes: ['TREAT'],
      sections: ['11450-4', '48765-2'],
      period: { start: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'), end: new Date(now + 10 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z') },
    },
  });
  expect(consent.status === 201, 'consent created', consent.json);
  say('Kenneth consents: Spanish physicians may read Problems and Allergies for 10 days', `Consent/${String(consent.json.id)} (FHIR Consent, IHE PCF shape)`);

  // 3. Dr. Ana García signs in in Barcelona through the Spanish eIDAS node; the EHR gets an HCP assertion.
  const sso = await call(`${es.saml}/sso?person=${encodeURIComponent(ana.personIdentifier.value)}`);
  expect(typeof sso.json.SAMLResponse === 'string', 'the eIDAS node issued a SAML response', sso.json);
  const hcp = await call(`${es.api}/api/v1/auth/hcp`, {
    body: {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(sandboxClientFiles(SANDBOX, ehrClientId('ES')), `${es.api}/api/v1/auth/hcp`),
      saml_response: sso.json.SAMLResponse,
    },
  });
  expect(hcp.status === 200, 'HCP assertion issued', hcp.json);
  const token = String(hcp.json.access_token);
  say('Dr. Ana García signs in (eIDAS SAML) and her hospital EHR receives an HCP assertion', JSON.stringify(hcp.json.hcp));

  // 4. She identifies Kenneth at the Danish gateway (ES -> DK over mutual TLS).
  const found = await call(`${es.api}/api/v1/cross-border/patients/$identify`, {
    token,
    body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
  });
  const matches = z.array(z.object({ ref: z.string(), name: z.string().optional() })).safeParse(found.json.matches);
  expect(found.status === 200 && found.json.outcome === 'match' && matches.success && matches.data.length === 1, 'Kenneth identified', found.json);
  const ref = matches.success ? (matches.data[0]?.ref ?? '') : '';
  say('ES identifies Kenneth at DK', `outcome match; opaque reference ${ref.slice(0, 12)}...`);

  // 5. She reads his Patient Summary: only the consented sections.
  const summary = await call(`${es.api}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`, { token });
  expect(summary.status === 200 && summary.json.resourceType === 'Bundle', 'Patient Summary relayed', summary.json);
  const entries = z.array(z.object({ resource: z.record(z.string(), z.unknown()) })).parse(summary.json.entry);
  const composition = z.object({ section: z.array(z.object({ title: z.string(), emptyReason: z.unknown().optional() })) }).parse(entries[0]?.resource);
  say(
    'ES reads the Patient Summary, signed by DK and filtered by consent',
    `signed by ${summary.headers.get('x-ncpeh-signed-by') ?? '?'} at ${summary.headers.get('x-ncpeh-signed-at') ?? '?'}\n` +
      composition.section.map((s) => `- ${s.title}${s.emptyReason === undefined ? '' : ' (withheld by consent)'}`).join('\n') +
      `\n${entries.length} resources in the document`,
  );

  // 6. What happened in Barcelona goes back home: readings from his mHealth app and an encounter.
  const now2 = new Date().toISOString();
  const submission = await call(`${es.api}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/documents`, {
    token,
    headers: { 'idempotency-key': `demo-${Date.now()}` },
    body: {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        {
          fullUrl: 'urn:uuid:8a1d5a52-3c55-4a63-9d6e-7f3a3b9f0a01',
          resource: {
            resourceType: 'Encounter',
            status: 'finished',
            class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER', display: 'emergency' },
            subject: { reference: `Patient/${ref}` },
            period: { start: now2, end: now2 },
          },
        },
        {
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' }] },
            subject: { reference: `Patient/${ref}` },
            encounter: { reference: 'urn:uuid:8a1d5a52-3c55-4a63-9d6e-7f3a3b9f0a01' },
            effectiveDateTime: now2,
            valueQuantity: { value: 89, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
          },
        },
      ],
    },
  });
  expect(submission.status === 202, 'the submission is accepted', submission.json);
  const trackingId = String(submission.json.trackingId);
  let delivered: Record<string, unknown> = {};
  for (let i = 0; i < 60 && delivered.status !== 'delivered'; i++) {
    delivered = (await call(`${es.api}/api/v1/cross-border/submissions/${trackingId}`, { token })).json;
    if (delivered.status !== 'delivered') await new Promise((r) => setTimeout(r, 500));
  }
  expect(delivered.status === 'delivered', 'the submission reaches Denmark', delivered);
  say('ES sends the encounter and an SpO2 reading home; DK registers them and returns a signed receipt', `tracking ${trackingId}: delivered, receipt ${String(delivered.receipt).slice(0, 32)}...`);

  // 7. His Danish GP is notified in the national record.
  if (dk.fhir === undefined) throw new DemoFailure('the sandbox has no DK FHIR server');
  const comms = await call(`${dk.fhir}/Communication?identifier=${encodeURIComponent(`urn:ncpeh:submission|${trackingId}/notification`)}`);
  const recipient = z.array(z.object({ resource: z.object({ recipient: z.array(z.object({ reference: z.string() })).optional() }) })).safeParse(comms.json.entry);
  expect(recipient.success && recipient.data.length === 1, 'a Communication notifies his GP', comms.json);
  say("Kenneth's GP is notified (FHIR Communication in the Danish record)", `recipient ${recipient.success ? (recipient.data[0]?.resource.recipient?.[0]?.reference ?? '?') : '?'}`);

  // 8. Kenneth sees who accessed his data, each entry with a verified inclusion proof.
  const log = await call(`${dk.api}/api/v1/me/access-log`, { token: kenneth });
  const logEntries = z.array(z.object({ who: z.string(), what: z.string(), country: z.string().nullable(), verified: z.boolean(), recordedAt: z.string() })).parse(log.json.entries);
  expect(logEntries.some((e) => e.country === 'ES' && e.verified), 'the access log shows the Spanish access with a proof', log.json);
  say(
    "Kenneth's access log (newest first), each entry proven against a signed checkpoint",
    logEntries
      .slice(0, 6)
      .map((e) => `${e.verified ? '[verified]' : '[unverified]'} ${e.recordedAt} ${e.who}${e.country === null ? '' : ` (${e.country})`}: ${e.what}`)
      .join('\n'),
  );

  // 9. He revokes the consent; the next read is refused at once.
  const revoke = await call(`${dk.api}/api/v1/me/consents/${String(consent.json.id)}`, { method: 'DELETE', token: kenneth });
  expect(revoke.status === 200, 'consent revoked', revoke.json);
  const again = await call(`${es.api}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`, { token });
  expect(again.status === 403, 'the next read is refused', again.json);
  say('Kenneth revokes his consent; the next read is refused', `HTTP ${again.status} ${JSON.stringify(again.json).slice(0, 160)}`);

  process.stdout.write('\nThe story ran end to end.\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`\nDEMO FAILED at step ${step + 1}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
