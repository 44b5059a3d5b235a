/**
 * A real deployment on disk for tests: a dev PKI, a signed trust list and one config file per
 * country, exactly as an operator would lay them out (only in a temp folder, with port 0).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSandboxTrustList } from '../../sandbox/trust-list.js';
import { generateDataKeyFile } from '../../src/outbox/data-keys.js';
import { initPki, type PkiLayout } from '../../src/trust/pki.js';

/** Ports freePort has handed out in this process: each is used by one listener only. */
const handedOut = new Set<number>();

/** Linux's range for `listen(0)` and outgoing connections; ports below it are never handed out by the OS. */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return { low, high };
  } catch {
    // not Linux: fall back to ports the OS hands out
  }
  return { low: 0, high: 0 };
}

/**
 * A port that is free now and that nothing else in the tests will take: the trust list must name
 * peer ports (and configs the API port) before the listeners start. A port from `listen(0)` would
 * be free, but a server started later with port 0, or an outgoing connection, can be given the same
 * one before its intended listener binds it (seen in CI as EADDRINUSE). So the port comes from
 * below the OS's ephemeral range, is checked to bind, and is handed out once per process.
 */
export async function freePort(): Promise<number> {
  const { low } = ephemeralRange();
  const floor = 20_000;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low > floor + 1_000 ? floor + Math.floor(Math.random() * (low - floor)) : await osPort(0);
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port after 100 attempts');
}

function bindable(port: number): Promise<boolean> {
  return osPort(port).then(
    () => true,
    () => false,
  );
}

/** Listens on `port` (0: any) on loopback, closes, and gives the port that was bound. */
function osPort(port: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address !== null && typeof address === 'object' ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestDeployment {
  readonly dir: string;
  readonly peerPorts: Readonly<Record<string, number>>;
  readonly pki: PkiLayout;
  readonly trustListFile: string;
  configFile(country: string): string;
  cleanup(): Promise<void>;
}

export function configDocument(pki: PkiLayout, country: string, trustListFile: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const c = pki.countries[country];
  if (c === undefined) throw new Error(`no PKI for ${country}`);
  return {
    country,
    ncpId: `urn:ncpeh:ncp:${country}`,
    api: { host: '127.0.0.1', port: 0 },
    peer: {
      host: '127.0.0.1',
      port: 0,
      tls: { certFile: c.tlsServerCert, keyFile: c.tlsServerKey, clientCertFile: c.tlsClientCert, clientKeyFile: c.tlsClientKey, caFile: pki.ca.cert },
    },
    keys: { signingKeyFile: c.signingJwk, encryptionKeyFiles: [c.encryptionJwk] },
    trustList: { file: trustListFile, anchorKeyFiles: [pki.ca.signingPubJwk] },
    dataKeys: [{ id: `${country.toLowerCase()}-data-1`, file: join(pki.outDir, '..', `${country.toLowerCase()}-data-1.key`) }],
    log: { level: 'info' },
    ...extra,
  };
}

/**
 * @param countries the countries with PKI material and a config file
 * @param listed the countries the trust list names (default: all); leaving one out gives a
 *   certificate that chains to the anchor but is not trusted
 */
export async function createTestDeployment(opts: { countries?: string[]; listed?: string[] } = {}): Promise<TestDeployment> {
  const countries = opts.countries ?? ['DK', 'ES'];
  const listed = opts.listed ?? countries;
  const dir = await mkdtemp(join(tmpdir(), 'ncpeh-deploy-'));
  const pki = await initPki({ outDir: join(dir, 'pki'), countries });
  const trustListFile = join(dir, 'trust-list.jws');
  const peerPorts: Record<string, number> = {};
  for (const cc of countries) peerPorts[cc] = await freePort();
  await writeSandboxTrustList({
    pki,
    countries: listed.map((cc) => ({ country: cc, ncpId: `urn:ncpeh:ncp:${cc}`, peerUrl: `https://127.0.0.1:${peerPorts[cc] ?? 1}` })),
    outFile: trustListFile,
  });
  for (const cc of countries) {
    await generateDataKeyFile(join(dir, `${cc.toLowerCase()}-data-1.key`));
    const doc = configDocument(pki, cc, trustListFile);
    doc.peer = { ...(doc.peer as Record<string, unknown>), port: peerPorts[cc] };
    await writeFile(join(dir, `${cc.toLowerCase()}.json`), JSON.stringify(doc, null, 2));
  }
  return {
    dir,
    peerPorts,
    pki,
    trustListFile,
    configFile: (cc) => join(dir, `${cc.toLowerCase()}.json`),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
