/**
 * What survives the young generation, by allocation site: `tsx bench/promotion.ts`.
 *
 * A gateway's resident memory under load grows with its old space, and the old space grows with
 * what the scavenger promotes: objects still alive at two young-generation collections in a row.
 * V8's sampling heap profiler can leave out the objects that a minor GC collected
 * (HeapProfiler.startSampling with includeObjectsCollectedByMinorGC false and ...ByMajorGC true),
 * so what it reports is exactly what was promoted (or is still in the young generation at the end),
 * by the JavaScript stack that allocated it. Both gateways run with --inspect on a loopback port and
 * are profiled over the DevTools protocol during a run at BENCH_CONNECTIONS (default 10) after a
 * warm-up of BENCH_WARMUP_S (default 20). Bytes are sampled (one sample per 8 KB on average), so
 * read them as shares and orders of magnitude. BENCH_GATEWAY_NODE_ARGS adds flags (e.g. heap sizing).
 */
import { rmSync } from 'node:fs';
import { WebSocket } from 'undici';
import { installDocument, prepareCrossBorder } from './e2e.js';
import { buildGateway, BUILD_DIR } from './gateway-process.js';
import { buildBenchIps } from './ips.js';
import { autocannon, log } from './lib.js';
import { BenchDatabase, startBenchWorld } from './world.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? '10');
const WARMUP_S = Number(process.env['BENCH_WARMUP_S'] ?? '20');
const DURATION_S = 15;

interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly ProfileNode[];
}

/** A minimal DevTools protocol client: one request at a time is all this needs. */
async function devtools(url: string): Promise<{ send(method: string, params?: object): Promise<unknown>; close(): void }> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.onmessage = (ev: { data: unknown }) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error !== undefined) p?.reject(new Error(msg.error.message));
    else p?.resolve(msg.result);
  };
  // A gateway that exits mid-profile must not leave a request waiting for ever.
  ws.onclose = () => {
    for (const p of pending.values()) p.reject(new Error('the inspector connection closed'));
    pending.clear();
  };
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

function frameName(f: ProfileNode['callFrame']): string {
  const where = f.url.replace(/^.*\/(node_modules\/|src\/)/, '$1').replace(/^file:\/\//, '');
  return `${f.functionName === '' ? '(anonymous)' : f.functionName} ${where}:${f.lineNumber + 1}`;
}

/** Sampled bytes by allocating function and by its last `depth` frames, largest first. */
function summarise(head: ProfileNode, top: number, depth: number): { totalMb: number; byFunction: string[]; byStack: string[] } {
  const byFunction = new Map<string, number>();
  const byStack = new Map<string, number>();
  const walk = (node: ProfileNode, path: readonly string[]): void => {
    const name = frameName(node.callFrame);
    const here = [...path, name];
    if (node.selfSize > 0) {
      byFunction.set(name, (byFunction.get(name) ?? 0) + node.selfSize);
      const stack = here.slice(-depth).join(' < ');
      byStack.set(stack, (byStack.get(stack) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(head, []);
  const rows = (m: Map<string, number>): string[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `${(v / 1e6).toFixed(2)} MB  ${k}`);
  const total = [...byFunction.values()].reduce((a, b) => a + b, 0);
  return { totalMb: Math.round(total / 1e5) / 10, byFunction: rows(byFunction), byStack: rows(byStack) };
}

async function main(): Promise<void> {
  process.env['BENCH_GATEWAY_NODE_ARGS'] = `--inspect=127.0.0.1:0 ${process.env['BENCH_GATEWAY_NODE_ARGS'] ?? ''}`.trim();
  buildGateway();
  const ips = await buildBenchIps();
  const db = new BenchDatabase(process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  await db.create();
  const world = await startBenchWorld(db);
  try {
    await installDocument(world, ips.bundle);
    await world.startGateways('pg');
    const target = await prepareCrossBorder(world, ips.sectionCodes);
    log(`warm-up ${WARMUP_S} s`);
    await autocannon({ url: target.url, headers: target.headers, connections: CONNECTIONS, durationS: WARMUP_S });
    const sessions = [];
    for (const cw of [world.es, world.dk]) {
      const url = cw.gateway?.inspectorUrl();
      if (url === undefined) throw new Error(`${cw.country}: no inspector address in the gateway's output`);
      const s = await devtools(url);
      await s.send('HeapProfiler.enable');
      await s.send('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
      sessions.push({ country: cw.country, s });
    }
    log(`${CONNECTIONS} connections, ${DURATION_S} s, sampling what survives the young generation`);
    const load = await autocannon({ url: target.url, headers: target.headers, connections: CONNECTIONS, durationS: DURATION_S });
    const fetches = Math.max(1, load.requests - load.errors - load.non2xx);
    const out: Record<string, unknown> = { connections: CONNECTIONS, fetches };
    for (const { country, s } of sessions) {
      const r = (await s.send('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
      s.close();
      const sum = summarise(r.profile.head, 20, 5);
      out[country] = { promotedMb: sum.totalMb, promotedKbPerFetch: Math.round((sum.totalMb * 1000) / fetches), byFunction: sum.byFunction, byStack: sum.byStack };
    }
    process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
  } finally {
    await world.close();
    await db.drop();
    rmSync(BUILD_DIR, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`promotion profile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
