/**
 * Reading V8 CPU profiles (`node --cpu-prof` files of the gateway processes, or an in-process
 * profile through node:inspector) into self-time tables: by function, and by who owns the code
 * (our src/, a named npm package, node's internals, GC).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { round } from './lib.js';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface HotSpot {
  readonly what: string;
  readonly owner: string;
  readonly selfMs: number;
  readonly pct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  /** Excludes (idle): the share of busy time. */
  readonly busyMs: number;
  readonly byOwner: HotSpot[];
  /** Self time grouped by what the machine was doing, whoever's code asked for it. */
  readonly byKind: HotSpot[];
  readonly topFunctions: HotSpot[];
}

const KINDS: ReadonlyArray<[string, RegExp]> = [
  ['socket/pipe writes (syscalls)', /^(writev|writeLatin1String|writeUtf8String|writeString|writeBuffer|writeAsciiString|writeUcs2String)$/],
  ['OpenSSL (sign/verify/ECDH/keygen/ciphers/X509)', /^(sign|verify|dhComputeSecret|computeSecret|generateKeyPairSync|X509Certificate|update|final|getKeyObjectHandleFromJwk|createPublicKey|createPrivateKey|publicEncrypt|privateDecrypt|digest)$/],
  ['JSON parse/stringify', /^(parse|stringify|JSONParse|JSONStringify)$/],
  ['garbage collection', /^\(garbage collector\)$/],
  ['module loading (start-up)', /^(wrapSafe|compileSourceTextModule|compileFunction|compileForInternalLoader|openFileHandle|lstat|readFileUtf8|internalModuleStat)$/],
];

export function ownerOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1] !== undefined) return nm[1];
  if (url.startsWith('node:')) return 'node internals';
  if (/\/(src)\//.test(url)) return 'ncpeh src';
  if (/\/sandbox\//.test(url)) return 'ncpeh sandbox';
  if (/\/bench\//.test(url)) return 'bench harness';
  return url;
}

function shortUrl(url: string): string {
  const nm = /node_modules\/(.*)$/.exec(url);
  if (nm?.[1] !== undefined) return nm[1];
  const ours = /\/((?:src|sandbox|bench)\/.*)$/.exec(url);
  return ours?.[1] ?? url.replace(/^node:/, 'node:');
}

export function summarise(profile: CpuProfile, file: string, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i] ?? 0)));
  const fn = new Map<string, { owner: string; us: number }>();
  const owner = new Map<string, number>();
  const kind = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const o = ownerOf(url, functionName);
    owner.set(o, (owner.get(o) ?? 0) + us);
    const k = KINDS.find(([, re]) => re.test(functionName))?.[0] ?? 'other JavaScript';
    kind.set(k, (kind.get(k) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`}`.trim();
    const prev = fn.get(key) ?? { owner: o, us: 0 };
    prev.us += us;
    fn.set(key, prev);
  }
  const busy = total - idle;
  const pct = (us: number): number => round((100 * us) / Math.max(1, busy));
  return {
    file,
    totalMs: round(total / 1000),
    busyMs: round(busy / 1000),
    byOwner: [...owner.entries()].sort((a, b) => b[1] - a[1]).map(([o, us]) => ({ what: o, owner: o, selfMs: round(us / 1000), pct: pct(us) })),
    byKind: [...kind.entries()].sort((a, b) => b[1] - a[1]).map(([k, us]) => ({ what: k, owner: '', selfMs: round(us / 1000), pct: pct(us) })),
    topFunctions: [...fn.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([what, v]) => ({ what, owner: v.owner, selfMs: round(v.us / 1000), pct: pct(v.us) })),
  };
}

/** Every .cpuprofile in `dir` whose name was not seen before. */
export async function summariseDir(dir: string, skip: ReadonlySet<string>): Promise<ProfileSummary[]> {
  const out: ProfileSummary[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.cpuprofile') && !skip.has(n)).sort()) {
    out.push(summarise(JSON.parse(await readFile(join(dir, name), 'utf8')) as CpuProfile, name));
  }
  return out;
}

/** Profiles `work` in this process (sampling every 100 µs) and keeps the profile file. */
export async function profileInProcess(file: string, work: () => Promise<void>): Promise<ProfileSummary> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    await work();
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    await writeFile(file, JSON.stringify(profile));
    return summarise(profile, file.split('/').pop() ?? file);
  } finally {
    session.disconnect();
  }
}
