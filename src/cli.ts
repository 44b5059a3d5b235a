#!/usr/bin/env node
/**
 * The `ncpeh` command. Subcommands: serve, migrate, pki init (more arrive with their issues).
 * Arguments are parsed with node:util parseArgs in strict mode: unknown flags are errors.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
// Only what every command needs is imported up front; the rest per command (below), so that
// `serve` can start opening its database while the gateway's own modules load.
import { ConfigError, configPathFrom, loadConfig } from './config/load.js';
import { createLogger } from './http/logger.js';
import { openConfiguredDb } from './storage/open.js';
import type * as Main from './main.js';

const USAGE = `Usage: ncpeh <command> [options]

Commands:
  serve   --config FILE            start the gateway (both listeners) until SIGTERM/SIGINT
  migrate --config FILE            apply pending database migrations and exit
  pki init --out DIR --countries DK,ES [--valid-days N]
                                   generate a development PKI (CA, TLS certificates, JWKs)
  trust-list sign --in FILE --key ANCHOR_JWK --out FILE
                                   validate and sign a trust list with the trust-anchor key
  trust-list show --file FILE --anchor ANCHOR_PUB_JWK [--anchor ...]
                                   verify a signed trust list and print its content
  peer ping --config FILE --country CC
                                   call a peer gateway's ping over mutual TLS with signed envelopes
  audit verify --config FILE       recompute the audit Merkle tree from the database and check every
                                   checkpoint and witness record; exit 1 naming the first problem
  audit export --config FILE [--since SEQ] [--until SEQ]
                                   AuditEvents as NDJSON on standard output
  audit export --config FILE --syslog HOST:PORT --syslog-ca FILE [--since SEQ]
                                   AuditEvents as RFC 5424 syslog over TLS (RFC 5425) to a SIEM;
                                   prints the last sequence number sent (the next --since)

The config file may also be given with NCPEH_CONFIG. DATABASE_URL selects PostgreSQL.`;

class UsageError extends Error {}

function requireConfig(values: { config?: string | undefined }): string {
  const path = configPathFrom(values.config);
  if (path === undefined) throw new UsageError('--config FILE (or NCPEH_CONFIG) is required');
  return path;
}

async function cmdServe(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const config = loadConfig(requireConfig(values));
  const logger = createLogger({ level: config.log.level, country: config.country });
  // Opened while the gateway's modules load (about a third of a second): a new PGlite directory is
  // copied from its template on libuv's threads meanwhile, and PGlite's WebAssembly compiles on V8's.
  const opening = openConfiguredDb(config, (msg, extra) => logger.warn(extra ?? {}, msg));
  // Handled by startGateway, which awaits it; this only keeps a failure from counting as unhandled
  // while the import below runs.
  opening.catch(() => undefined);
  let serve: typeof Main.serve;
  try {
    ({ serve } = await import('./main.js'));
  } catch (e) {
    await opening.then((db) => db.close()).catch(() => undefined);
    throw e;
  }
  await serve(config, logger, opening);
}

async function cmdMigrate(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const config = loadConfig(requireConfig(values));
  const { migrationsDir, runMigrations } = await import('./storage/migrate.js');
  const db = await openConfiguredDb(config);
  try {
    const result = await runMigrations(db, migrationsDir(), (msg) => console.log(msg));
    console.log(`applied ${result.applied.length} migration(s); ${result.alreadyApplied} already applied`);
  } finally {
    await db.close();
  }
}

async function cmdPki(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'init') throw new UsageError(`unknown pki command "${sub ?? ''}"`);
  const { values } = parseArgs({
    args: rest,
    options: { out: { type: 'string' }, countries: { type: 'string' }, 'valid-days': { type: 'string' } },
    strict: true,
  });
  if (values.out === undefined || values.countries === undefined) throw new UsageError('pki init needs --out DIR and --countries CC,CC');
  const countries = values.countries.split(',').map((c) => c.trim().toUpperCase());
  const validDays = values['valid-days'] === undefined ? undefined : Number(values['valid-days']);
  if (validDays !== undefined && (!Number.isInteger(validDays) || validDays < 1)) throw new UsageError('--valid-days must be a positive whole number');
  const { initPki } = await import('./trust/pki.js');
  const layout = await initPki({ outDir: values.out, countries, ...(validDays === undefined ? {} : { validDays }) });
  console.log(JSON.stringify(layout, null, 2));
}

async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

async function cmdTrustList(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'sign') {
    const { values } = parseArgs({ args: rest, options: { in: { type: 'string' }, key: { type: 'string' }, out: { type: 'string' } }, strict: true });
    if (values.in === undefined || values.key === undefined || values.out === undefined) {
      throw new UsageError('trust-list sign needs --in FILE --key ANCHOR_JWK --out FILE');
    }
    const { signTrustList } = await import('./trust/trust-list.js');
    const jws = await signTrustList(await readJson(values.in), await readJson(values.key));
    await writeFile(values.out, jws);
    console.log(`signed ${values.in} -> ${values.out}`);
    return;
  }
  if (sub === 'show') {
    const { values } = parseArgs({ args: rest, options: { file: { type: 'string' }, anchor: { type: 'string', multiple: true } }, strict: true });
    if (values.file === undefined || values.anchor === undefined) throw new UsageError('trust-list show needs --file FILE --anchor ANCHOR_PUB_JWK');
    const anchorKeys = await Promise.all(values.anchor.map(readJson));
    const { parseAnchorKeys, verifyTrustList } = await import('./trust/trust-list.js');
    const { list } = await verifyTrustList((await readFile(values.file, 'utf8')).trim(), { anchorKeys: parseAnchorKeys(anchorKeys), now: new Date() });
    console.log(JSON.stringify(list, null, 2));
    return;
  }
  throw new UsageError(`unknown trust-list command "${sub ?? ''}"`);
}

async function cmdPeer(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'ping') throw new UsageError(`unknown peer command "${sub ?? ''}"`);
  const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, country: { type: 'string' } }, strict: true });
  if (values.country === undefined) throw new UsageError('peer ping needs --country CC');
  const config = loadConfig(requireConfig(values));
  const [{ createPeerClient, createTrustStore }, { createMetrics }, { loadGatewayKeys }, { z }] = await Promise.all([
    import('./main.js'),
    import('./http/metrics.js'),
    import('./trust/keys.js'),
    import('zod'),
  ]);
  const logger = createLogger({ level: 'warn', country: config.country });
  const trust = await createTrustStore(config, logger, createMetrics({ country: config.country, defaultMetrics: false }));
  if ((await trust.load()) === 'rejected') throw new Error('the configured trust list was refused; see the log above');
  const client = await createPeerClient(config, await loadGatewayKeys(config.keys), trust);
  const started = process.hrtime.bigint();
  try {
    const nonce = crypto.randomUUID();
    const answer = await client.call(
      values.country.toUpperCase(),
      '/ncp/v1/ping',
      { nonce },
      z.object({ pong: z.literal(true), from: z.string(), nonce: z.string().nullable() }),
    );
    if (answer.payload.nonce !== nonce) throw new Error('the peer echoed another nonce');
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`${values.country.toUpperCase()} answered (sealed, signed, pinned) in ${ms.toFixed(1)} ms; it saw us as ${answer.payload.from}`);
  } finally {
    await client.close();
  }
}

function seqOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`${name} must be a whole number`);
  return Number(value);
}

async function cmdAuditExport(rest: string[]): Promise<void> {
  const { values } = parseArgs({
    args: rest,
    options: {
      config: { type: 'string', short: 'c' },
      since: { type: 'string' },
      until: { type: 'string' },
      syslog: { type: 'string' },
      'syslog-ca': { type: 'string' },
      'syslog-cert': { type: 'string' },
      'syslog-key': { type: 'string' },
    },
    strict: true,
  });
  const config = loadConfig(requireConfig(values));
  const since = seqOption(values.since, '--since');
  const until = seqOption(values.until, '--until');
  const { exportNdjson, exportToSyslog, SyslogTlsExporter } = await import('./audit/export.js');
  const db = await openConfiguredDb(config);
  try {
    if (values.syslog === undefined) {
      const count = await exportNdjson(db, process.stdout, { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) });
      console.error(`exported ${count} audit entries`);
      return;
    }
    const target = /^([^:\s]+):(\d{1,5})$/.exec(values.syslog);
    if (target?.[1] === undefined || target[2] === undefined) throw new UsageError('--syslog must be HOST:PORT');
    if (values['syslog-ca'] === undefined) throw new UsageError('--syslog needs --syslog-ca FILE (the collector is verified, never trusted blindly)');
    const exporter = new SyslogTlsExporter({
      host: target[1],
      port: Number(target[2]),
      ca: await readFile(values['syslog-ca']),
      ...(values['syslog-cert'] === undefined ? {} : { cert: await readFile(values['syslog-cert']) }),
      ...(values['syslog-key'] === undefined ? {} : { key: await readFile(values['syslog-key']) }),
      hostname: config.ncpId.replace(/[^\x21-\x7e]/g, '').slice(0, 255),
    });
    try {
      const last = await exportToSyslog(db, exporter, since === undefined ? {} : { since });
      console.log(last === undefined ? 'nothing to send' : String(last));
    } finally {
      await exporter.close();
    }
  } finally {
    await db.close();
  }
}

async function cmdAudit(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'export') return cmdAuditExport(rest);
  if (sub !== 'verify') throw new UsageError(`unknown audit command "${sub ?? ''}"`);
  const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } }, strict: true });
  const config = loadConfig(requireConfig(values));
  const [{ createTrustStore }, { createMetrics }, { loadGatewayKeys }, { signingKeysFor }, { verifyAuditLog }] = await Promise.all([
    import('./main.js'),
    import('./http/metrics.js'),
    import('./trust/keys.js'),
    import('./trust/trust-list.js'),
    import('./audit/verify.js'),
  ]);
  const keys = await loadGatewayKeys(config.keys);
  const logger = createLogger({ level: 'warn', country: config.country });
  const trust = await createTrustStore(config, logger, createMetrics({ country: config.country, defaultMetrics: false }));
  await trust.load();
  const list = trust.current();
  const peerKeys = list === undefined ? {} : Object.fromEntries(Object.keys(list.countries).map((cc) => [cc, { keys: signingKeysFor(list, cc) }]));
  const db = await openConfiguredDb(config);
  try {
    const result = await verifyAuditLog(db, { signingKeys: { keys: keys.jwks.keys }, peerKeys });
    if (!result.ok) {
      console.error(`audit log INCONSISTENT: ${result.problem}`);
      process.exitCode = 1;
      return;
    }
    console.log(`audit log consistent: ${result.size} entries, ${result.checkpoints} checkpoints, ${result.witnesses} witness records verified`);
  } finally {
    await db.close();
  }
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  audit: cmdAudit,
  serve: cmdServe,
  migrate: cmdMigrate,
  pki: cmdPki,
  'trust-list': cmdTrustList,
  peer: cmdPeer,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    console.error(`ncpeh: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  try {
    await run(args);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 78; // EX_CONFIG (sysexits.h)
    }
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ncpeh: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    const code = e instanceof Error && 'code' in e && typeof e.code === 'string' ? ` [${e.code}]` : '';
    console.error(`ncpeh: ${e instanceof Error ? e.message : String(e)}${code}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// `serve` keeps running on its listeners; every other command ends here.
if (code !== 0) process.exit(code);
