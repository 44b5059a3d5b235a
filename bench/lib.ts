/**
 * Shared measuring tools: a bounded micro-benchmark loop, per-process CPU and memory read from
 * /proc (so a gateway child process is measured from outside, without touching its code), and
 * autocannon run as a separate process.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const RESULTS_DIR = join(BENCH_DIR, 'results');
export const REPO_DIR = dirname(BENCH_DIR);

export interface MicroResult {
  readonly name: string;
  readonly ops: number;
  readonly usPerOp: number;
  readonly opsPerSec: number;
  /** process CPU (user+system) per op; > usPerOp when libuv threads work in parallel. */
  readonly cpuUsPerOp: number;
}

/**
 * Runs `fn` sequentially after a short warm-up until `maxMs` elapsed or `maxOps` ran, whichever
 * comes first. Sequential on purpose: the cost of one operation, not the machine's parallel capacity.
 */
export async function micro(name: string, fn: () => unknown, opts: { maxMs?: number; maxOps?: number; warmupOps?: number } = {}): Promise<MicroResult> {
  const maxMs = opts.maxMs ?? 1500;
  const maxOps = opts.maxOps ?? 100_000;
  for (let i = 0; i < (opts.warmupOps ?? 20); i++) await fn();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(maxMs) * 1_000_000n;
  let ops = 0;
  let now = t0;
  while (ops < maxOps && now < deadline) {
    await fn();
    ops++;
    if ((ops & 3) === 0 || ops < 8) now = process.hrtime.bigint();
  }
  now = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const us = Number(now - t0) / 1000;
  return { name, ops, usPerOp: round(us / ops), opsPerSec: round((ops * 1e6) / us), cpuUsPerOp: round((cpu.user + cpu.system) / ops) };
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of another process (Linux)

const CLOCK_TICKS_PER_SEC = 100;

export interface ProcSample {
  readonly cpuMs: number;
  readonly rssMb: number;
  readonly hwmMb: number;
}

export function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at index 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 'NaN');
  return { cpuMs: ((utime + stime) * 1000) / CLOCK_TICKS_PER_SEC, rssMb: round(kb('VmRSS') / 1024), hwmMb: round(kb('VmHWM') / 1024) };
}

/**
 * Sets a process's peak resident size (VmHWM) back to its current size, so that a later reading is
 * the peak since now: "under load" without the start-up transient (Linux >= 4.0, proc(5)
 * /proc/pid/clear_refs, value 5). Returns the peak before the reset, in MB.
 */
export function resetPeakRss(pid: number): number {
  const before = procSample(pid).hwmMb;
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return before;
}

// ---------------------------------------------------------------------------------------------
// autocannon, from its own process

export interface LoadResult {
  readonly connections: number;
  readonly targetRate: number | null;
  readonly durationS: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly rps: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly bytesPerResponse: number;
}

const require = createRequire(import.meta.url);
const AUTOCANNON_BIN = join(dirname(require.resolve('autocannon/package.json')), 'autocannon.js');

interface AutocannonJson {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p99: number; max: number; average: number };
  throughput: { total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}

/** One autocannon run in a child process (`-j`), bounded by `durationS` and a hard kill timer. */
export async function autocannon(opts: { url: string; connections: number; durationS: number; rate?: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const args = [AUTOCANNON_BIN, '-j', '-c', String(opts.connections), '-d', String(opts.durationS), '-t', '10'];
  if (opts.rate !== undefined) args.push('-R', String(Math.max(1, Math.round(opts.rate))));
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}=${v}`);
  args.push(opts.url);
  const r = (await lastJsonLine('autocannon', args, opts.durationS + 30)) as AutocannonJson;
  const total = r.requests.total;
  return {
    connections: opts.connections,
    targetRate: opts.rate ?? null,
    durationS: round(r.duration, 2),
    requests: total,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    rps: round(total / r.duration),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: round(r.latency.average, 2) },
    bytesPerResponse: total > 0 ? Math.round(r.throughput.total / total) : 0,
  };
}

/** An open-loop run at a fixed rate (paced-load.ts, in its own process), for latency at a given load. */
export async function pacedLoad(opts: { url: string; connections: number; durationS: number; rate: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const args = JSON.stringify({ url: opts.url, headers: opts.headers ?? {}, connections: opts.connections, durationS: opts.durationS, rate: opts.rate });
  return (await lastJsonLine('paced load', ['--import', 'tsx', join(BENCH_DIR, 'paced-load.ts'), args], opts.durationS + 30)) as LoadResult;
}

/**
 * Runs `node ARGS` as a separate process (a load generator), killed after `limitS` seconds, and
 * returns the JSON object on the last line it prints.
 */
export async function lastJsonLine(what: string, args: readonly string[], limitS: number): Promise<unknown> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), limitS * 1000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(kill);
  const line = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`${what} failed (${String(code)}): ${err.slice(-500)}`);
  return JSON.parse(line) as unknown;
}

/**
 * The values of one metric in a gateway's `/metrics` (Prometheus text format), one per label set.
 * `name` is a plain metric name (letters, digits, underscores).
 */
export async function metricValues(apiUrl: string, name: string): Promise<number[]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`not a metric name: ${name}`);
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
}

export async function writeResult(name: string, data: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
