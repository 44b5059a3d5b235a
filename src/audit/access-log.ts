/**
 * The citizen's access log (`GET /api/v1/me/access-log` and the portal page): every AuditEvent about
 * the patient, each with an RFC 9162 inclusion proof against one signed checkpoint, verified from the
 * published data alone (leaf hash, audit path, root) before it is called "verified".
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { describeAuditEvent, type AuditSummary } from './balp.js';
import type { AuditLog, Checkpoint, InclusionProof } from './log.js';
import { verifyInclusion } from './merkle.js';

export interface AccessLogEntry {
  readonly seq: number;
  readonly recordedAt: Date;
  readonly summary: AuditSummary | undefined;
  readonly verified: boolean;
  readonly proof: InclusionProof;
  /** The AuditEvent as stored (id = seq). */
  readonly event: Record<string, unknown>;
}

export interface AccessLogView {
  readonly checkpoint: Checkpoint | undefined;
  /** Newest first. */
  readonly entries: readonly AccessLogEntry[];
}

function isAuditEvent(value: Record<string, unknown>): value is Record<string, unknown> & AuditEvent {
  return value['resourceType'] === 'AuditEvent';
}

/** The latest checkpoint if it covers entry `seq`, else a fresh one. */
async function checkpointCovering(log: AuditLog, seq: number): Promise<Checkpoint> {
  const latest = await log.latestCheckpoint();
  if (latest !== undefined && latest.treeSize > seq) return latest;
  return log.checkpoint();
}

export async function accessLogFor(log: AuditLog, patientKey: string): Promise<AccessLogView> {
  const events = await log.eventsForPatient(patientKey);
  const last = events[events.length - 1];
  if (last === undefined) return { checkpoint: undefined, entries: [] };
  const checkpoint = await checkpointCovering(log, last.seq);
  const entries = await Promise.all(
    events.map(async (e) => {
      const p = await log.inclusionProofFor(e.seq, checkpoint.treeSize);
      const verified = p.rootHash.equals(checkpoint.rootHash) && verifyInclusion(p.seq, p.treeSize, p.leafHash, p.proof, checkpoint.rootHash);
      return { seq: e.seq, recordedAt: e.recordedAt, summary: isAuditEvent(e.event) ? describeAuditEvent(e.event) : undefined, verified, proof: p, event: e.event };
    }),
  );
  return { checkpoint, entries: entries.reverse() };
}
