/**
 * The one error handler. Whatever is thrown below a route ends here and leaves as a FHIR
 * OperationOutcome with a stable code; unknown errors leave as a generic 500 that names only the
 * correlation id, so no stack trace or internal message ever reaches a caller.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CATALOGUE, GatewayError, type ErrorCode } from './errors.js';
import { operationOutcome } from './outcome.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Fastify's own error codes that are the caller's fault, mapped onto the catalogue. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request.too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'request.unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'request.invalid',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request.malformed-json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'request.malformed-json',
  FST_ERR_BAD_URL: 'request.invalid',
  FST_ERR_ASYNC_CONSTRAINT: 'request.invalid',
};

const CLIENT_STATUS_CODES: Readonly<Record<number, ErrorCode>> = {
  404: 'request.not-found',
  405: 'request.method-not-allowed',
  408: 'request.timeout',
  413: 'request.too-large',
  415: 'request.unsupported-media-type',
  429: 'request.rate-limited',
};

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

function validationExpressions(error: FastifyError): string[] {
  const context = error.validationContext ?? 'request';
  const issues: readonly ValidationIssue[] = error.validation ?? [];
  return issues.map((v) => {
    const path = (v.instancePath ?? '').split('/').filter((p) => p.length > 0);
    return [context, ...path].join('.');
  });
}

function validationDiagnostics(error: FastifyError): string {
  const issues: readonly ValidationIssue[] = error.validation ?? [];
  const exprs = validationExpressions(error);
  return issues.map((v, i) => `${exprs[i] ?? ''}: ${v.message ?? 'invalid'}`).join('; ');
}

/** Translates anything thrown into a GatewayError plus whether it was expected. */
export function toGatewayError(error: unknown): { gatewayError: GatewayError; expected: boolean } {
  if (error instanceof GatewayError) return { gatewayError: error, expected: error.status < 500 };
  if (typeof error === 'object' && error !== null) {
    const fe = error as FastifyError;
    if (Array.isArray(fe.validation)) {
      return {
        gatewayError: new GatewayError('request.invalid', validationDiagnostics(fe), { expression: validationExpressions(fe) }),
        expected: true,
      };
    }
    const mapped = typeof fe.code === 'string' ? FASTIFY_CODES[fe.code] : undefined;
    if (mapped !== undefined) return { gatewayError: new GatewayError(mapped), expected: true };
    // Errors from the Node HTTP layer or plugins that carry a client-error status (e.g. 400 on a
    // malformed request line) stay client errors, without their internal message.
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return { gatewayError: new GatewayError(CLIENT_STATUS_CODES[fe.statusCode] ?? 'request.invalid'), expected: true };
    }
  }
  return { gatewayError: new GatewayError('internal.error', undefined, { cause: error }), expected: false };
}

export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const { gatewayError, expected } = toGatewayError(error);
  const spec = ERROR_CATALOGUE[gatewayError.code];
  if (expected) {
    request.log.info({ code: gatewayError.code }, 'request refused');
  } else {
    // The full error, with stack, goes to the log only; the caller gets the correlation id.
    request.log.error({ err: error, code: gatewayError.code }, 'request failed');
  }
  if (gatewayError.retryAfter !== undefined) void reply.header('retry-after', String(gatewayError.retryAfter));
  const body = operationOutcome(gatewayError.code, {
    diagnostics: spec.exposeDetail ? gatewayError.detail : undefined,
    expression: gatewayError.expression,
    correlationId: request.id,
  });
  return reply.code(spec.status).header('content-type', FHIR_JSON).send(body);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new GatewayError('request.not-found')));
}
