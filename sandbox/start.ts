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
import { initPki } from '../src/trust/pki.js';
import { writeSandboxTrustList } from './trust-list.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SANDBOX = join(ROOT, '.sandbox');
const READY_TIMEOUT_MS = 90_000;

interface CountryPlan {
  readonly country: string;
  readonly configFile: string;
  readonly ncpId: string;
  readonly apiUrl: string;
  readonly peerUrl: string;
}

function say(line: string): void {
  process.stdout.write(`[sandbox] ${line}\n`);
}

async function planFor(country: string): Promise<CountryPlan> {
  const configFile = join(ROOT, 'config', `${country.toLowerCase()}.json`);
  const raw = JSON.parse(await readFile(configFile, 'utf8')) as { ncpId: string; api: { host?: string; port: number }; peer: { host?: string; port: number } };
  return {
    country,
    configFile,
    ncpId: raw.ncpId,
    apiUrl: `http://${raw.api.host ?? '127.0.0.1'}:${raw.api.port}`,
    peerUrl: `https://${raw.peer.host ?? '127.0.0.1'}:${raw.peer.port}`,
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
  const plans = await Promise.all(['DK', 'ES'].map(planFor));
  await mkdir(SANDBOX, { recursive: true, mode: 0o700 });

  say('preparing the development PKI (.sandbox/pki) ...');
  const pki = await initPki({ outDir: join(SANDBOX, 'pki'), countries: plans.map((p) => p.country) });
  say('signing the sandbox trust list (.sandbox/trust-list.jws) ...');
  await writeSandboxTrustList({ pki, countries: plans, outFile: join(SANDBOX, 'trust-list.jws') });

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
    }
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  for (const plan of plans) {
    say(`starting the ${plan.country} gateway (api ${plan.apiUrl}, peer ${plan.peerUrl}) ...`);
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'serve', '--config', plan.configFile], {
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

  const endpoints = { countries: Object.fromEntries(plans.map((p) => [p.country, { api: p.apiUrl, peer: p.peerUrl }])) };
  await writeFile(join(SANDBOX, 'endpoints.json'), `${JSON.stringify(endpoints, null, 2)}\n`);
  say(`all parts ready in ${((Date.now() - started) / 1000).toFixed(1)} s; endpoints in .sandbox/endpoints.json:`);
  for (const p of plans) say(`  ${p.country}: api ${p.apiUrl}   peer (mutual TLS) ${p.peerUrl}`);
  say('press Ctrl-C to stop');
}

main().catch((e: unknown) => {
  process.stderr.write(`[sandbox] failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
