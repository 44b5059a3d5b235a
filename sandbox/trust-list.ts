/**
 * Builds and signs the sandbox trust list from the dev PKI and the example configs, so the two
 * sandbox gateways trust each other exactly as production gateways would: through a list signed by
 * the trust anchor, never through a shortcut.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { PkiLayout } from '../src/trust/pki.js';
import { signTrustList } from '../src/trust/trust-list.js';

export interface SandboxCountry {
  readonly country: string;
  readonly ncpId: string;
  readonly peerUrl: string;
}

const LIST_VALIDITY_DAYS = 30;

async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

function stringField(value: unknown, key: string, file: string): string {
  if (typeof value === 'object' && value !== null && key in value) {
    const v: unknown = (value as Record<string, unknown>)[key];
    if (typeof v === 'string') return v;
  }
  throw new Error(`${file}: expected a string "${key}"`);
}

export async function writeSandboxTrustList(opts: {
  pki: PkiLayout;
  countries: readonly SandboxCountry[];
  outFile: string;
  now?: Date;
}): Promise<string> {
  const now = opts.now ?? new Date();
  const countries: Record<string, unknown> = {};
  for (const c of opts.countries) {
    const layout = opts.pki.countries[c.country];
    if (layout === undefined) throw new Error(`the dev PKI has no material for ${c.country}`);
    const fingerprints = await readJson(layout.fingerprints);
    const jwks = await readJson(layout.jwksPub);
    countries[c.country] = {
      ncpId: c.ncpId,
      peerUrl: c.peerUrl,
      tls: {
        serverCertSha256: [stringField(fingerprints, 'serverCertSha256', layout.fingerprints)],
        clientCertSha256: [stringField(fingerprints, 'clientCertSha256', layout.fingerprints)],
      },
      jwks,
      validFrom: new Date(now.getTime() - 60_000).toISOString(),
      validUntil: new Date(now.getTime() + LIST_VALIDITY_DAYS * 86_400_000).toISOString(),
    };
  }
  const doc = {
    version: 1,
    // Seconds since the epoch: every sandbox start publishes a strictly newer list.
    sequence: Math.floor(now.getTime() / 1000),
    issuedAt: now.toISOString(),
    nextUpdate: new Date(now.getTime() + LIST_VALIDITY_DAYS * 86_400_000).toISOString(),
    countries,
  };
  const jws = await signTrustList(doc, await readJson(opts.pki.ca.signingJwk));
  await writeFile(opts.outFile, jws, { mode: 0o644 });
  return jws;
}
