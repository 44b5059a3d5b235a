/**
 * A real OpenID provider (oidc-provider v9) on loopback, for tests and, later, the sandbox's national
 * citizen eID (it is written to move to `sandbox/` unchanged).
 *
 * - Test users are plain records (`OpUser`); the OP hands out their claims through `findAccount`.
 * - The login and consent interactions are served by this module on the same node:http server:
 *   with `autoLogin` (the default) a chosen user is signed in at once, so a test drives the whole
 *   code flow with `fetch` alone (`followLoginRedirects`); without it a small user picker page is shown.
 * - Signing keys (RS256 and ES256 by default) are generated at start; their private halves are exposed
 *   so bare-token tests can mint ID tokens (`mintIdToken`) exactly as the OP would, or as an attacker
 *   would with other keys.
 */
import { createHmac, generateKeyPairSync, randomBytes, sign, constants, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Provider, { type Account, type ClientMetadata, type Configuration, type InteractionDetails } from 'oidc-provider';
import { LOA_URIS } from '../src/identity/eid.js';

// ---------------------------------------------------------------------------------------------
// Keys and token minting

export type OpSigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

export interface OpSigningKey {
  readonly kid: string;
  readonly alg: OpSigningAlg;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** What the OP is configured with (private JWK with `kid`, `alg`, `use`). */
  readonly privateJwk: JsonWebKey & { kid: string; alg: OpSigningAlg; use: 'sig' };
}

export function generateSigningKey(alg: OpSigningAlg, kid: string): OpSigningKey {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid,
    alg,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    privateJwk: { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

export type MintAlg = OpSigningAlg | 'HS256' | 'none';

export interface MintOptions {
  readonly alg: MintAlg;
  /** Omitted from the header when undefined. */
  readonly kid?: string;
  /** Private key for RS/PS/ES/EdDSA, secret bytes for HS256; unused for `none`. */
  readonly key?: KeyObject | Buffer;
  /** Extra header members (e.g. `jku`, `jwk`, `typ`), merged over `alg`/`kid`. */
  readonly header?: Record<string, unknown>;
  /** ES256 only: `der` produces the wrongly encoded signature some libraries emit. */
  readonly ecdsaEncoding?: 'ieee-p1363' | 'der';
}

function b64uJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Signs `claims` as a compact JWS with node:crypto, the way an OP (or an attacker) would. */
export function mintIdToken(claims: Record<string, unknown>, options: MintOptions): string {
  const header = { alg: options.alg, ...(options.kid === undefined ? {} : { kid: options.kid }), ...options.header };
  const signingInput = `${b64uJson(header)}.${b64uJson(claims)}`;
  const data = Buffer.from(signingInput);
  const { key } = options;
  let signature: Buffer;
  if (options.alg === 'none') {
    signature = Buffer.alloc(0);
  } else if (key === undefined) {
    throw new TypeError(`mintIdToken: ${options.alg} needs a key`);
  } else if (options.alg === 'HS256') {
    signature = createHmac('sha256', key).update(data).digest();
  } else if (Buffer.isBuffer(key)) {
    throw new TypeError(`mintIdToken: ${options.alg} needs a KeyObject`);
  } else if (options.alg === 'RS256') {
    signature = sign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING });
  } else if (options.alg === 'PS256') {
    signature = sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  } else if (options.alg === 'ES256') {
    signature = sign('sha256', data, { key, dsaEncoding: options.ecdsaEncoding ?? 'ieee-p1363' });
  } else {
    signature = sign(null, data, key);
  }
  return `${signingInput}.${signature.toString('base64url')}`;
}

// ---------------------------------------------------------------------------------------------
// The provider

export interface OpUser {
  readonly sub: string;
  readonly givenName?: string;
  readonly familyName?: string;
  /** YYYY-MM-DD. */
  readonly birthdate?: string;
  /** The `acr` this user's sign-in yields (the strength of their eID means). */
  readonly acr: string;
}

export interface OpClient {
  readonly clientId: string;
  /** Omit for a public client (`token_endpoint_auth_method: none`). */
  readonly clientSecret?: string;
  readonly redirectUris: readonly string[];
  /** Default RS256. */
  readonly idTokenSignedResponseAlg?: OpSigningAlg;
}

export interface OidcOpOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /**
   * Public issuer URL (scheme, host, port; no path). Default `http://<host>:<port>`. Set it when the
   * OP is reached under another name, e.g. behind the sandbox's TLS proxy.
   */
  readonly issuer?: string;
  readonly clients: readonly OpClient[];
  readonly users: readonly OpUser[];
  /** Default: the three eIDAS LoA URIs. */
  readonly acrValues?: readonly string[];
  /** Default: a fresh RS256 key (`op-rs256`) and ES256 key (`op-es256`). */
  readonly signingKeys?: readonly OpSigningKey[];
  /** Keys for oidc-provider's signed cookies; default random per start. */
  readonly cookieKeys?: readonly string[];
  /** Sign the chosen user in without showing a page (default true). */
  readonly autoLogin?: boolean;
}

export interface OidcOp {
  readonly issuer: string;
  readonly port: number;
  readonly signingKeys: readonly OpSigningKey[];
  readonly users: readonly OpUser[];
  /** How many times the JWKS was requested (for tests of the relying party's fetch discipline). */
  readonly jwksRequests: number;
  /**
   * Who `autoLogin` signs in from now on, and optionally with which `acr` instead of the user's own.
   * Without a call: the user named by the request's `login_hint` (OIDC Core 3.1.2.1), else the first.
   */
  loginAs(sub: string, acr?: string): void;
  close(): Promise<void>;
}

const MAX_FORM_BYTES = 4096;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_FORM_BYTES) throw new Error('form too large');
    chunks.push(buf);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function clientMetadata(c: OpClient): ClientMetadata {
  return {
    client_id: c.clientId,
    ...(c.clientSecret === undefined
      ? { token_endpoint_auth_method: 'none' }
      : { client_secret: c.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }),
    redirect_uris: [...c.redirectUris],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: c.idTokenSignedResponseAlg ?? 'RS256',
  };
}

export async function startOidcOp(options: OidcOpOptions): Promise<OidcOp> {
  const host = options.host ?? '127.0.0.1';
  const signingKeys = options.signingKeys ?? [generateSigningKey('RS256', 'op-rs256'), generateSigningKey('ES256', 'op-es256')];
  const users = new Map(options.users.map((u) => [u.sub, u]));
  const autoLogin = options.autoLogin ?? true;
  const acrValues = options.acrValues ?? [LOA_URIS.low, LOA_URIS.substantial, LOA_URIS.high];
  let chosen: { sub: string; acr: string | undefined } | undefined;
  let jwksRequests = 0;
  // Filled in once the port, and so the issuer, is known; requests before that get a 503.
  const mounted: { provider?: Provider; handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://op.invalid').pathname;
    if (path === '/jwks') jwksRequests += 1;
    const { provider, handler } = mounted;
    if (provider === undefined || handler === undefined) {
      res.statusCode = 503;
      res.end();
      return;
    }
    if (path.startsWith('/interaction/')) {
      handleInteraction(provider, req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.statusCode = 400;
          res.setHeader('content-type', 'text/plain; charset=utf-8');
        }
        res.end(`interaction failed: ${error instanceof Error ? error.message : 'unknown error'}`);
      });
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('startOidcOp: not a TCP listener');
  const { port } = address;
  const issuer = options.issuer ?? `http://${host}:${port}`;
  if (new URL(issuer).pathname !== '/') throw new TypeError('startOidcOp: the issuer must not have a path');

  const configuration: Configuration = {
    clients: options.clients.map(clientMetadata),
    jwks: { keys: signingKeys.map((k) => k.privateJwk) },
    acrValues: [...acrValues],
    scopes: ['openid', 'profile'],
    claims: {
      openid: ['sub'],
      profile: ['given_name', 'family_name', 'birthdate'],
      acr: null,
      auth_time: null,
      sid: null,
    },
    // The gateway reads names and birth date from the ID token itself, not from UserInfo.
    conformIdTokenClaims: false,
    // RFC 7636 / RFC 9700 section 2.1.1: PKCE for every client, confidential ones included.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    // Short lifetimes, in seconds: an eID sign-in is a one-off, not a long-lived SSO session.
    ttl: { AuthorizationCode: 60, IdToken: 600, AccessToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    cookies: { keys: [...(options.cookieKeys ?? [randomBytes(32).toString('base64url')])] },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => {
      const user = users.get(sub);
      if (user === undefined) return undefined;
      const account: Account = {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          given_name: user.givenName,
          family_name: user.familyName,
          birthdate: user.birthdate,
        }),
      };
      return account;
    },
    renderError: (ctx, out) => {
      ctx.type = 'text/plain';
      ctx.body = Object.entries(out)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n');
    },
  };
  const op = new Provider(issuer, configuration);
  mounted.provider = op;
  mounted.handler = op.callback();

  /** Who signs in: `loginAs`, else `login_hint`, else the first user. */
  function pick(details: InteractionDetails): { user: OpUser; acr: string } | undefined {
    const hint = details.params.login_hint;
    const sub = chosen?.sub ?? (typeof hint === 'string' && users.has(hint) ? hint : options.users[0]?.sub);
    const user = sub === undefined ? undefined : users.get(sub);
    return user === undefined ? undefined : { user, acr: chosen?.acr ?? user.acr };
  }

  async function finishLogin(req: IncomingMessage, res: ServerResponse, user: OpUser, acr: string): Promise<void> {
    await op.interactionFinished(req, res, { login: { accountId: user.sub, acr, remember: false } }, { mergeWithLastSubmission: false });
  }

  /** The test-users stand-in for a national eID login; consent is implied (first-party sandbox). */
  async function handleInteraction(p: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    const details = await p.interactionDetails(req, res);
    const isPost = req.method === 'POST';
    switch (details.prompt.name) {
      case 'login': {
        if (isPost) {
          const form = await readForm(req);
          const user = users.get(form.get('sub') ?? '');
          if (user === undefined) throw new Error('unknown test user');
          const acr = form.get('acr') ?? user.acr;
          if (!acrValues.includes(acr)) throw new Error('acr is not one this provider offers');
          await finishLogin(req, res, user, acr);
          return;
        }
        const choice = pick(details);
        if (autoLogin && choice !== undefined) {
          await finishLogin(req, res, choice.user, choice.acr);
          return;
        }
        renderPicker(res, details.uid);
        return;
      }
      case 'consent': {
        const accountId = details.session?.accountId;
        const clientId = details.params.client_id;
        if (accountId === undefined || typeof clientId !== 'string') throw new Error('consent without a session');
        const existing = details.grantId === undefined ? undefined : await p.Grant.find(details.grantId);
        const grant = existing ?? new p.Grant({ accountId, clientId });
        const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
        if (missingOIDCScope !== undefined) grant.addOIDCScope(missingOIDCScope.join(' '));
        if (missingOIDCClaims !== undefined) grant.addOIDCClaims(missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
        const grantId = await grant.save();
        await p.interactionFinished(req, res, { consent: existing === undefined ? { grantId } : {} }, { mergeWithLastSubmission: true });
        return;
      }
      default:
        await p.interactionFinished(req, res, { error: 'access_denied', error_description: 'unsupported prompt' }, { mergeWithLastSubmission: false });
    }
  }

  function renderPicker(res: ServerResponse, uid: string): void {
    const rows = options.users
      .map((u) => {
        const name = escapeHtml(`${u.givenName ?? ''} ${u.familyName ?? ''} (${u.sub})`);
        const acrOptions = acrValues.map((a) => `<option${a === u.acr ? ' selected' : ''}>${escapeHtml(a)}</option>`).join('');
        return `<form method="post" action="/interaction/${escapeHtml(uid)}"><input type="hidden" name="sub" value="${escapeHtml(u.sub)}">${name} <select name="acr">${acrOptions}</select> <button>Sign in</button></form>`;
      })
      .join('\n');
    res.statusCode = 200;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Test eID</title></head><body><h1>Test eID sign-in</h1>\n${rows}\n</body></html>`);
  }

  return {
    issuer,
    port,
    signingKeys,
    users: options.users,
    get jwksRequests() {
      return jwksRequests;
    },
    loginAs(sub: string, acr?: string) {
      if (!users.has(sub)) throw new TypeError(`loginAs: no test user ${sub}`);
      chosen = { sub, acr };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// A minimal user agent

/**
 * Follows the provider's redirects the way a browser would (cookies kept per host, manual redirects)
 * from the authorization URL until a redirect to `redirectUri`, and returns that callback URL without
 * requesting it. Works with `autoLogin`; an HTML page on the way is an error.
 */
export async function followLoginRedirects(authorizationUrl: string, redirectUri: string, maxHops = 10): Promise<URL> {
  const target = new URL(redirectUri);
  const jar = new Map<string, string>();
  let current = new URL(authorizationUrl);
  for (let hop = 0; hop < maxHops; hop += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(current, { redirect: 'manual', headers: cookie === '' ? {} : { cookie } });
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) {
      throw new Error(`followLoginRedirects: ${response.status} at ${current.pathname}: ${(await response.text()).slice(0, 300)}`);
    }
    await response.body?.cancel();
    const next = new URL(location, current);
    if (next.origin === target.origin && next.pathname === target.pathname) return next;
    current = next;
  }
  throw new Error('followLoginRedirects: too many redirects');
}
