import type { FastifyPluginAsync } from 'fastify';
import type { GatewayKeys } from './keys.js';

/** `GET /.well-known/jwks.json`: our public signing and encryption keys (both listeners). */
export const jwksRoutes: FastifyPluginAsync<{ keys: GatewayKeys }> = async (app, opts) => {
  const body = JSON.stringify({ keys: opts.keys.jwks.keys });
  app.get('/.well-known/jwks.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('content-type', 'application/jwk-set+json').header('cache-control', 'public, max-age=300').send(body),
  );
};
