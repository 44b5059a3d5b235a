/**
 * Everything a gateway's routes use, wired once from the configuration: the stores on the database,
 * the audit log, the identity verifiers, the national FHIR adapter and the peer client. main.ts and
 * the tests build it the same way.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { createAuditor, type Auditor } from './audit/auditor.js';
import { AuditLog, WitnessRefusedError } from './audit/log.js';
import type { Config } from './config/schema.js';
import { ConsentRepository } from './consent/repository.js';
import { PatientRefs } from './crossborder/patient-refs.js';
import { PeerClient } from './crossborder/peer-client.js';
import { DbReplayStore } from './crossborder/replay-store.js';
import { createIdentityServices, type IdentityServices } from './identity/services.js';
import { NationalFhir } from './national/fhir.js';
import { loadDataKeys } from './outbox/data-keys.js';
import { SubmissionStore } from './outbox/outbox.js';
import type { Db } from './storage/db.js';
import type { Metrics } from './http/metrics.js';
import { KeyedWorkLimiters } from './http/work-limiter.js';
import type { GatewayKeys } from './trust/keys.js';
import { countryEntry, signingKeysFor, type TrustList } from './trust/trust-list.js';

export interface GatewayServices {
  readonly replay: DbReplayStore;
  readonly identity: IdentityServices;
  readonly auditLog: AuditLog;
  readonly audit: Auditor;
  readonly consents: ConsentRepository;
  readonly refs: PatientRefs;
  /** Absent when no national FHIR server is configured: the gateway then only consumes. */
  readonly national: NationalFhir | undefined;
  readonly peers: PeerClient;
  readonly submissions: SubmissionStore;
}

const WitnessedCheckpoint = z
  .object({
    jws: z.string().min(1).max(4096),
    treeSize: z.number().int().nonnegative(),
    fromSize: z.number().int().nonnegative().optional(),
    consistencyProof: z.array(z.string().max(64)).max(64).optional(),
  })
  .strict();

export async function createServices(opts: {
  config: Readonly<Config>;
  db: Db;
  keys: GatewayKeys;
  trust: { require(): TrustList };
  metrics: Metrics;
  logger: Logger;
  now?: () => Date;
}): Promise<GatewayServices> {
  const { config, db } = opts;
  const replay = new DbReplayStore(db);
  const auditLog = new AuditLog(db, { ncpId: config.ncpId, signingKey: opts.keys.signing, ...(opts.now === undefined ? {} : { now: opts.now }) });
  const [cert, key, ca] = await Promise.all([
    readFile(config.peer.tls.clientCertFile),
    readFile(config.peer.tls.clientKeyFile),
    readFile(config.peer.tls.caFile),
  ]);
  const peers = new PeerClient({
    ourNcpId: config.ncpId,
    keys: opts.keys,
    trustList: () => opts.trust.require(),
    tls: { cert, key, ca },
    slots: new KeyedWorkLimiters({
      concurrency: config.capacity.perPeer,
      maxQueuedPerKey: config.capacity.queuePerKey,
      queueTimeoutMs: config.capacity.queueTimeoutMs,
      onChange: (country, running, queued) => {
        opts.metrics.workRunning.set({ pool: 'per-peer', key: country }, running);
        opts.metrics.workQueued.set({ pool: 'per-peer', key: country }, queued);
      },
      onRefused: (_country, reason) => opts.metrics.workRefused.inc({ pool: 'per-peer', reason }),
    }),
    witness: {
      lastSize: (country) => auditLog.lastWitnessedSize(country),
      record: async (country, checkpoint, askedFrom) => {
        const cp = WitnessedCheckpoint.parse(checkpoint);
        const list = opts.trust.require();
        await auditLog.recordWitness(
          country,
          {
            checkpointJws: cp.jws,
            ...(cp.consistencyProof === undefined ? {} : { consistencyProof: cp.consistencyProof }),
            ...(cp.fromSize === undefined ? {} : { fromSize: cp.fromSize }),
            ...(askedFrom === undefined ? {} : { askedFrom }),
          },
          { keys: signingKeysFor(list, country) },
          { expectedNcpId: countryEntry(list, country).ncpId },
        );
      },
      onRefused: (country, error) => {
        const reason = error instanceof WitnessRefusedError ? error.reason : 'invalid';
        opts.metrics.witnessRefusals.inc({ peer: country, reason });
        opts.logger.error({ peer: country, reason, err: error }, 'peer audit checkpoint refused: its log is inconsistent with what we witnessed');
      },
    },
  });
  const server = { id: config.ncpId, network: config.api.publicUrl ?? `${config.api.host}:${config.api.port}` };
  return {
    replay,
    identity: await createIdentityServices(config, replay),
    auditLog,
    audit: createAuditor(auditLog, server, opts.now),
    consents: new ConsentRepository(db),
    refs: new PatientRefs(db),
    national:
      config.nationalFhir === undefined
        ? undefined
        : new NationalFhir({ baseUrl: config.nationalFhir.baseUrl, timeoutMs: config.nationalFhir.timeoutMs, summaryMode: config.nationalFhir.summaryMode }),
    peers,
    submissions: new SubmissionStore(db, await loadDataKeys(config.dataKeys)),
  };
}
