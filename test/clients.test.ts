import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import jose from 'node-jose';
import { MemoryReplayStore } from '../src/crossborder/replay-store.js';
import { GatewayError } from '../src/http/errors.js';
import {
  ClientsConfigSchema,
  authenticateClient,
  requireScope,
  type AuthenticateClientOptions,
  type RegisteredClient,
} from '../src/identity/clients.js';
import { rejectsWith } from './helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures: two hospital EHRs, one signing with ES256, one with RS256 (and a PS256 key).

const NOW = new Date('2030-01-01T10:00:00Z');
const T = NOW.getTime() / 1000;
const TOKEN_URL = 'https://ncp.es.example/api/v1/auth/hcp';

type PrivateJwk = Record<string, unknown> & { kid: string; alg: string };

function ecKey(kid: string): PrivateJwk {
  return { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid, alg: 'ES256' };
}
function rsaKey(kid: string, alg: 'RS256' | 'PS256', bits = 2048): PrivateJwk {
  return { ...generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ format: 'jwk' }), kid, alg };
}
function publicOf(jwk: PrivateJwk): Record<string, unknown> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return { ...pub, use: 'sig' };
}

const clinicKey = ecKey('clinic-2030');
const santPauKey = rsaKey('santpau-rs', 'RS256');
const santPauPss = rsaKey('santpau-ps', 'PS256');

const clients: readonly RegisteredClient[] = ClientsConfigSchema.parse([
  { id: 'hospital-clinic-ehr', name: 'Hospital Clínic EHR', scopes: ['hcp-sign-in', 'patient-summary'], jwks: { keys: [publicOf(clinicKey)] } },
  { id: 'sant-pau-ehr', name: 'Hospital de Sant Pau EHR', scopes: ['hcp-sign-in'], jwks: { keys: [publicOf(santPauKey), publicOf(santPauPss)] } },
]);

function options(overrides: Partial<AuthenticateClientOptions> = {}): AuthenticateClientOptions {
  return { clients, expectedAudience: TOKEN_URL, replay: new MemoryReplayStore(), now: NOW, skewSeconds: 60, ...overrides };
}

function claimsFor(clientId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: clientId, sub: clientId, aud: TOKEN_URL, jti: randomUUID(), iat: T, exp: T + 120, ...overrides };
}

/** What an EHR sends: a compact JWS signed with its private key (RFC 7523 section 2.2). */
async function assertion(key: PrivateJwk, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const joseKey = await jose.JWK.asKey(key);
  const fields = { alg: key.alg, kid: key.kid, typ: 'JWT', ...header };
  const out: unknown = await jose.JWS.createSign({ format: 'compact', fields }, joseKey).update(JSON.stringify(claims), 'utf8').final();
  return String(out);
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

// ---------------------------------------------------------------------------------------------

describe('hospital client authentication (private_key_jwt, RFC 7523 section 2.2)', () => {
  test('accepts a valid ES256 client assertion and returns the registered client', async () => {
    const client = await authenticateClient(await assertion(clinicKey, claimsFor('hospital-clinic-ehr')), options());
    assert.equal(client.id, 'hospital-clinic-ehr');
    assert.equal(client.name, 'Hospital Clínic EHR');
  });

  test('accepts a valid RS256 client assertion', async () => {
    const client = await authenticateClient(await assertion(santPauKey, claimsFor('sant-pau-ehr')), options());
    assert.equal(client.id, 'sant-pau-ehr');
  });

  test('accepts a valid PS256 client assertion, an audience array containing our token URL, and no typ', async () => {
    const token = await assertion(santPauPss, claimsFor('sant-pau-ehr', { aud: ['https://other.example', TOKEN_URL] }), { typ: undefined });
    assert.equal((await authenticateClient(token, options())).id, 'sant-pau-ehr');
  });

  test('refuses an assertion from an unregistered client (client.unknown)', async () => {
    const stranger = ecKey('stranger');
    await rejectsWith(authenticateClient(await assertion(stranger, claimsFor('stranger-ehr')), options()), 'client.unknown');
  });

  test('refuses iss different from sub (client.authentication-failed)', async () => {
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { sub: 'sant-pau-ehr' }));
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /iss and sub/);
  });

  test('refuses an assertion addressed to another audience (client.authentication-failed)', async () => {
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { aud: 'https://ncp.dk.example/api/v1/auth/hcp' }));
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /audience/);
  });

  test('refuses an expired assertion beyond the skew (client.authentication-failed)', async () => {
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { iat: T - 300, exp: T - 61 }));
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /expired/);
  });

  test('refuses an assertion living longer than 5 minutes, accepts exactly 5 (client.authentication-failed)', async () => {
    const long = await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { exp: T + 301 }));
    await rejectsWith(authenticateClient(long, options()), 'client.authentication-failed', /lifetime/);
    await authenticateClient(await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { exp: T + 300 })), options());
  });

  test('refuses a long-lived assertion that omits iat (client.authentication-failed)', async () => {
    const { iat: _iat, ...claims } = claimsFor('hospital-clinic-ehr', { exp: T + 3600 });
    await rejectsWith(authenticateClient(await assertion(clinicKey, claims), options()), 'client.authentication-failed', /lifetime/);
  });

  test('refuses a replayed jti (client.authentication-failed), per client', async () => {
    const opts = options();
    const jti = randomUUID();
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr', { jti }));
    await authenticateClient(token, opts);
    await rejectsWith(authenticateClient(token, opts), 'client.authentication-failed', /replayed/);
    // Another client may happen to use the same jti: the cache is scoped per client.
    await authenticateClient(await assertion(santPauKey, claimsFor('sant-pau-ehr', { jti })), opts);
  });

  test('refuses an assertion without jti (client.authentication-failed)', async () => {
    const { jti: _jti, ...claims } = claimsFor('hospital-clinic-ehr');
    await rejectsWith(authenticateClient(await assertion(clinicKey, claims), options()), 'client.authentication-failed', /jti/);
  });

  test('refuses alg none (client.authentication-failed)', async () => {
    const token = `${b64({ alg: 'none', kid: clinicKey.kid })}.${b64(claimsFor('hospital-clinic-ehr'))}.`;
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /alg/);
  });

  test('refuses HS256 keyed with the registered public key (client.authentication-failed)', async () => {
    const signingInput = `${b64({ alg: 'HS256', kid: santPauKey.kid, typ: 'JWT' })}.${b64(claimsFor('sant-pau-ehr'))}`;
    const pem = createPublicKey({ key: publicOf(santPauKey), format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const mac = createHmac('sha256', pem).update(signingInput).digest('base64url');
    await rejectsWith(authenticateClient(`${signingInput}.${mac}`, options()), 'client.authentication-failed', /alg/);
  });

  test("refuses an assertion signed with another client's key under that client's kid (client.authentication-failed)", async () => {
    const token = await assertion(santPauKey, claimsFor('hospital-clinic-ehr'));
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /kid/);
  });

  test("refuses an assertion signed with another client's key under the right kid (client.authentication-failed)", async () => {
    const forged = ecKey(clinicKey.kid);
    await rejectsWith(authenticateClient(await assertion(forged, claimsFor('hospital-clinic-ehr')), options()), 'client.authentication-failed', /signature/);
  });

  test('refuses an RS256 key used with PS256: one key, one algorithm (client.authentication-failed)', async () => {
    const token = await assertion({ ...santPauKey, alg: 'PS256' }, claimsFor('sant-pau-ehr'));
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /registered for RS256/);
  });

  test('refuses a header carrying its own key (jwk) (client.authentication-failed)', async () => {
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr'), { jwk: publicOf(clinicKey) });
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /jwk/);
  });

  test('refuses another kind of token, e.g. typ IUA-JWT (client.authentication-failed)', async () => {
    const token = await assertion(clinicKey, claimsFor('hospital-clinic-ehr'), { typ: 'IUA-JWT' });
    await rejectsWith(authenticateClient(token, options()), 'client.authentication-failed', /typ/);
  });

  test('refuses garbage (client.authentication-failed)', async () => {
    await rejectsWith(authenticateClient('a.b', options()), 'client.authentication-failed');
  });
});

describe('hospital client scopes', () => {
  test('a registered scope passes; any other gives client.scope-not-allowed', () => {
    const [clinic, santPau] = clients;
    assert.ok(clinic && santPau);
    requireScope(clinic, 'patient-summary');
    assert.throws(
      () => requireScope(santPau, 'patient-summary'),
      (e: unknown) => e instanceof GatewayError && e.code === 'client.scope-not-allowed',
    );
  });
});

describe('hospital client registrations (ClientsConfigSchema)', () => {
  const base = { id: 'x-ehr', name: 'X', scopes: ['hcp-sign-in'] };

  test('refuses a private key in a registration', () => {
    const result = ClientsConfigSchema.safeParse([{ ...base, jwks: { keys: [clinicKey] } }]);
    assert.equal(result.success, false);
    assert.match(JSON.stringify(result.error?.issues), /private key material/);
  });

  test('refuses symmetric keys, RSA below 2048 bits and RSA keys without alg', () => {
    const small = rsaKey('small', 'RS256', 1024);
    const { alg: _alg, ...noAlg } = publicOf(santPauKey);
    for (const key of [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }, publicOf(small), noAlg]) {
      assert.equal(ClientsConfigSchema.safeParse([{ ...base, jwks: { keys: [key] } }]).success, false);
    }
  });

  test('refuses duplicate client ids and a client with neither key nor certificate', () => {
    const entry = { ...base, jwks: { keys: [publicOf(clinicKey)] } };
    assert.equal(ClientsConfigSchema.safeParse([entry, entry]).success, false);
    assert.equal(ClientsConfigSchema.safeParse([{ ...base, jwks: { keys: [] } }]).success, false);
    assert.equal(ClientsConfigSchema.safeParse([{ ...base, jwks: { keys: [] }, certSha256: ['a'.repeat(64)] }]).success, true);
  });
});
