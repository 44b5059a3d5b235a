import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../http/metrics.js';

export interface ReadinessCheck {
  readonly name: string;
  /** Resolves when the dependency is usable; throws otherwise. */
  check(): Promise<void>;
}

const CheckResult = z.enum(['ok', 'failed']);
const ReadyBody = z.object({ status: z.enum(['ready', 'not-ready']), checks: z.record(z.string(), CheckResult) });

/** Bounds each check so one hung dependency cannot hang the probe itself. */
const CHECK_TIMEOUT_MS = 2000;

async function runCheck(c: ReadinessCheck): Promise<'ok' | 'failed'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${c.name} readiness timed out`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([c.check(), timeout]);
    return 'ok';
  } catch {
    return 'failed';
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes: FastifyPluginAsyncZod<{ checks: readonly ReadinessCheck[]; metrics: Metrics }> = async (app, opts) => {
  app.get(
    '/health/live',
    { schema: { hide: true, response: { 200: z.object({ status: z.literal('live') }) } } },
    async () => ({ status: 'live' as const }),
  );

  app.get('/health/ready', { schema: { hide: true, response: { 200: ReadyBody, 503: ReadyBody } } }, async (request, reply) => {
    const results = await Promise.all(opts.checks.map(async (c) => [c.name, await runCheck(c)] as const));
    const checks = Object.fromEntries(results);
    const ready = results.every(([, r]) => r === 'ok');
    if (!ready) request.log.warn({ checks }, 'not ready');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks });
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const text = await opts.metrics.registry.metrics();
    return reply.header('content-type', opts.metrics.registry.contentType).send(text);
  });
};
