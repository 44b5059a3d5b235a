/**
 * Boot: config -> logger -> keys -> storage -> migrations -> trust list -> app -> listeners, and
 * graceful shutdown. Process concerns (signals, exit codes, timers) live here and nowhere else.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { buildGateway, type Gateway } from './app.js';
import type { Config } from './config/schema.js';
import { PeerClient } from './crossborder/peer-client.js';
import type { Auditor } from './audit/auditor.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import type { Db } from './storage/db.js';
import { migrationsDir, runMigrations } from './storage/migrate.js';
import { verifySignedClaims } from './crossborder/envelope.js';
import { RECEIPT_TYP } from './crossborder/receiver.js';
import { OutboxWorker } from './outbox/outbox.js';
import { contentHash } from './outbox/submission-bundle.js';
import { countryEntry, signingKeysFor } from './trust/trust-list.js';
import { createServices } from './services.js';
import { openConfiguredDb } from './storage/open.js';
import { loadGatewayKeys, type GatewayKeys } from './trust/keys.js';
import { TrustStore } from './trust/trust-store.js';

export interface RunningGateway {
  readonly config: Readonly<Config>;
  readonly gateway: Gateway;
  readonly db: Db;
  readonly logger: Logger;
  readonly trust: TrustStore;
  readonly peerClient: PeerClient;
  readonly apiUrl: string;
  readonly peerUrl: string;
  readonly stop: () => Promise<void>;
}

/** How long in-flight requests get to finish on SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;
/** Expired replay-cache entries are purged this often. */
const REPLAY_PURGE_MS = 60_000;

function urlOf(scheme: 'http' | 'https', address: AddressInfo | string | null): string {
  if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

async function readJsonFile(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

export async function createTrustStore(
  config: Readonly<Config>,
  logger: Logger,
  metrics: Metrics,
  onChanged?: () => void,
  audit?: () => Auditor | undefined,
): Promise<TrustStore> {
  const anchorKeys = await Promise.all(config.trustList.anchorKeyFiles.map(readJsonFile));
  const source = config.trustList.file !== undefined ? { file: config.trustList.file } : { url: config.trustList.url ?? '' };
  return new TrustStore({
    source,
    anchorKeys,
    log: logger.child({ component: 'trust-list' }),
    onRejected: (reason) => {
      metrics.trustListRejections.inc({ rule: reason.rule });
      void audit?.()
        ?.record({ kind: 'trust-list-change', outcome: 'serious', transactionId: randomUUID(), outcomeDesc: `refused: ${reason.rule}` })
        .catch((err: unknown) => logger.warn({ err }, 'could not audit a refused trust list'));
    },
    onChanged: (list) => {
      metrics.trustListSequence.set(list.sequence);
      metrics.trustListNextUpdate.set(Math.floor(Date.parse(list.nextUpdate) / 1000));
      onChanged?.();
      void audit?.()
        ?.record({
          kind: 'trust-list-change',
          outcome: 'success',
          transactionId: randomUUID(),
          entityExtra: [{ what: { display: `trust list sequence ${list.sequence}` }, description: `countries ${Object.keys(list.countries).join(',')}` }],
        })
        .catch((err: unknown) => logger.warn({ err }, 'could not audit a trust list change'));
    },
  });
}

export async function createPeerClient(config: Readonly<Config>, keys: GatewayKeys, trust: TrustStore): Promise<PeerClient> {
  const [cert, key, ca] = await Promise.all([
    readFile(config.peer.tls.clientCertFile),
    readFile(config.peer.tls.clientKeyFile),
    readFile(config.peer.tls.caFile),
  ]);
  return new PeerClient({ ourNcpId: config.ncpId, keys, trustList: () => trust.require(), tls: { cert, key, ca } });
}

/**
 * @param opening the database, when the caller started opening it already (`ncpeh serve` does so
 *   before it loads the gateway's modules, so that a new PGlite directory is copied meanwhile)
 */
export async function startGateway(config: Readonly<Config>, logger: Logger, opening?: Promise<Db>): Promise<RunningGateway> {
  // Milliseconds since the process started (performance.now()), per phase: reported when ready.
  const startup: Record<string, number> = { modulesLoaded: Math.round(performance.now()) };
  const metrics = createMetrics({ country: config.country });
  let peerClient: PeerClient | undefined;
  let auditor: Auditor | undefined;
  let keys: GatewayKeys;
  let trust: TrustStore;
  try {
    keys = await loadGatewayKeys(config.keys);
    trust = await createTrustStore(config, logger, metrics, () => void peerClient?.reset(), () => auditor);
  } catch (e) {
    // A database the caller began to open is closed, not left to the process's end.
    await opening?.then((db) => db.close()).catch(() => undefined);
    throw e;
  }
  const db = await (opening ?? openConfiguredDb(config, (msg, extra) => logger.warn(extra ?? {}, msg)));
  startup['databaseOpen'] = Math.round(performance.now());
  const timers: NodeJS.Timeout[] = [];
  const stoppers: Array<() => void> = [];
  // Built apps, so that a failed start (e.g. the peer port is taken) closes a listener already open
  // instead of leaving a half-started process that never exits.
  let built: Gateway | undefined;
  try {
    const { applied } = await runMigrations(db, migrationsDir(), (msg, extra) => logger.info(extra ?? {}, msg));
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    startup['migrated'] = Math.round(performance.now());
    const services = await createServices({ config, db, keys, trust, metrics, logger });
    peerClient = services.peers;
    auditor = services.audit;
    // A refused list at boot leaves the gateway up but not ready: operators see why in the log and
    // the readiness probe, and the periodic reload picks up a corrected file. Either way it is audited.
    const outcome = await trust.load();
    if (outcome === 'rejected') logger.error('no valid trust list at start; peer traffic is refused until one loads');
    trust.startAutoRefresh(config.trustList.refreshSeconds * 1000);
    const purge = setInterval(() => {
      const now = new Date();
      services.replay.purgeExpired().catch((err: unknown) => logger.warn({ err }, 'replay cache purge failed'));
      services.refs.purgeExpired(now).catch((err: unknown) => logger.warn({ err }, 'patient reference purge failed'));
    }, REPLAY_PURGE_MS);
    purge.unref();
    timers.push(purge);

    const [cert, key, ca] = await Promise.all([
      readFile(config.peer.tls.certFile),
      readFile(config.peer.tls.keyFile),
      readFile(config.peer.tls.caFile),
    ]);
    const checkpoints = services.auditLog.startCheckpointing({
      everyEntries: 100,
      everyMs: 30_000,
      onError: (err) => logger.warn({ err }, 'audit checkpoint failed'),
    });
    stoppers.push(() => checkpoints.stop());
    const worker = new OutboxWorker({
      store: services.submissions,
      peers: services.peers,
      log: logger.child({ component: 'outbox' }),
      onDelivered: async (row) => {
        metrics.deliveries.inc({ peer: row.country });
      },
      onDeadLetter: (row) => metrics.deadLetters.inc({ peer: row.country }),
      verifyReceipt: async (country, receipt, expected) => {
        const list = trust.require();
        const claims = await verifySignedClaims(receipt, { typ: RECEIPT_TYP, trustedKeys: { keys: signingKeysFor(list, country) } });
        if (claims['iss'] !== countryEntry(list, country).ncpId || claims['aud'] !== config.ncpId) throw new Error('receipt issuer or audience');
        if (claims['messageId'] !== expected.messageId || claims['contentHash'] !== contentHash(expected.bundle)) throw new Error('receipt names another message');
      },
      baseDelaySeconds: config.submissions.retry.baseDelaySeconds,
      maxDelaySeconds: config.submissions.retry.maxDelaySeconds,
      breakerThreshold: config.submissions.retry.breakerThreshold,
      breakerOpenMs: config.submissions.retry.breakerOpenSeconds * 1000,
      leaseSeconds: config.submissions.retry.leaseSeconds,
    });
    worker.start();
    stoppers.push(() => void worker.stop());
    const retention = setInterval(() => {
      services.submissions.purgeDelivered(config.submissions.retentionHours).catch((err: unknown) => logger.warn({ err }, 'submission purge failed'));
    }, 15 * 60_000);
    retention.unref();
    timers.push(retention);
    startup['servicesReady'] = Math.round(performance.now());
    const gateway = await buildGateway({ config, db, logger, metrics, keys, trust, services, peerTls: { cert, key, ca }, onQueued: () => worker.kick() });
    built = gateway;
    startup['appsBuilt'] = Math.round(performance.now());
    await gateway.api.listen({ host: config.api.host, port: config.api.port });
    await gateway.peer.listen({
      host: config.peer.host,
      port: config.peer.port,
      listenTextResolver: (address) => `peer listener (mutual TLS) at ${address.replace(/^http:/, 'https:')}`,
    });
    const apiUrl = urlOf('http', gateway.api.server.address());
    const peerUrl = urlOf('https', gateway.peer.server.address());
    startup['listening'] = Math.round(performance.now());
    // The heap limit shows whether the process was started with src/node-flags.ts (1,048 MB) or not.
    const heapLimitMb = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
    logger.info({ apiUrl, peerUrl, storage: db.kind, trustListSequence: trust.current()?.sequence ?? null, startupMs: startup, heapLimitMb }, 'gateway ready');
    const client = peerClient;
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        trust.stop();
        for (const t of timers) clearInterval(t);
        for (const s of stoppers) s();
        // Fastify's close() stops accepting, lets in-flight requests finish, then resolves.
        await Promise.allSettled([gateway.api.close(), gateway.peer.close()]);
        await client.close();
        await services.national?.close();
        await db.close();
      })();
      return stopping;
    };
    return { config, gateway, db, logger, trust, peerClient: client, apiUrl, peerUrl, stop };
  } catch (e) {
    trust.stop();
    for (const t of timers) clearInterval(t);
    for (const s of stoppers) s();
    if (built !== undefined) await Promise.allSettled([built.api.close(), built.peer.close()]);
    await peerClient?.close();
    await db.close().catch(() => undefined);
    throw e;
  }
}

/**
 * `ncpeh serve`: runs until SIGTERM/SIGINT, then shuts down gracefully and exits 0. `opening` as for
 * startGateway.
 */
export async function serve(config: Readonly<Config>, logger: Logger, opening?: Promise<Db>): Promise<void> {
  let running: RunningGateway;
  try {
    running = await startGateway(config, logger, opening);
  } catch (e) {
    logger.fatal({ err: e }, 'gateway failed to start');
    logger.flush();
    process.exitCode = 1;
    return;
  }
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the trust list');
    void running.trust.load();
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown grace period exceeded; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    running
      .stop()
      .then(() => {
        logger.info('stopped');
        // Exit explicitly once the (asynchronous) log is written: a library handle left open must
        // not keep a stopped gateway alive.
        logger.flush(() => process.exit(0));
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exitCode = 1;
      });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
