/**
 * The audit port the flows use: build a BALP AuditEvent and append it to the tamper-evident log.
 * Appends are awaited before anything is disclosed; a failure is `audit.unavailable` (fail closed).
 */
import { GatewayError } from '../http/errors.js';
import { buildAuditEvent, type AuditEventInput } from './balp.js';
import type { AuditLog } from './log.js';

export interface Auditor {
  record(input: Omit<AuditEventInput, 'server' | 'recorded'> & { recorded?: Date }, opts?: { patientKey?: string | undefined }): Promise<void>;
}

export function createAuditor(log: AuditLog, server: { id: string; network: string }, now: () => Date = () => new Date()): Auditor {
  return {
    async record(input, opts = {}) {
      let event;
      try {
        event = buildAuditEvent({ ...input, server, recorded: input.recorded ?? now() });
      } catch (cause) {
        throw new GatewayError('audit.unavailable', 'audit event could not be built', { cause });
      }
      await log.append({ ...event }, { patientKey: opts.patientKey });
    },
  };
}
