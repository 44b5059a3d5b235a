/**
 * A gateway as its own OS process, started exactly as operators start it (`ncpeh serve`, from a
 * compiled build of src/ so no TypeScript transpiler runs inside it), observed from outside.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { log, procSample, REPO_DIR, resetPeakRss, type ProcSample } from './lib.js';
import { GATEWAY_NODE_FLAGS } from '../src/node-flags.js';
import { PERF_NODE_ARGS } from './perf-profile.js';

/**
 * Outside the repository (so lint and git never see it); buildGateway links package.json, migrations/ and
 * node_modules/ into it, which is all the compiled gateway looks up at run time.
 */
export const BUILD_DIR = join(tmpdir(), `ncpeh-bench-build-${process.pid}`);
const CLI = join(BUILD_DIR, 'src', 'cli.js');

/** Compiles src/ into BUILD_DIR with tsc (the gateways run the emitted JavaScript). */
export function buildGateway(): void {
  log(`compiling src/ for the gateway processes (${BUILD_DIR})`);
  const tsc = join(REPO_DIR, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', BUILD_DIR, '--sourceMap', 'false'], { cwd: REPO_DIR, encoding: 'utf8' });
  // Type errors in someone's work in progress do not stop the emit; a missing entry point does.
  if (!existsSync(join(BUILD_DIR, 'src', 'cli.js'))) throw new Error(`build failed: ${r.stdout}${r.stderr}`);
  for (const name of ['package.json', 'migrations', 'node_modules']) symlinkSync(join(REPO_DIR, name), join(BUILD_DIR, name));
}

export interface GatewayProcess {
  readonly pid: number;
  /** ms from spawn to the `gateway ready` log line. */
  readonly readyMs: number;
  readonly apiUrl: string;
  sample(): ProcSample;
  /** The peak RSS so far (MB), which is then reset to the current RSS (lib.ts resetPeakRss). */
  resetPeak(): number;
  /** The DevTools protocol address, when the gateway runs with --inspect (bench/promotion.ts). */
  inspectorUrl(): string | undefined;
  /** SIGTERM, then wait for the exit (the graceful path, which also flushes a --cpu-prof profile). */
  stop(): Promise<number | null>;
  readonly lastLines: string[];
}

export interface StartOptions {
  readonly configFile: string;
  /** `{ DATABASE_URL }` for PostgreSQL or `{ NCPEH_DATA_DIR }` for PGlite. */
  readonly storageEnv: Record<string, string>;
  readonly cpuProfDir?: string;
  /** Node writes /tmp/perf-<pid>.map so that `perf` can name JavaScript functions (perf-profile.ts). */
  readonly perfMap?: boolean;
  readonly timeoutMs?: number;
}

export async function startGatewayProcess(opts: StartOptions): Promise<GatewayProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.storageEnv, NODE_ENV: 'development' };
  if (opts.storageEnv['DATABASE_URL'] === undefined) delete env['DATABASE_URL'];
  // BENCH_GATEWAY_NODE_ARGS: extra node flags for the gateways only (e.g. V8 heap sizing), to compare.
  const extra = (process.env['BENCH_GATEWAY_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  // The flags the image and the sandbox start a gateway with; extra ones come after and win.
  const nodeArgs = [...GATEWAY_NODE_FLAGS, ...extra, ...(opts.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir]), ...(opts.perfMap === true ? PERF_NODE_ARGS : [])];
  const t0 = process.hrtime.bigint();
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--config', opts.configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lastLines: string[] = [];
  let inspectorUrl: string | undefined;
  // BENCH_GATEWAY_LOG_DIR: every line the gateway prints is also kept in DIR/gateway-<pid>.log (e.g. --trace-gc).
  const logDir = process.env['BENCH_GATEWAY_LOG_DIR'];
  const logFile = logDir === undefined ? undefined : join(logDir, `gateway-${String(child.pid)}.log`);
  const keep = (line: string): void => {
    if (logFile !== undefined) appendFileSync(logFile, `${line}\n`);
    lastLines.push(line);
    if (lastLines.length > 40) lastLines.shift();
  };
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<{ ms: number; apiUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway not ready in time:\n${lastLines.join('\n')}`)), opts.timeoutMs ?? 30_000);
    if (child.stdout === null || child.stderr === null) throw new Error('no pipes');
    // Every line is read (and dropped): a full pipe would stall the gateway's logger.
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line);
      if (line.includes('"gateway ready"')) {
        clearTimeout(timer);
        const apiUrl = /"apiUrl":"([^"]+)"/.exec(line)?.[1] ?? '';
        resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, apiUrl });
      }
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      keep(line);
      inspectorUrl ??= /^Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${String(code)}) before ready:\n${lastLines.join('\n')}`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('spawn failed');
  let r: { ms: number; apiUrl: string };
  try {
    r = await ready;
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    pid,
    readyMs: Math.round(r.ms),
    apiUrl: r.apiUrl,
    sample: () => procSample(pid),
    resetPeak: () => resetPeakRss(pid),
    inspectorUrl: () => inspectorUrl,
    lastLines,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}
