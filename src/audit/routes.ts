/**
 * Audit routes. Citizens: `GET /api/v1/me/access-log` (who accessed my data, each entry with an
 * inclusion proof against a signed checkpoint, RFC 9162 section 2.1.3). Operators:
 * `GET /api/v1/audit/proof` (inclusion and consistency proofs by number). Peers:
 * `GET /ncp/v1/audit/checkpoint` (our latest signed checkpoint, with a consistency proof from the
 * size the peer last witnessed).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { requireCitizen, type GuardOptions } from '../identity/guards.js';
import { accessLogFor } from './access-log.js';
import type { AuditLog } from './log.js';

const b64 = (b: Buffer): string => b.toString('base64');

const ProofView = z.object({ leafIndex: z.number(), treeSize: z.number(), leafHash: z.string(), auditPath: z.array(z.string()), rootHash: z.string() });

export const accessLogRoutes: FastifyPluginAsyncZod<{ guard: GuardOptions; log: AuditLog; ourNcpId: string }> = async (app, opts) => {
  app.get(
    '/api/v1/me/access-log',
    {
      schema: {
        summary: 'Who accessed my data: readable entries, each with an inclusion proof against a signed checkpoint',
        tags: ['audit'],
        response: {
          200: z.object({
            checkpoint: z.object({ treeSize: z.number(), rootHash: z.string(), signedAt: z.string(), jws: z.string(), signedBy: z.string() }).nullable(),
            entries: z.array(
              z.object({
                seq: z.number(),
                recordedAt: z.string(),
                who: z.string(),
                role: z.string().nullable(),
                organization: z.string().nullable(),
                country: z.string().nullable(),
                what: z.string(),
                why: z.array(z.string()),
                outcome: z.string(),
                verified: z.boolean(),
                proof: ProofView,
                event: z.record(z.string(), z.unknown()),
              }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const session = await requireCitizen(request, opts.guard);
      const { checkpoint, entries } = await accessLogFor(opts.log, session.patientKey);
      if (checkpoint === undefined) return { checkpoint: null, entries: [] };
      return {
        checkpoint: { treeSize: checkpoint.treeSize, rootHash: b64(checkpoint.rootHash), signedAt: checkpoint.signedAt.toISOString(), jws: checkpoint.jws, signedBy: opts.ourNcpId },
        entries: entries.map((e) => ({
          seq: e.seq,
          recordedAt: e.recordedAt.toISOString(),
          who: e.summary?.who ?? 'unknown',
          role: e.summary?.role ?? null,
          organization: e.summary?.organization ?? null,
          country: e.summary?.country ?? null,
          what: e.summary?.what ?? 'unknown',
          why: e.summary?.why ?? [],
          outcome: e.summary?.outcome ?? 'unknown',
          verified: e.verified,
          proof: { leafIndex: e.proof.seq, treeSize: e.proof.treeSize, leafHash: b64(e.proof.leafHash), auditPath: e.proof.proof.map(b64), rootHash: b64(e.proof.rootHash) },
          event: e.event,
        })),
      };
    },
  );

  app.get(
    '/api/v1/audit/proof',
    {
      schema: {
        summary: 'Inclusion proof of entry `seq` in the tree of size `treeSize`, or consistency proof between sizes `from` and `to`',
        tags: ['audit'],
        querystring: z
          .object({
            seq: z.coerce.number().int().nonnegative().optional(),
            treeSize: z.coerce.number().int().positive().optional(),
            from: z.coerce.number().int().nonnegative().optional(),
            to: z.coerce.number().int().positive().optional(),
          })
          .strict(),
      },
    },
    async (request) => {
      const q = request.query;
      if (q.seq !== undefined) {
        const size = q.treeSize ?? (await opts.log.latestCheckpoint())?.treeSize;
        if (size === undefined) throw new GatewayError('audit.proof-unavailable');
        const p = await opts.log.inclusionProofFor(q.seq, size);
        return { leafIndex: p.seq, treeSize: p.treeSize, leafHash: b64(p.leafHash), auditPath: p.proof.map(b64), rootHash: b64(p.rootHash) };
      }
      if (q.from !== undefined && q.to !== undefined) {
        return { from: q.from, to: q.to, consistencyProof: (await opts.log.consistencyProof(q.from, q.to)).map(b64) };
      }
      throw new GatewayError('request.invalid', 'give seq (and treeSize), or from and to', { expression: ['query'] });
    },
  );
};

/** What a peer receives: our latest checkpoint and, if it tells us what it saw, the proof since. */
export async function checkpointForPeer(log: AuditLog, fromSize: number | undefined): Promise<{ jws: string; treeSize: number; fromSize?: number; consistencyProof?: string[] } | undefined> {
  let checkpoint = await log.latestCheckpoint();
  if (checkpoint === undefined) {
    if ((await log.size()) === 0) return undefined;
    checkpoint = await log.checkpoint();
  }
  if (fromSize === undefined || fromSize === 0 || fromSize > checkpoint.treeSize) return { jws: checkpoint.jws, treeSize: checkpoint.treeSize };
  return { jws: checkpoint.jws, treeSize: checkpoint.treeSize, fromSize, consistencyProof: (await log.consistencyProofTo(checkpoint, fromSize)).map(b64) };
}
