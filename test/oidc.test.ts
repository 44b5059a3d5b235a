import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { MemoryReplayStore } from '../src/crossborder/replay-store.js';
import { GatewayError, type ErrorCode } from '../src/http/errors.js';
import { LOA_URIS } from '../src/identity/eid.js';
import { createOidcProvider, type OidcProvider, type OidcProviderOptions } from '../src/identity/oidc.js';
import { followLoginRedirects, generateSigningKey, mintIdToken, startOidcOp, type MintOptions, type OpSigningKey } from '../sandbox/oidc-op.js';

// ---------------------------------------------------------------------------------------------
// Fixtures: a Danish citizen eID provider (a real oidc-provider on loopback) with two clients: the
// gateway's citizen portal (code flow) and a hospital EHR that posts ID tokens to the gateway.

const CITIZEN_CLIENT = 'ncpeh-citizen-portal';
const CITIZEN_SECRET = 'citizen-portal-secret-0123456789abcdef';
const REDIRECT_URI = 'https://ncpeh.dk.test/api/v1/auth/citizen/callback';
const EHR_CLIENT = 'ehr-rigshospitalet';
const KAREN = { sub: 'dk-0201609995', givenName: 'Karen', familyName: 'Jensen', birthdate: '1960-01-02', acr: LOA_URIS.substantial };
const LOW_USER = { sub: 'dk-2311143995', givenName: 'Lars', familyName: 'Nielsen', birthdate: '2014-11-23', acr: LOA_URIS.low };

const op = await startOidcOp({
  clients: [
    { clientId: CITIZEN_CLIENT, clientSecret: CITIZEN_SECRET, redirectUris: [REDIRECT_URI] },
    { clientId: EHR_CLIENT, clientSecret: 'ehr-secret-0123456789abcdef', redirectUris: ['https://ehr.rigshospitalet.test/cb'] },
  ],
  users: [KAREN, LOW_USER],
});
after(() => op.close());

function opKey(alg: 'RS256' | 'ES256'): OpSigningKey {
  const key = op.signingKeys.find((k) => k.alg === alg);
  assert.ok(key !== undefined, `the OP has an ${alg} key`);
  return key;
}
const opRsa = opKey('RS256');
const opEc = opKey('ES256');
const attacker = generateSigningKey('RS256', opRsa.kid);

function citizenRp(overrides: Partial<OidcProviderOptions> = {}): OidcProvider {
  return createOidcProvider({
    providerId: 'dk-citizen',
    issuer: op.issuer,
    clientId: CITIZEN_CLIENT,
    clientSecret: CITIZEN_SECRET,
    redirectUri: REDIRECT_URI,
    replay: new MemoryReplayStore(),
    allowInsecureHttp: true,
    ...overrides,
  });
}

function hcpRp(overrides: Partial<OidcProviderOptions> = {}): OidcProvider {
  return createOidcProvider({
    providerId: 'dk-hcp',
    issuer: op.issuer,
    clientId: EHR_CLIENT,
    replay: new MemoryReplayStore(),
    allowInsecureHttp: true,
    ...overrides,
  });
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** ID token claims the EHR client would get for Karen; `undefined` in overrides removes a claim. */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const t = nowSeconds();
  return {
    iss: op.issuer,
    sub: KAREN.sub,
    aud: EHR_CLIENT,
    iat: t,
    exp: t + 300,
    auth_time: t - 5,
    acr: LOA_URIS.substantial,
    jti: randomUUID(),
    given_name: KAREN.givenName,
    family_name: KAREN.familyName,
    birthdate: KAREN.birthdate,
    ...overrides,
  };
}

function signedByOp(payload: Record<string, unknown>, options: Partial<MintOptions> = {}): string {
  return mintIdToken(payload, { alg: 'RS256', kid: opRsa.kid, key: opRsa.privateKey, ...options });
}

async function assertRefused(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof GatewayError, `expected a GatewayError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------

describe('citizen sign-in: authorization code flow against a real OpenID provider', () => {
  test('accepts a sign-in at LoA substantial with PKCE S256, state and nonce checked', async () => {
    const rp = citizenRp();
    const { url, state } = await rp.beginLogin();
    const request = new URL(url);
    assert.equal(request.origin, op.issuer);
    assert.equal(request.searchParams.get('code_challenge_method'), 'S256');
    assert.ok((request.searchParams.get('code_challenge') ?? '').length >= 43);
    assert.equal(request.searchParams.get('state'), state.state);
    assert.equal(request.searchParams.get('nonce'), state.nonce);
    assert.equal(request.searchParams.get('acr_values'), LOA_URIS.substantial);
    assert.equal(request.searchParams.get('scope'), 'openid profile');

    const callback = await followLoginRedirects(url, REDIRECT_URI);
    assert.ok(callback.searchParams.has('code'));
    const eid = await rp.completeLogin(callback, state);

    assert.equal(eid.protocol, 'oidc');
    assert.equal(eid.providerId, 'dk-citizen');
    assert.equal(eid.issuer, op.issuer);
    assert.equal(eid.personId, KAREN.sub);
    assert.equal(eid.givenName, KAREN.givenName);
    assert.equal(eid.familyName, KAREN.familyName);
    assert.equal(eid.birthDate, KAREN.birthdate);
    assert.equal(eid.loa, 'substantial');
    assert.ok(eid.expiresAt.getTime() > Date.now());
    assert.ok(Math.abs(eid.authTime.getTime() - Date.now()) < 120_000);
  });

  test('refuses a callback whose state was tampered with', async () => {
    const rp = citizenRp();
    const { url, state } = await rp.beginLogin();
    const callback = await followLoginRedirects(url, REDIRECT_URI);
    callback.searchParams.set('state', 'attacker-chosen-state');
    await assertRefused(rp.completeLogin(callback, state), 'eid.login-failed');
  });

  test('refuses an ID token whose nonce is not the one saved for this login', async () => {
    const rp = citizenRp();
    const first = await rp.beginLogin();
    const second = await rp.beginLogin();
    const callback = await followLoginRedirects(first.url, REDIRECT_URI);
    // Right state and PKCE verifier, so the code is redeemed; only the nonce check can refuse it.
    await assertRefused(rp.completeLogin(callback, { ...first.state, nonce: second.state.nonce }), 'eid.login-failed');
  });

  test('refuses a callback completed with the saved state of another login', async () => {
    const rp = citizenRp();
    const first = await rp.beginLogin();
    const second = await rp.beginLogin();
    const callback = await followLoginRedirects(first.url, REDIRECT_URI);
    await assertRefused(rp.completeLogin(callback, second.state), 'eid.login-failed');
  });

  test('refuses a code redeemed with the PKCE verifier of another login', async () => {
    const rp = citizenRp();
    const first = await rp.beginLogin();
    const second = await rp.beginLogin();
    const callback = await followLoginRedirects(first.url, REDIRECT_URI);
    await assertRefused(rp.completeLogin(callback, { ...first.state, codeVerifier: second.state.codeVerifier }), 'eid.login-failed');
  });

  test('refuses a callback whose authorization code was already redeemed', async () => {
    const rp = citizenRp();
    const { url, state } = await rp.beginLogin();
    const callback = await followLoginRedirects(url, REDIRECT_URI);
    await rp.completeLogin(callback, state);
    await assertRefused(rp.completeLogin(callback, state), 'eid.login-failed');
  });

  test('refuses a login state older than 10 minutes', async () => {
    const rp = citizenRp();
    const { url, state } = await rp.beginLogin();
    const callback = await followLoginRedirects(url, REDIRECT_URI);
    await assertRefused(rp.completeLogin(callback, { ...state, createdAt: Date.now() - 11 * 60 * 1000 }), 'eid.login-failed');
  });

  test('refuses a sign-in the provider made at LoA low', async () => {
    const rp = citizenRp();
    const { url, state } = await rp.beginLogin();
    op.loginAs(LOW_USER.sub);
    try {
      const callback = await followLoginRedirects(url, REDIRECT_URI);
      await assertRefused(rp.completeLogin(callback, state), 'eid.insufficient-loa');
    } finally {
      op.loginAs(KAREN.sub);
    }
  });
});

describe('bare ID tokens posted by a hospital EHR', () => {
  const rp = hcpRp();

  test('accepts an RS256 ID token from the pinned issuer for the EHR client at LoA substantial', async () => {
    const payload = claims();
    const eid = await rp.verifyIdToken(signedByOp(payload));
    assert.equal(eid.personId, KAREN.sub);
    assert.equal(eid.loa, 'substantial');
    assert.equal(eid.assertionId, payload.jti);
    assert.equal(eid.birthDate, KAREN.birthdate);
  });

  test('accepts an ES256 ID token signed with the provider EC key (raw R||S signature)', async () => {
    const token = mintIdToken(claims({ acr: LOA_URIS.high }), { alg: 'ES256', kid: opEc.kid, key: opEc.privateKey });
    assert.equal((await rp.verifyIdToken(token)).loa, 'high');
  });

  test('takes the person identifier from the configured claim', async () => {
    const custom = hcpRp({ personIdClaim: 'dk_cpr' });
    assert.equal((await custom.verifyIdToken(signedByOp(claims({ dk_cpr: '0201609995' })))).personId, '0201609995');
    await assertRefused(custom.verifyIdToken(signedByOp(claims())), 'eid.missing-attribute');
  });

  test('refuses a token that is not a compact JWS', async () => {
    await assertRefused(rp.verifyIdToken('not.a-token'), 'eid.malformed');
    await assertRefused(rp.verifyIdToken(`${signedByOp(claims())}.extra`), 'eid.malformed');
  });

  test('refuses a token from another issuer', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ iss: 'https://evil.example' }))), 'eid.unknown-issuer');
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ iss: `${op.issuer}/` }))), 'eid.unknown-issuer');
  });

  test('refuses a token addressed to another client', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ aud: CITIZEN_CLIENT }))), 'eid.wrong-audience');
  });

  test('refuses a token with several audiences and no azp', async () => {
    const multi = hcpRp({ audiences: [EHR_CLIENT, 'ehr-aarhus'] });
    await assertRefused(multi.verifyIdToken(signedByOp(claims({ aud: [EHR_CLIENT, 'ehr-aarhus'] }))), 'eid.wrong-audience');
    const ok = await multi.verifyIdToken(signedByOp(claims({ aud: [EHR_CLIENT, 'ehr-aarhus'], azp: EHR_CLIENT })));
    assert.equal(ok.personId, KAREN.sub);
  });

  test('refuses a token that also names an audience we do not trust', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ aud: [EHR_CLIENT, 'someone-else'], azp: EHR_CLIENT }))), 'eid.wrong-audience');
  });

  test('refuses an expired token (beyond the 60 s skew)', async () => {
    const t = nowSeconds();
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ iat: t - 600, exp: t - 61 }))), 'eid.expired');
    // Within the skew it still passes.
    await rp.verifyIdToken(signedByOp(claims({ iat: t - 600, exp: t - 30 })));
  });

  test('refuses a token whose nbf is in the future', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ nbf: nowSeconds() + 120 }))), 'eid.expired');
  });

  test('refuses a token issued more than the maximum ID token age ago', async () => {
    const t = nowSeconds();
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ iat: t - 3600 - 61, exp: t + 300 }))), 'eid.expired');
  });

  test('refuses a token issued in the future', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ iat: nowSeconds() + 120 }))), 'eid.expired');
  });

  test('refuses alg none', async () => {
    await assertRefused(rp.verifyIdToken(mintIdToken(claims(), { alg: 'none', kid: opRsa.kid })), 'eid.algorithm-forbidden');
  });

  test('refuses HS256 keyed with the provider RSA public key (algorithm confusion)', async () => {
    const pem = Buffer.from(opRsa.publicKey.export({ type: 'spki', format: 'pem' }));
    await assertRefused(rp.verifyIdToken(mintIdToken(claims(), { alg: 'HS256', kid: opRsa.kid, key: pem })), 'eid.algorithm-forbidden');
  });

  test('refuses an algorithm outside the configured allowlist', async () => {
    const rsOnly = hcpRp({ allowedAlgs: ['RS256'] });
    const token = mintIdToken(claims(), { alg: 'ES256', kid: opEc.kid, key: opEc.privateKey });
    await assertRefused(rsOnly.verifyIdToken(token), 'eid.algorithm-forbidden');
  });

  test('refuses an RS256 token whose kid names the provider EC key (key/algorithm confusion)', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims(), { kid: opEc.kid })), 'eid.signature-invalid');
  });

  test('refuses an ES256 token whose kid names the provider RSA key (key/algorithm confusion)', async () => {
    const token = mintIdToken(claims(), { alg: 'ES256', kid: opRsa.kid, key: opEc.privateKey });
    await assertRefused(rp.verifyIdToken(token), 'eid.signature-invalid');
  });

  test('refuses a kid the provider does not publish', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims(), { kid: 'no-such-key' })), 'eid.unknown-key');
  });

  test('refuses a token without kid', async () => {
    const token = mintIdToken(claims(), { alg: 'RS256', key: opRsa.privateKey });
    await assertRefused(rp.verifyIdToken(token), 'eid.malformed');
  });

  test('refuses a token signed by another key under a known kid', async () => {
    const token = mintIdToken(claims(), { alg: 'RS256', kid: attacker.kid, key: attacker.privateKey });
    await assertRefused(rp.verifyIdToken(token), 'eid.signature-invalid');
  });

  test('refuses a token whose payload was changed after signing', async () => {
    const [h, , s] = signedByOp(claims()).split('.');
    const forged = Buffer.from(JSON.stringify(claims({ sub: 'dk-someone-else' }))).toString('base64url');
    await assertRefused(rp.verifyIdToken(`${h}.${forged}.${s}`), 'eid.signature-invalid');
  });

  test('refuses an ES256 signature in DER instead of the JOSE R||S form', async () => {
    const token = mintIdToken(claims(), { alg: 'ES256', kid: opEc.kid, key: opEc.privateKey, ecdsaEncoding: 'der' });
    await assertRefused(rp.verifyIdToken(token), 'eid.signature-invalid');
  });

  test('refuses a token at LoA low', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ acr: LOA_URIS.low }))), 'eid.insufficient-loa');
  });

  test('refuses a token without acr', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ acr: undefined }))), 'eid.insufficient-loa');
  });

  test('refuses an acr value the mapping does not know', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ acr: 'urn:example:very-strong' }))), 'eid.insufficient-loa');
  });

  test('refuses a token without sub', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims({ sub: undefined }))), 'eid.missing-attribute');
  });

  test('refuses a token presented a second time', async () => {
    const token = signedByOp(claims());
    await rp.verifyIdToken(token);
    await assertRefused(rp.verifyIdToken(token), 'eid.replayed');
  });

  test('refuses a token without jti presented a second time (the token hash is remembered)', async () => {
    const token = signedByOp(claims({ jti: undefined }));
    const first = await rp.verifyIdToken(token);
    assert.match(first.assertionId, /^sha256:/);
    await assertRefused(rp.verifyIdToken(token), 'eid.replayed');
  });

  test('refuses a token that carries or points to its own key (jku, jwk, x5u, x5c headers)', async () => {
    const publicJwk = attacker.publicKey.export({ format: 'jwk' });
    for (const header of [
      { jku: 'https://evil.example/jwks.json' },
      { jwk: publicJwk },
      { x5u: 'https://evil.example/cert.pem' },
      { x5c: ['MIIB'] },
      { crit: ['exp'] },
    ]) {
      const token = mintIdToken(claims(), { alg: 'RS256', kid: attacker.kid, key: attacker.privateKey, header });
      await assertRefused(rp.verifyIdToken(token), 'eid.algorithm-forbidden');
    }
  });

  test('refuses another JWT type from the same provider passed off as an ID token', async () => {
    await assertRefused(rp.verifyIdToken(signedByOp(claims(), { header: { typ: 'at+jwt' } })), 'eid.malformed');
  });

  test('refetches the JWKS once for an unknown kid, and not again within the refetch interval', async () => {
    let offsetMs = 0;
    const fresh = hcpRp({ now: () => new Date(Date.now() + offsetMs) });
    await fresh.verifyIdToken(signedByOp(claims()));
    const afterFirst = op.jwksRequests;
    // Inside the interval an unknown kid does not reach the provider at all.
    await assertRefused(fresh.verifyIdToken(signedByOp(claims(), { kid: 'rotated-1' })), 'eid.unknown-key');
    assert.equal(op.jwksRequests, afterFirst);
    // After it, a burst of unknown kids costs exactly one fetch.
    offsetMs = 61_000;
    const burst = Array.from({ length: 5 }, (_, i) => fresh.verifyIdToken(signedByOp(claims(), { kid: `rotated-${i}` })));
    const results = await Promise.allSettled(burst);
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof GatewayError && r.reason.code === 'eid.unknown-key'));
    assert.equal(op.jwksRequests, afterFirst + 1);
  });

  test('refuses to be configured with an empty algorithm allowlist', () => {
    assert.throws(
      () => createOidcProvider({ providerId: 'x', issuer: op.issuer, clientId: 'x', replay: new MemoryReplayStore(), allowedAlgs: [] }),
      TypeError,
    );
  });
});
