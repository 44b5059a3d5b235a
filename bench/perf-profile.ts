/**
 * On-CPU profiles of the gateway processes with Linux `perf` (software event cpu-clock, call
 * graphs), read back into shares by owner.
 *
 * Why not only `--cpu-prof`: V8's profiler samples on a wall-clock timer, so time a gateway spends
 * descheduled (two cores, six busy processes) is charged to whatever it was last doing. A write
 * that wakes the process at the other end is often where the scheduler switches away, which made
 * `writev` look like 12-17% of the gateways' time; perf, which only samples a thread while it is on
 * a CPU, puts all kernel time (syscalls and the loopback network stack together) at 10-18%.
 *
 * A sample is charged to the first frame, from the leaf up, that says whose work it is: a JavaScript
 * function (our src/, an npm package, node's own JavaScript), or a native part with an owner of its
 * own (the kernel, OpenSSL, V8's JSON, garbage collector and JIT compilers). V8 builtins, inline
 * caches, libc and libuv frames are looked through to the JavaScript that called them. JavaScript frames get names
 * from the gateway's `--perf-basic-prof-only-functions` map (/tmp/perf-<pid>.map).
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { round } from './lib.js';

export const PERF_NODE_ARGS = ['--perf-basic-prof-only-functions'] as const;

export function perfAvailable(): boolean {
  const r = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

export interface PerfRecording {
  stop(): Promise<void>;
}

/** Starts `perf record` on one process; stop() ends it with SIGINT (perf then writes its file). */
export function recordPerf(pid: number, outFile: string): PerfRecording {
  const child = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '499', '-g', '-p', String(pid), '-o', outFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    stop: async () => {
      child.kill('SIGINT');
      const code = await exited;
      if (code !== 0 && code !== null) throw new Error(`perf record failed (${String(code)}): ${err.slice(-400)}`);
    },
  };
}

export interface OnCpuShare {
  readonly what: string;
  readonly pct: number;
}

export interface OnCpuSummary {
  readonly samples: number;
  readonly byOwner: OnCpuShare[];
  /** Our functions (src/) with the largest shares, after the attribution above. */
  readonly ours: OnCpuShare[];
  /**
   * Samples with one of the envelope's operations anywhere on the stack (inclusive: its OpenSSL,
   * JSON and base64 work included): the envelope's CPU measured inside the gateway, under the same
   * load as everything else, so its ratio to the whole does not depend on how fast the machine was
   * when step 2 ran. Background threads (GC, JIT) are in the whole only.
   */
  readonly envelopeSamples: number;
  readonly envelopePct: number;
}

/** The envelope's four operations (src/crossborder/envelope.ts), as perf names their JavaScript frames. */
const ENVELOPE_FRAME = /^JS:[*^~]?(sealResponse|openResponseSigned|signRequest|verifyRequest) /;

type Frame = { readonly sym: string; readonly dso: string };

const LOOK_THROUGH = 'look-through';

/** Whose work a frame is, or LOOK_THROUGH for frames that only serve the JavaScript above them. */
export function frameOwner(f: Frame): string {
  if (f.dso.includes('kernel')) return 'kernel (syscalls, loopback network stack)';
  if (f.sym.startsWith('JS:')) {
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.sym);
    if (nm?.[1] !== undefined) return nm[1];
    if (/\/src\//.test(f.sym)) return 'ncpeh src';
    if (/ node:/.test(f.sym)) return 'node internals (JavaScript: http, streams, tls, timers)';
    return LOOK_THROUGH;
  }
  if (/Scaveng|MarkCompact|Heap::|GCTracer|Sweeper|Marking|Evacuat|MinorMC|Collector/.test(f.sym)) return 'V8 garbage collection';
  if (/v8::internal::(compiler|maglev|baseline)::|OptimizingCompile|Compiler::/.test(f.sym)) return 'V8 JIT compilers (background threads)';
  if (/Json(Parser|Stringif|Parse|Stringify)/.test(f.sym)) return 'V8 JSON.parse / JSON.stringify';
  if (/ecp_nistz|sha256|sha512|aes|gcm|ghash|BN_|bn_|EC_|ECDSA|EVP_|ossl_|RSA_|CRYPTO_|SSL_|ssl3_|tls1_|tls_/.test(f.sym)) return 'OpenSSL (signatures, ECDH, AES-GCM, TLS records)';
  return LOOK_THROUGH;
}

/** Parses `perf script -F ip,sym,dso` output into stacks, leaf first. */
export function parseStacks(text: string): Frame[][] {
  const stacks: Frame[][] = [];
  let current: Frame[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.length > 0) stacks.push(current);
      current = [];
      continue;
    }
    const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
    current.push(m === null ? { sym: line.trim(), dso: '' } : { sym: m[1] ?? '', dso: m[2] ?? '' });
  }
  if (current.length > 0) stacks.push(current);
  return stacks;
}

export function summariseStacks(stacks: readonly Frame[][]): OnCpuSummary {
  const owners = new Map<string, number>();
  const ours = new Map<string, number>();
  let envelopeSamples = 0;
  for (const stack of stacks) {
    if (stack.some((f) => ENVELOPE_FRAME.test(f.sym))) envelopeSamples += 1;
    let owner = 'other native (malloc, V8 runtime) with no JavaScript caller';
    for (const frame of stack) {
      const o = frameOwner(frame);
      if (o === LOOK_THROUGH) continue;
      owner = o;
      if (o === 'ncpeh src') {
        const name = frame.sym.replace(/^JS:[*^~]?/, '').replace(/file:\/\/\/\S*?\/(src\/)/, '$1');
        ours.set(name, (ours.get(name) ?? 0) + 1);
      }
      break;
    }
    owners.set(owner, (owners.get(owner) ?? 0) + 1);
  }
  const n = Math.max(1, stacks.length);
  const shares = (m: Map<string, number>, top: number): OnCpuShare[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([what, count]) => ({ what, pct: round((100 * count) / n, 1) }));
  return { samples: stacks.length, byOwner: shares(owners, 16), ours: shares(ours, 12), envelopeSamples, envelopePct: round((100 * envelopeSamples) / n, 1) };
}

/** Reads a perf.data file (and removes it, with the process's perf map). */
export function summarisePerf(file: string, pid: number): OnCpuSummary {
  const r = spawnSync('perf', ['script', '-F', 'ip,sym,dso', '-i', file], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`perf script failed: ${r.stderr.slice(-400)}`);
  // BENCH_PERF_KEEP=DIR keeps the stacks as text (perf script output) for a closer look.
  const keep = process.env['BENCH_PERF_KEEP'];
  if (keep !== undefined) writeFileSync(join(keep, `${basename(file)}.stacks.txt`), r.stdout);
  rmSync(file, { force: true });
  rmSync(`/tmp/perf-${pid}.map`, { force: true });
  return summariseStacks(parseStacks(r.stdout));
}
