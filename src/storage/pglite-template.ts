/**
 * New PGlite data directories start as a copy of a template: a closed cluster on which this
 * repository's migrations ran, kept beside the data directories. Creating a cluster the usual way
 * runs PostgreSQL's initdb inside WebAssembly, then every migration: a gateway on a new directory
 * was ready after 3.6-3.9 s with 670-710 MB resident, against 1.1-1.3 s and ~240 MB on an existing
 * one. Copied from the template (~1,000 files, 39 MB), it was ready after 1.4-1.75 s with ~240 MB
 * (bench/README.md, step 6). The first directory in a place pays for building the template.
 *
 * - The template holds only what initdb and the migrations create: it is built as a cluster of its
 *   own, never copied from a gateway's database, so no gateway's data reaches another through it.
 *   It is built in a child process (pglite-template-build.ts): initdb's 700-830 MB of WebAssembly
 *   memory go with that process instead of staying in the gateway's.
 * - Its name carries a hash of what it depends on (PGlite's version, the cluster settings, every
 *   migration file), so a change of any of them builds a new one.
 * - It lives in `<parent of the data directory>/.ncpeh-pglite-templates`, a directory this process
 *   creates with mode 0700 and uses only while it is owned by this user, is not a symbolic link and
 *   is closed to group and others; the template directory itself likewise. The path to it (symbolic
 *   links resolved) must be one nobody else can change: every directory up to / owned by this user
 *   or root, and any that others may write to root's and sticky, as /tmp is. Another local user who
 *   could plant a template, or swap ours between the checks and the copy, could otherwise choose the
 *   database's content, such as consents. What fails these checks is not used: the cluster is
 *   created the usual way.
 * - The copy is made beside the data directory and renamed onto it, so a copy cut short is never
 *   taken for a cluster; left-overs of killed builds and copies, and templates of other migrations
 *   or PGlite versions, go after an hour.
 * - A copied cluster that does not open is moved aside together with its template (renamed
 *   `.unusable-<time>`, nothing deleted) and the cluster is created the usual way.
 * - An existing data directory that belongs to another user is refused, as PostgreSQL refuses one.
 *
 * PGlite is development storage only (storage/open.ts refuses it in production).
 */
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, constants, copyFile, lstat, mkdir, readdir, realpath, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrationsDir, readMigrations } from './migrate.js';
import { createPgliteDb, PGLITE_CONF } from './pglite.js';
import type { ScriptableDb, StorageLog } from './pg.js';

export const TEMPLATE_DIR_NAME = '.ncpeh-pglite-templates';

export interface TemplateOptions {
  /** Where the migrations are read from (the repository's own by default). */
  readonly migrations?: string;
  readonly log?: StorageLog | undefined;
}

function pgliteVersion(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@electric-sql/pglite');
  // .../node_modules/@electric-sql/pglite/dist/index.cjs -> .../@electric-sql/pglite/package.json
  const pkgFile = join(dirname(dirname(entry)), 'package.json');
  const pkg = require(pkgFile) as { name?: string; version?: string };
  if (pkg.name !== '@electric-sql/pglite' || typeof pkg.version !== 'string') throw new Error('cannot tell the PGlite version');
  return pkg.version;
}

/** The template's directory name for this PGlite, these settings and these migrations. */
export async function templateName(migrations: string = migrationsDir()): Promise<string> {
  const h = createHash('sha256');
  h.update(`pglite ${pgliteVersion()}\n${PGLITE_CONF}\n`);
  for (const m of await readMigrations(migrations)) h.update(`${m.file} ${m.checksum}\n`);
  return `cluster-${h.digest('hex').slice(0, 32)}`;
}

/** A directory owned by this user, not a symbolic link, nothing for group or others to write (or read). */
async function isPrivateDir(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (!st.isDirectory()) return false;
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) return false;
    return (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

/**
 * Whether nobody but this user (and root) can change what a path resolves to: the directory and
 * every directory above it are owned by this user or root, and any of them others may write to
 * is root's and sticky (as /tmp is), so that nobody else can rename an entry of ours away and put
 * theirs in its place between our checks and our use of it. `dir` is a resolved path (realpath).
 */
async function isTrustedPath(dir: string): Promise<boolean> {
  const uid = process.getuid?.();
  for (let cur = dir; ; cur = dirname(cur)) {
    const st = await lstat(cur);
    if (!st.isDirectory()) return false;
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) return false;
    if ((st.mode & 0o022) !== 0 && ((st.mode & 0o1000) === 0 || st.uid !== 0)) return false;
    if (dirname(cur) === cur) return true;
  }
}

/**
 * The private template directory beside `realDataDir` (created if missing) when the path to it can
 * be trusted (isTrustedPath); undefined otherwise.
 */
async function templateDir(realDataDir: string): Promise<string | undefined> {
  const parent = dirname(realDataDir);
  const dir = join(parent, TEMPLATE_DIR_NAME);
  try {
    if (!(await isTrustedPath(parent))) return undefined;
    await mkdir(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
  }
  return (await isPrivateDir(dir)) ? dir : undefined;
}

/**
 * Left-overs (each a cluster's size) of a build or restore that was killed, or templates no longer
 * wanted: removed once an hour old, so that nothing another process is still using goes.
 */
async function removeStale(dir: string, prefix: string, wanted: (name: string) => boolean = () => true): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix) || !wanted(name)) continue;
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st !== undefined && now - st.mtimeMs > 3600_000) await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Builds the template: a cluster created in a directory of its own, migrated, closed, then renamed
 * into place (atomic: a half-built template is never under the final name).
 */
async function buildTemplate(dir: string, migrations: string): Promise<void> {
  await removeStale(dirname(dir), '.build-');
  // Templates for other migrations or another PGlite (39 MB each) are not used again here.
  await removeStale(dirname(dir), 'cluster-', (name) => name !== basename(dir) && !name.includes('.unusable-'));
  const tmp = join(dirname(dir), `.build-${randomBytes(6).toString('hex')}`);
  try {
    await buildInChild(tmp, migrations);
    await chmod(tmp, 0o700);
    try {
      await rename(tmp, dir);
    } catch (e) {
      // Another gateway starting beside this one built it first: theirs is as good.
      if (!['ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Runs pglite-template-build (the .ts beside this file under tsx, the .js in a build) in a child
 * process with this process's node flags, so that initdb's memory is the child's.
 */
async function buildInChild(dataDir: string, migrations: string): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const script = join(dirname(self), `pglite-template-build${extname(self)}`);
  const child = fork(script, [dataDir, migrations], { execArgv: loaderFlags(process.execArgv), stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`building the PGlite template failed (exit ${String(code)}): ${stderr.trim().slice(-1000)}`);
}

/**
 * The module-loading flags of this process (e.g. tsx's --import and --require), without the rest
 * (--cpu-prof, --inspect, heap sizes), which are meant for the gateway, not for the build.
 */
export function loaderFlags(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] ?? '';
    const name = arg.split('=', 1)[0] ?? '';
    if (!['--import', '--require', '-r', '--loader', '--experimental-loader'].includes(name)) continue;
    if (arg.includes('=')) out.push(arg);
    else if (i + 1 < execArgv.length) out.push(arg, execArgv[++i] ?? '');
  }
  return out;
}

/** The data directory with symbolic links resolved (its parent's, when it does not exist yet). */
async function resolvedDataDir(dataDir: string): Promise<string> {
  try {
    return await realpath(dataDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await mkdir(dirname(dataDir), { recursive: true });
    return join(await realpath(dirname(dataDir)), basename(dataDir));
  }
}

/**
 * Opens the PGlite cluster in `dataDir`. A directory that is missing or empty gets a new cluster,
 * copied from the template when one can be used (built first if there is none yet); anything else
 * is opened as it is.
 */
export async function openPgliteDataDir(dataDir: string, opts: TemplateOptions = {}): Promise<ScriptableDb> {
  const log = opts.log ?? (() => undefined);
  if (!(await isEmptyOrMissing(dataDir))) {
    // As PostgreSQL itself insists: a cluster someone else put there is not ours to serve from.
    const uid = process.getuid?.();
    const owner = (await lstat(await realpath(dataDir))).uid;
    if (uid !== undefined && owner !== uid) throw new Error(`PGlite data directory ${dataDir} belongs to another user (uid ${owner}); refusing to open it`);
    return createPgliteDb({ dataDir });
  }
  const real = await resolvedDataDir(dataDir);
  const parent = await templateDir(real);
  if (parent === undefined) {
    log('PGlite template directory is not private to this user; creating the cluster without a template', { dir: join(dirname(real), TEMPLATE_DIR_NAME) });
    return createFresh(real);
  }
  const migrations = opts.migrations ?? migrationsDir();
  const template = join(parent, await templateName(migrations));
  if (!(await isPrivateDir(template))) {
    try {
      await rm(template, { recursive: true, force: true });
      await buildTemplate(template, migrations);
    } catch (err) {
      log('PGlite template could not be built; creating the cluster without it', { err });
      return createFresh(real);
    }
  }
  // Copied next to the data directory, then renamed onto it: a copy cut short (a killed process, a
  // full disk) never sits in the data directory, where the next start would take it for a cluster.
  const stem = `.${basename(real)}.restore-`;
  await removeStale(dirname(real), stem);
  const tmp = join(dirname(real), `${stem}${randomBytes(6).toString('hex')}`);
  try {
    // A plain copy of a closed cluster's files: no WebAssembly work, no archive to unpack.
    await copyTree(template, tmp);
    await rename(tmp, real);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (!(await isEmptyOrMissing(real))) return createPgliteDb({ dataDir: real });
    log('PGlite template could not be copied; creating the cluster without it', { err, template });
    return createFresh(real);
  }
  try {
    return await createPgliteDb({ dataDir: real });
  } catch (err) {
    // Nothing is deleted: the copy is moved aside beside the template that gave it.
    const aside = `.unusable-${Date.now()}`;
    log('PGlite cluster copied from the template does not open; both set aside, creating the cluster without it', { err, template });
    await rename(template, `${template}${aside}`).catch(() => undefined);
    await rename(real, join(parent, `${basename(real)}${aside}`));
    return createFresh(real);
  }
}

/**
 * Copies a directory tree of plain files and directories (a closed cluster) into `dst`, which must
 * not exist; files are copied many at a time (fs.cp, one at a time, took three times as long
 * for a cluster's ~1,000 files). Anything else than a file or a directory fails the copy.
 */
async function copyTree(src: string, dst: string): Promise<void> {
  const entries = await readdir(src, { withFileTypes: true, recursive: true });
  await mkdir(dst, { mode: 0o700 });
  const files: string[] = [];
  const dirs: string[] = [];
  for (const e of entries) {
    const rel = relative(src, join(e.parentPath, e.name));
    if (e.isDirectory()) dirs.push(rel);
    else if (e.isFile()) files.push(rel);
    else throw new Error(`template holds something other than files and directories: ${rel}`);
  }
  // Parents sort before their children.
  for (const d of dirs.sort()) await mkdir(join(dst, d), { mode: 0o700 });
  for (let i = 0; i < files.length; i += 64) {
    await Promise.all(files.slice(i, i + 64).map((f) => copyFile(join(src, f), join(dst, f), constants.COPYFILE_EXCL)));
  }
}

async function createFresh(dataDir: string): Promise<ScriptableDb> {
  await mkdir(dataDir, { recursive: true });
  return createPgliteDb({ dataDir });
}
