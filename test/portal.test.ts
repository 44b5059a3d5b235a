/**
 * The citizen portal and the professional viewer, on the real world (two gateways, FHIR servers,
 * eID providers on loopback), through HTTP as a browser without JavaScript would use them: strict
 * CSP and no inline script or style on any page, OIDC sign-in, consent forms with CSRF and origin
 * checks, the access log with proofs, and a Spanish doctor reading Kenneth's summary in Spanish
 * with a hostile narrative rendered inert.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ES_PRACTITIONERS, KENNETH, PATIENT_WITHOUT_SUMMARY } from '../sandbox/seed.js';
import { sanitizeNarrative } from '../src/portal/sanitize.js';
import { SEARCH_MASKS } from '../src/portal/search-masks.js';
import { CONTENT_SECURITY_POLICY } from '../src/portal/security.js';
import { translateConcept } from '../src/portal/terminology.js';
import { HOSTILE_NARRATIVE, makeKennethNarrativeHostile, startPortalWorld, type PortalWorld } from './helpers/portal-world.js';

const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
const EXACT_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

interface Page {
  status: number;
  body: string;
  headers: Headers;
  location: string | null;
  cookies: Map<string, string>;
}

async function request(
  url: string,
  init: { method?: 'GET' | 'POST'; cookies?: Readonly<Record<string, string>>; form?: ReadonlyArray<readonly [string, string]> | string; headers?: Record<string, string> } = {},
): Promise<Page> {
  const cookie = Object.entries(init.cookies ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
  const res = await fetch(url, {
    method: init.method ?? (init.form === undefined ? 'GET' : 'POST'),
    redirect: 'manual',
    headers: {
      ...(cookie === '' ? {} : { cookie }),
      ...(init.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      ...init.headers,
    },
    ...(init.form === undefined ? {} : { body: typeof init.form === 'string' ? init.form : new URLSearchParams(init.form.map(([k, v]): [string, string] => [k, v])).toString() }),
  });
  const cookies = new Map<string, string>();
  for (const line of res.headers.getSetCookie()) {
    const [pair = ''] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq > 0) cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return { status: res.status, body: await res.text(), headers: res.headers, location: res.headers.get('location'), cookies };
}

function csrfOf(html: string): string {
  const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(token !== undefined, 'the page carries a form token');
  return token;
}

/** The rules every page keeps: the exact CSP, and nothing inline that it would have to allow. */
function assertSafePage(page: Page, what: string): void {
  assert.equal(page.headers.get('content-security-policy'), EXACT_CSP, `${what}: CSP`);
  assert.equal(page.headers.get('referrer-policy'), 'same-origin', `${what}: referrer policy`);
  assert.equal(page.headers.get('x-frame-options'), 'SAMEORIGIN', `${what}: helmet's other headers stay`);
  assert.doesNotMatch(page.body, /<script/i, `${what}: no script element`);
  assert.doesNotMatch(page.body, /\sstyle\s*=/i, `${what}: no style attribute`);
  assert.doesNotMatch(page.body, /<[^>]*\son\w+\s*=/i, `${what}: no event handler attribute`);
  assert.doesNotMatch(page.body, /<style/i, `${what}: no style element`);
}

function isoDate(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

function longDate(iso: string, locale: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'long', timeZone: 'UTC' }).format(new Date(`${iso}T00:00:00Z`));
}

describe('citizen portal and professional viewer', () => {
  let w: PortalWorld;
  let dk: string;
  let es: string;
  let kenneth: Record<string, string>;
  const end = isoDate(400);

  before(async () => {
    assert.ok(ANA, 'seeded physician');
    w = await startPortalWorld();
    dk = w.world.dk.apiUrl;
    es = w.world.es.apiUrl;
    kenneth = { ncpeh_session: await w.world.citizenSignIn('DK', KENNETH.identifier.value) };
    await makeKennethNarrativeHostile(w.world);
  });
  after(async () => w.close());

  const grantForm = (csrf: string, extra: Array<[string, string]> = []): Array<[string, string]> => [
    ['csrf', csrf],
    ['countries', 'ES'],
    ['roles', '221'],
    ['purposes', 'TREAT'],
    ['sections', '48765-2'],
    ['sections', '11450-4'],
    ['start', isoDate(0)],
    ['end', end],
    ...extra,
  ];

  test('the CSP constant is exactly the policy the pages must carry', () => {
    assert.equal(CONTENT_SECURITY_POLICY, EXACT_CSP);
  });

  test('an unauthenticated visitor sees the sign-in link, in Danish by default and English on request', async () => {
    const da = await request(`${dk}/portal`);
    assert.equal(da.status, 200);
    assertSafePage(da, 'portal (signed out)');
    assert.match(da.body, /<html lang="da">/);
    assert.match(da.body, /href="\/api\/v1\/auth\/login\?return_to=%2Fportal%3Flang%3Dda"/);
    assert.match(da.body, /Log ind med national eID/);
    const en = await request(`${dk}/portal`, { headers: { 'accept-language': 'en-GB,en;q=0.9,da;q=0.5' } });
    assert.match(en.body, /<html lang="en">/);
    assert.match(en.body, /Sign in with national eID/);
    const forced = await request(`${dk}/portal?lang=en`, { headers: { 'accept-language': 'da' } });
    assert.match(forced.body, /<html lang="en">/);
    const css = await request(`${dk}/portal/static/portal.css`);
    assert.equal(css.status, 200);
    assert.match(String(css.headers.get('content-type')), /^text\/css/);
    assert.match(css.body, /:focus-visible/);
  });

  test('the sign-in link starts the real OIDC flow and comes back to the portal with a session cookie', async () => {
    const login = await request(`${dk}/api/v1/auth/login?return_to=%2Fportal%3Flang%3Den`);
    assert.equal(login.status, 302);
    assert.match(String(login.location), /^http:\/\/127\.0\.0\.1:\d+\/auth\?/);
  });

  test('a signed-in citizen grants a consent with the form and sees it in plain language', async () => {
    const before = await request(`${dk}/portal?lang=en`, { cookies: kenneth });
    assert.equal(before.status, 200);
    assertSafePage(before, 'portal (signed in)');
    assert.match(before.body, /You have not given any consent/);
    assert.match(before.body, /<legend>Health professionals in which countries\?<\/legend>/);
    assert.match(before.body, /<label for="countries-ES"><input type="checkbox" id="countries-ES" name="countries" value="ES">/);
    assert.doesNotMatch(before.body, /value="DK"/, 'our own country is not offered');
    const created = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrfOf(before.body)), headers: { origin: dk } });
    assert.equal(created.status, 303, created.body);
    assert.equal(created.location, '/portal?lang=en&notice=created');
    const after = await request(`${dk}/portal?lang=en&notice=created`, { cookies: kenneth });
    assertSafePage(after, 'portal (after grant)');
    assert.match(after.body, /Your consent has been saved/);
    assert.ok(after.body.includes(`Physicians in Spain may read your Problems and Allergies for treatment until ${longDate(end, 'en-GB')}.`), after.body);
    const danish = await request(`${dk}/portal?lang=da`, { cookies: kenneth });
    assert.ok(danish.body.includes(`Læger i Spanien må læse dine problemer og allergier til behandling til og med den ${longDate(end, 'da-DK')}.`), danish.body);
    const api = (await (await fetch(`${dk}/api/v1/me/consents`, { headers: { authorization: `Bearer ${kenneth['ncpeh_session'] ?? ''}` } })).json()) as { consents: Array<{ sections: string[]; status: string }> };
    assert.deepEqual(api.consents.map((c) => [c.status, c.sections]), [['active', ['11450-4', '48765-2']]]);
  });

  test('rejects a form post without its token, with a wrong one, or with another session\'s (403)', async () => {
    const page = await request(`${dk}/portal?lang=en`, { cookies: kenneth });
    const missing = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm('').filter(([k]) => k !== 'csrf') });
    assert.equal(missing.status, 403);
    assertSafePage(missing, 'form refused');
    assert.match(missing.body, /This form has expired or was sent from another site/);
    const wrong = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(`${csrfOf(page.body).slice(0, -2)}xx`) });
    assert.equal(wrong.status, 403);
    const poul = { ncpeh_session: await w.world.citizenSignIn('DK', PATIENT_WITHOUT_SUMMARY.identifier.value) };
    const poulsToken = csrfOf((await request(`${dk}/portal?lang=en`, { cookies: poul })).body);
    const borrowed = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(poulsToken) });
    assert.equal(borrowed.status, 403);
    const bearerInstead = await request(`${dk}/portal/consents?lang=en`, {
      cookies: poul,
      form: grantForm(poulsToken),
      headers: { authorization: `Bearer ${kenneth['ncpeh_session'] ?? ''}` },
    });
    assert.equal(bearerInstead.status, 403, 'a page acts for the cookie session its token is bound to, never for a Bearer token');
  });

  test('rejects a cross-site form post (Origin or Sec-Fetch-Site) even with a valid token (403)', async () => {
    const csrf = csrfOf((await request(`${dk}/portal?lang=en`, { cookies: kenneth })).body);
    const foreignOrigin = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrf), headers: { origin: 'https://evil.example' } });
    assert.equal(foreignOrigin.status, 403);
    const nullOrigin = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrf), headers: { origin: 'null' } });
    assert.equal(nullOrigin.status, 403);
    const liesAboutSite = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrf), headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
    assert.equal(liesAboutSite.status, 403);
    const crossSite = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrf), headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    const sameSite = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: grantForm(csrf), headers: { 'sec-fetch-site': 'same-site' } });
    assert.equal(sameSite.status, 403, 'another origin of the same site is not us');
  });

  test('rejects a form post without a session (401 page offering sign-in)', async () => {
    const res = await request(`${dk}/portal/consents?lang=en`, { form: grantForm('x') });
    assert.equal(res.status, 401);
    assertSafePage(res, 'no session');
    assert.match(res.body, /Your sign-in has expired/);
  });

  test('invalid dates re-render the form with the messages (422) and store nothing', async () => {
    const csrf = csrfOf((await request(`${dk}/portal?lang=en`, { cookies: kenneth })).body);
    const form = grantForm(csrf).map(([k, v]): [string, string] => (k === 'end' ? [k, isoDate(-30)] : k === 'start' ? [k, isoDate(-10)] : [k, v]));
    const res = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form });
    assert.equal(res.status, 422);
    assertSafePage(res, 'form with errors');
    assert.match(res.body, /Please correct the following/);
    assert.match(res.body, /The end date must be after the start date\.|The end date has already passed\./);
    assert.match(res.body, /id="end" name="end" value="[\d-]+"[^>]*aria-invalid="true"/);
    assert.match(res.body, /id="countries-ES" name="countries" value="ES" checked/, 'the choices are kept');
    const notADate = await request(`${dk}/portal/consents?lang=da`, {
      cookies: kenneth,
      form: grantForm(csrf).map(([k, v]): [string, string] => (k === 'start' ? [k, '3/12/2026'] : [k, v])),
    });
    assert.equal(notADate.status, 422);
    assert.match(notADate.body, /Angiv en dato som ÅÅÅÅ-MM-DD/);
    const nothingChosen = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: [['csrf', csrf], ['start', isoDate(0)]] });
    assert.equal(nothingChosen.status, 422);
    assert.match(nothingChosen.body, /Countries: Choose at least one\./);
    const list = (await (await fetch(`${dk}/api/v1/me/consents`, { headers: { authorization: `Bearer ${kenneth['ncpeh_session'] ?? ''}` } })).json()) as { consents: unknown[] };
    assert.equal(list.consents.length, 1);
  });

  test('the form parser refuses prototype-reaching field names and oversized bodies', async () => {
    const csrf = csrfOf((await request(`${dk}/portal?lang=en`, { cookies: kenneth })).body);
    const proto = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: `csrf=${csrf}&__proto__=x&countries=ES` });
    assert.equal(proto.status, 400);
    assertSafePage(proto, 'parser refusal');
    const big = await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form: `csrf=${csrf}&x=${'a'.repeat(20_000)}` });
    assert.equal(big.status, 413);
  });

  test('a consent is revoked with its button and listed as revoked', async () => {
    const page = await request(`${dk}/portal?lang=en`, { cookies: kenneth });
    const csrf = csrfOf(page.body);
    const form = grantForm(csrf).map(([k, v]): [string, string] => (k === 'roles' ? [k, '2221'] : [k, v]));
    assert.equal((await request(`${dk}/portal/consents?lang=en`, { cookies: kenneth, form })).status, 303);
    const listed = await request(`${dk}/portal?lang=en`, { cookies: kenneth });
    const nurses = /<li data-consent-id="([0-9a-f-]{36})"><p>Nurses in Spain may read/.exec(listed.body);
    assert.ok(nurses?.[1], 'the nurses consent is listed');
    const action = `/portal/consents/${nurses[1]}/revoke?lang=en`;
    assert.ok(listed.body.includes(`action="${action.replace(/&/g, '&amp;')}"`));
    const revoked = await request(`${dk}${action}`, { cookies: kenneth, form: [['csrf', csrfOf(listed.body)]] });
    assert.equal(revoked.status, 303);
    assert.equal(revoked.location, '/portal?lang=en&notice=revoked');
    const after = await request(`${dk}/portal?lang=en&notice=revoked`, { cookies: kenneth });
    assert.match(after.body, /Your consent has been revoked/);
    assert.match(after.body, /Revoked and expired consents[\s\S]*Nurses in Spain may read[\s\S]*Revoked on/);
    const other = await request(`${dk}/portal/consents/00000000-0000-4000-8000-000000000000/revoke?lang=en`, { cookies: kenneth, form: [['csrf', csrfOf(after.body)]] });
    assert.equal(other.status, 404);
  });

  test('the access log lists the consent changes, each verified against the signed checkpoint', async () => {
    const log = await request(`${dk}/portal/access-log?lang=en`, { cookies: kenneth });
    assert.equal(log.status, 200);
    assertSafePage(log, 'access log');
    assert.match(log.body, /you gave a consent/);
    assert.match(log.body, /✓ Verified/);
    assert.doesNotMatch(log.body, /Not verified/);
    assert.match(log.body, /Checked against the signed checkpoint of \d+ log entries/);
    const signedOut = await request(`${dk}/portal/access-log?lang=en`);
    assert.match(signedOut.body, /Sign in with national eID/);
  });

  test('viewer sign-in is disabled on a gateway that is not a sandbox', async () => {
    const page = await request(`${dk}/viewer?lang=en`);
    assert.equal(page.status, 200);
    assertSafePage(page, 'viewer disabled');
    assert.match(page.body, /only available in the sandbox/);
    assert.doesNotMatch(page.body, /name="personId"/);
  });

  describe('a Spanish physician in the viewer', () => {
    let hcp: Record<string, string>;
    let summaryPath: string;

    test('signs in through the sandbox eIDAS IdP (form token bound to a pre-session cookie)', async () => {
      const signIn = await request(`${es}/viewer`);
      assert.equal(signIn.status, 200);
      assertSafePage(signIn, 'viewer sign-in');
      assert.match(signIn.body, /<html lang="es">/);
      const nonce = signIn.cookies.get('ncpeh_viewer_nonce');
      assert.ok(nonce);
      const noNonce = await request(`${es}/viewer/sign-in`, { form: [['csrf', csrfOf(signIn.body)], ['personId', ANA?.personIdentifier.value ?? '']] });
      assert.equal(noNonce.status, 403, 'login CSRF: the token belongs to the browser that loaded the form');
      const unknown = await request(`${es}/viewer/sign-in`, { cookies: { ncpeh_viewer_nonce: nonce }, form: [['csrf', csrfOf(signIn.body)], ['personId', 'ES/ES/00000000T']] });
      assert.equal(unknown.status, 401);
      assert.match(unknown.body, /No se pudo iniciar sesión/);
      const ok = await request(`${es}/viewer/sign-in`, { cookies: { ncpeh_viewer_nonce: nonce }, form: [['csrf', csrfOf(signIn.body)], ['personId', ANA?.personIdentifier.value ?? ''], ['purpose', 'TREAT']] });
      assert.equal(ok.status, 303, ok.body);
      const token = ok.cookies.get('ncpeh_hcp');
      assert.ok(token);
      const setCookie = ok.headers.getSetCookie().find((c) => c.startsWith('ncpeh_hcp='));
      assert.match(String(setCookie), /HttpOnly/i);
      assert.match(String(setCookie), /SameSite=Strict/i);
      assert.match(String(setCookie), /Path=\/viewer/);
      hcp = { ncpeh_hcp: token };
      const home = await request(`${es}/viewer`, { cookies: hcp });
      assertSafePage(home, 'viewer home');
      assert.match(home.body, /Sesión iniciada como Ana García Pérez/);
      assert.match(home.body, /Paciente de Dinamarca/);
      assert.match(home.body, /Número CPR \(10 dígitos\)/);
    });

    test('the search mask refuses a CPR that does not match the birth date, before any peer call (422)', async () => {
      const home = await request(`${es}/viewer`, { cookies: hcp });
      const res = await request(`${es}/viewer/identify`, {
        cookies: hcp,
        form: [['csrf', csrfOf(home.body)], ['country', 'DK'], ['identifier', KENNETH.identifier.value], ['birthDate', '1961-01-02']],
      });
      assert.equal(res.status, 422);
      assertSafePage(res, 'mask error');
      assert.match(res.body, /El número CPR no coincide con la fecha de nacimiento/);
      const tooShort = await request(`${es}/viewer/identify`, { cookies: hcp, form: [['csrf', csrfOf(home.body)], ['country', 'DK'], ['identifier', '12345'], ['birthDate', KENNETH.birthDate]] });
      assert.equal(tooShort.status, 422);
      assert.match(tooShort.body, /No es un identificador válido/);
    });

    test('identifies Kenneth', async () => {
      const home = await request(`${es}/viewer`, { cookies: hcp });
      const res = await request(`${es}/viewer/identify`, {
        cookies: hcp,
        form: [['csrf', csrfOf(home.body)], ['country', 'DK'], ['identifier', `${KENNETH.identifier.value.slice(0, 6)}-${KENNETH.identifier.value.slice(6)}`], ['birthDate', KENNETH.birthDate]],
        headers: { origin: es, 'sec-fetch-site': 'same-origin' },
      });
      assert.equal(res.status, 200, res.body);
      assertSafePage(res, 'identify result');
      assert.match(res.body, /Paciente encontrado/);
      assert.match(res.body, /Kenneth Andersen/);
      const href = /href="(\/viewer\/patients\/DK\/[^"?]+)\?lang=es"/.exec(res.body)?.[1];
      assert.ok(href, 'a link to the summary');
      summaryPath = href;
    });

    test('reads only the consented sections, in Spanish with the originals beside, narrative inert', async () => {
      const res = await request(`${es}${summaryPath}?lang=es`, { cookies: hcp });
      assert.equal(res.status, 200, res.body);
      assertSafePage(res, 'summary');
      const body = res.body;
      assert.match(body, /Historia clínica resumida de Kenneth Andersen/);
      assert.match(body, /Alergias e intolerancias <span class="orig">original: Allergies and Intolerances<\/span>/);
      assert.match(body, /Lista de problemas <span class="orig">original: Active Problems<\/span>/);
      assert.match(body, /Penicilinas <span class="orig">original: Substance with penicillin structure/);
      assert.match(body, /Enfermedad pulmonar obstructiva crónica \(EPOC\) <span class="orig">original: Chronic obstructive lung disease \(disorder\)<\/span>/);
      assert.match(body, /Resumen de medicación[\s\S]*?Retenido por el consentimiento del paciente/, 'the required medication section is withheld');
      assert.doesNotMatch(body, /Tiotropium|Furosemide|Bromuro de tiotropio/, 'no withheld medication');
      assert.doesNotMatch(body, /Resultados de pruebas|Antecedentes de enfermedades|Plan de cuidados/, 'optional sections not consented are absent');
      assert.match(body, /Firmado por urn:ncpeh:ncp:DK \(Dinamarca\)/);
      // The hostile narrative: its readable text stays, its active parts are gone.
      assert.match(body, /Allergy to penicillin, see the <a href="#top">top<\/a>/);
      assert.doesNotMatch(body, /alert\(|onerror|onclick|javascript:|<iframe|<object|<svg|evil\.example/i);
      const narratives = [...body.matchAll(/<div class="narrative">([\s\S]*?)<\/div><\/details>/g)].map((m) => m[1] ?? '');
      assert.ok(narratives.length >= 2, 'the consented sections show their narrative');
      for (const n of narratives) assert.doesNotMatch(n, /<script|<style|<form|<input|<button|\sstyle=|\son\w+=/i);
      assert.match(body, /\[x-ray\]/, 'an external image becomes its alt text');
      // Sections in the document's order: Problems before Allergies (as in the fixture).
      assert.ok(body.indexOf('Lista de problemas') < body.indexOf('Alergias e intolerancias'));
      const english = await request(`${es}${summaryPath}?lang=en`, { cookies: hcp });
      assert.match(english.body, /Penicillins <span class="orig">original: Substance with penicillin/);
      assert.match(english.body, /Problem list <span class="orig">original: Active Problems<\/span>/);
    });

    test('sends a note back home through the submissions path (202 with a tracking number)', async () => {
      const summary = await request(`${es}${summaryPath}?lang=en`, { cookies: hcp });
      const key = /name="idempotencyKey" value="([0-9a-f-]{36})"/.exec(summary.body)?.[1];
      assert.ok(key);
      const action = `${summaryPath}/notes?lang=en`;
      const empty = await request(`${es}${action}`, { cookies: hcp, form: [['csrf', csrfOf(summary.body)], ['idempotencyKey', key], ['note', '   ']] });
      assert.equal(empty.status, 422);
      assert.match(empty.body, /Write a note first/);
      const form: Array<[string, string]> = [['csrf', csrfOf(summary.body)], ['idempotencyKey', key], ['note', 'Seen in Barcelona for COPD exacerbation; <b>prednisolone</b> 5 days.']];
      const sent = await request(`${es}${action}`, { cookies: hcp, form });
      assert.equal(sent.status, 202, sent.body);
      assertSafePage(sent, 'note queued');
      const tracking = /Tracking number: ([0-9a-f-]{36})/.exec(sent.body)?.[1];
      assert.ok(tracking);
      const again = await request(`${es}${action}`, { cookies: hcp, form });
      assert.equal(/Tracking number: ([0-9a-f-]{36})/.exec(again.body)?.[1], tracking, 'a resubmitted form is the same submission');
    });

    test('the summary page needs the professional\'s sign-in, and a forged reference is refused politely', async () => {
      const none = await request(`${es}${summaryPath}`);
      assert.equal(none.status, 401);
      assertSafePage(none, 'viewer no session');
      const forged = await request(`${es}/viewer/patients/DK/${'A'.repeat(43)}?lang=en`, { cookies: hcp });
      assert.equal(forged.status, 404);
      assert.match(forged.body, /The Patient Summary is not available/);
    });

    test('signs out (form token required)', async () => {
      const home = await request(`${es}/viewer`, { cookies: hcp });
      const refused = await request(`${es}/viewer/sign-out`, { cookies: hcp, form: [['csrf', 'nope']] });
      assert.equal(refused.status, 403);
      const out = await request(`${es}/viewer/sign-out`, { cookies: hcp, form: [['csrf', csrfOf(home.body)]] });
      assert.equal(out.status, 303);
      assert.match(out.headers.getSetCookie().join('\n'), /ncpeh_hcp=;/);
    });
  });
});

describe('viewer building blocks', () => {
  test('the sanitiser removes script, handlers, frames, forms, styles and every external or script URL', () => {
    const out = sanitizeNarrative(HOSTILE_NARRATIVE);
    assert.doesNotMatch(out, /<script|alert|onerror|onclick|javascript:|data:|<iframe|<object|<embed|<form|<input|<button|<style|style=|https?:|<svg/i);
    assert.match(out, /<a href="#top">top<\/a>/);
    assert.match(out, /\[x-ray\]/);
    assert.equal(sanitizeNarrative('<div><a href=" JaVaScRiPt:alert(1)">x</a><a href="//evil.example/">y</a><img src="data:image/png;base64,AA" alt=""></div>'), '<div><a>x</a><a>y</a><span></span></div>');
  });

  test('the DNI mask checks the letter and the CPR mask the birth date', () => {
    const es = SEARCH_MASKS.get('ES');
    const dk = SEARCH_MASKS.get('DK');
    assert.ok(es && dk);
    assert.equal(es.normalise('12345678z'), '12345678Z');
    assert.equal(es.check('12345678Z', '1979-04-12'), undefined);
    assert.equal(es.check('12345678A', '1979-04-12'), 'dniLetterWrong');
    assert.equal(es.normalise('1234567Z'), undefined);
    assert.equal(dk.normalise('020160-9995'), '0201609995');
    assert.equal(dk.check('0201609995', '1960-01-02'), undefined);
    assert.equal(dk.check('0201609995', '1960-02-01'), 'cprBirthDateMismatch');
  });

  test('untranslated codes keep their original display and are flagged', () => {
    const t = translateConcept({ coding: [{ system: 'http://snomed.info/sct', code: '999999999', display: 'Something rare' }] }, 'es');
    assert.deepEqual({ text: t?.text, translated: t?.translated }, { text: 'Something rare', translated: false });
    const known = translateConcept({ coding: [{ system: 'urn:other', code: 'x', display: 'X' }, { system: 'http://www.whocc.no/atc', code: 'C03CA01', display: 'furosemide' }] }, 'da');
    assert.deepEqual({ text: known?.text, original: known?.original, translated: known?.translated }, { text: 'Furosemid', original: 'furosemide', translated: true });
  });
});
