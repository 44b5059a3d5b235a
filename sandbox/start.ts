/**
 * `npm start`: the two-country sandbox on loopback. Generates the dev PKI and a signed trust list on
 * first run (into the git-ignored .sandbox/), starts the Danish and the Spanish gateway as separate
 * processes on embedded PGlite, waits until each is ready, and writes .sandbox/endpoints.json.
 * Ctrl-C (or SIGTERM) stops everything cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateDataKeyFile } from '../src/outbox/data-keys.js';
import { initPki } from '../src/trust/pki.js';
import { ensureSandboxClient } from './clients.js';
import { ConfigSchema } from '../src/config/schema.js';
import { ehrClientId, startCountryEid, type CountryEid } from './eid.js';
import { startFhirServer, type RunningFhirServer } from './fhir-server.js';
import { writeSandboxTrustList } from './trust-list.js';
import { GATEWAY_NODE_FLAGS } from '../src/node-flags.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SANDBOX = join(ROOT, '.sandbox');
const READY_TIMEOUT_MS = 90_000;

interface CountryPlan {
  readonly country: 'DK' | 'ES';
  readonly configFile: string;
  readonly ncpId: string;
  readonly fhirPort: number;
  readonly apiUrl: string;
  readonly peerUrl: string;
}

function say(line: string): void {
  process.stdout.write(`[sandbox] ${line}\n`);
}

async function planFor(country: 'DK' | 'ES'): Promise<CountryPlan> {
  const configFile = join(ROOT, 'config', `${country.toLowerCase()}.json`);
  // The schema alone (files under .sandbox/ may not exist yet); `ncpeh serve` does the full load.
  const raw = ConfigSchema.parse(JSON.parse(await readFile(configFile, 'utf8')));
  if (raw.nationalFhir === undefined) throw new Error(`${configFile}: the sandbox needs nationalFhir.baseUrl`);
  return {
    country,
    configFile,
    fhirPort: Number(new URL(raw.nationalFhir.baseUrl).port),
    ncpId: raw.ncpId,
    apiUrl: `http://${raw.api.host}:${raw.api.port}`,
    peerUrl: `https://${raw.peer.host}:${raw.peer.port}`,
  };
}

/** Prints a child's pino lines as `[DK] message`, keeping errors visible. */
function relayLogs(country: string, child: ChildProcess): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    createInterface({ input: stream }).on('line', (line) => {
      let text = line;
      try {
        const entry = JSON.parse(line) as { msg?: string; level?: number; route?: string; status?: number; err?: { message?: string } };
        if (entry.msg === 'request completed') return;
        text = `${entry.msg ?? ''}${entry.err?.message === undefined ? '' : `: ${entry.err.message}`}`;
      } catch {
        // not JSON (e.g. a Node warning): print as is
      }
      process.stdout.write(`[${country}] ${text}\n`);
    });
  }
}

async function waitReady(plan: CountryPlan, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${plan.country} gateway exited with code ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`${plan.apiUrl}/health/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${plan.country} gateway was not ready within ${READY_TIMEOUT_MS / 1000} s`);
}

async function main(): Promise<void> {
  const started = Date.now();
  const plans = await Promise.all((['DK', 'ES'] as const).map(planFor));
  await mkdir(SANDBOX, { recursive: true, mode: 0o700 });

  say('preparing the development PKI (.sandbox/pki) ...');
  const pki = await initPki({ outDir: join(SANDBOX, 'pki'), countries: plans.map((p) => p.country) });
  say('signing the sandbox trust list (.sandbox/trust-list.jws) ...');
  await writeSandboxTrustList({ pki, countries: plans, outFile: join(SANDBOX, 'trust-list.jws') });

  for (const plan of plans) {
    const file = join(SANDBOX, 'data-keys', `${plan.country.toLowerCase()}-data-1.key`);
    await mkdir(join(SANDBOX, 'data-keys'), { recursive: true, mode: 0o700 });
    await generateDataKeyFile(file).catch((e: unknown) => {
      // Kept across restarts: queued submissions encrypted under it must stay readable.
      if (!(e instanceof Error && 'code' in e && e.code === 'EEXIST')) throw e;
    });
  }

  const services: Array<{ close(): Promise<void> }> = [];
  const fhir = new Map<string, RunningFhirServer>();
  const eid = new Map<string, CountryEid>();
  for (const plan of plans) {
    say(`starting the ${plan.country} national FHIR server (seeded) ...`);
    const server = await startFhirServer({ port: plan.fhirPort, seed: plan.country });
    fhir.set(plan.country, server);
    services.push(server);
    say(`starting the ${plan.country} national eID providers (OpenID Connect, eIDAS SAML) ...`);
    await ensureSandboxClient(SANDBOX, ehrClientId(plan.country));
    const providers = await startCountryEid({ country: plan.country, sandboxDir: SANDBOX, gatewayApiUrl: plan.apiUrl });
    eid.set(plan.country, providers);
    services.push(providers);
  }

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const stopAll = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      say('stopping ...');
      await Promise.all(
        [...children.entries()].map(
          ([country, child]) =>
            new Promise<void>((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
              child.once('exit', () => {
                clearTimeout(kill);
                say(`${country} gateway stopped`);
                done();
              });
              child.kill('SIGTERM');
            }),
        ),
      );
      await Promise.allSettled(services.map((svc) => svc.close()));
    }
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  for (const plan of plans) {
    say(`starting the ${plan.country} gateway (api ${plan.apiUrl}, peer ${plan.peerUrl}) ...`);
    const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, '--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'serve', '--config', plan.configFile], {
      cwd: ROOT,
      env: { ...process.env, NCPEH_DATA_DIR: join(SANDBOX, 'data', plan.country.toLowerCase()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.set(plan.country, child);
    relayLogs(plan.country, child);
    child.once('exit', (code, signal) => {
      if (!stopping) {
        say(`${plan.country} gateway exited unexpectedly (${signal ?? `code ${code ?? '?'}`}); stopping the sandbox`);
        void stopAll(1);
      }
    });
  }
  for (const plan of plans) {
    const child = children.get(plan.country);
    if (child === undefined) continue;
    await waitReady(plan, child);
    say(`${plan.country} gateway ready`);
  }

  const endpoints = {
    countries: Object.fromEntries(
      plans.map((p) => [
        p.country,
        { api: p.apiUrl, peer: p.peerUrl, fhir: fhir.get(p.country)?.baseUrl, oidc: eid.get(p.country)?.oidcIssuer, saml: eid.get(p.country)?.samlUrl },
      ]),
    ),
  };
  await writeFile(join(SANDBOX, 'endpoints.json'), `${JSON.stringify(endpoints, null, 2)}\n`);
  say(`all parts ready in ${((Date.now() - started) / 1000).toFixed(1)} s; endpoints in .sandbox/endpoints.json:`);
  for (const p of plans) {
    say(`  ${p.country}: api ${p.apiUrl}   peer (mutual TLS) ${p.peerUrl}`);
    say(`      national FHIR ${fhir.get(p.country)?.baseUrl ?? '-'}   eID: OIDC ${eid.get(p.country)?.oidcIssuer ?? '-'}   SAML ${eid.get(p.country)?.samlUrl ?? '-'}/sso?person=...`);
  }
  say('test logins: citizen Kenneth (DK CPR 0201609995) at the DK OIDC provider; professionals, e.g.');
  say('  ES/ES/12345678Z Dr. Ana García (physician), ES/ES/23456789D nurse, ES/ES/34567890V dentist, ES/ES/45678901G pharmacist');
  say('press Ctrl-C to stop');
}

main().catch((e: unknown) => {
  process.stderr.write(`[sandbox] failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
