/**
 * The whole configuration of one gateway (one country), as one zod schema. Parsed once at boot
 * (src/config/load.ts) into a frozen object; nothing else reads files or the environment for settings.
 * docs/configuration.md is generated from the `.describe()` texts here.
 */
import { z } from 'zod';
import { CAPACITY_DEFAULTS } from '../http/work-limiter.js';

const countryCode = z
  .string()
  .regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code in upper case, e.g. "DK"')
  .describe('ISO 3166-1 alpha-2 country code');

const port = z.number().int().min(0).max(65535);
const filePath = z.string().min(1);

const listener = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('Address to bind'),
    port: port.describe('TCP port (0 = any free port)'),
  })
  .strict();

export const ConfigSchema = z
  .object({
    sandbox: z
      .boolean()
      .default(false)
      .describe('Marks a development configuration (sandbox keys); refused when NODE_ENV=production'),
    country: countryCode.describe('The country this gateway serves (data provider for its own patients)'),
    ncpId: z
      .string()
      .regex(/^urn:[a-z0-9][a-z0-9-]{0,31}:\S+$/i, 'must be a URN, e.g. "urn:ncpeh:ncp:DK"')
      .describe('This NCP\'s identifier: the `iss` of what it signs and the `aud` peers address'),
    api: listener
      .extend({
        bodyLimitBytes: z.number().int().positive().max(16 * 1024 * 1024).default(1024 * 1024),
        publicUrl: z.url().optional().describe('Externally visible base URL of the API listener'),
      })
      .strict()
      .describe('Hospital/citizen API listener (/api/v1, /health, /metrics)'),
    peer: listener
      .extend({
        bodyLimitBytes: z.number().int().positive().max(16 * 1024 * 1024).default(4 * 1024 * 1024),
        tls: z
          .object({
            certFile: filePath.describe('PEM server certificate presented to peers'),
            keyFile: filePath.describe('PEM private key of the server certificate'),
            clientCertFile: filePath.describe('PEM client certificate this gateway presents when calling peers'),
            clientKeyFile: filePath.describe('PEM private key of the client certificate'),
            caFile: filePath.describe('PEM trust-anchor CA certificate(s) peers chain to'),
          })
          .strict()
          .describe('Mutual TLS material for the peer listener and the peer client'),
        refusedHandshakeAuditSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(60)
          .describe(
            'Refused TLS handshakes (anyone can cause them): the first from each source is audited at once, the rest of this window as one record with their count (the metric counts each)',
          ),
      })
      .strict()
      .describe('Peer gateway API listener (/ncp/v1), mutual TLS only'),
    database: z
      .object({
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection string')
          .optional()
          .describe('PostgreSQL connection string; when absent, embedded PGlite is used (development only)'),
        dataDir: z
          .string()
          .min(1)
          .default('memory://')
          .describe('PGlite data directory when no url is given; "memory://" keeps data in memory'),
        poolMax: z.number().int().min(1).max(200).default(10).describe('pg pool size'),
        statementTimeoutMs: z
          .number()
          .int()
          .min(0)
          .max(600_000)
          .default(15_000)
          .describe(
            'PostgreSQL statement_timeout for every connection of the pool (0: none): a statement stuck on a lock fails, and its request with it, instead of holding a connection and its caller; migrations are exempt',
          ),
      })
      .strict()
      .prefault({}),
    keys: z
      .object({
        signingKeyFile: filePath.describe('Private ES256 JWK this gateway signs with'),
        encryptionKeyFiles: z
          .array(filePath)
          .min(1)
          .describe('Private encryption JWKs; several during rotation, the first is current'),
      })
      .strict(),
    trustList: z
      .object({
        file: filePath.optional().describe('Path of the signed trust list (compact JWS)'),
        url: z.url({ protocol: /^https$/ }).optional().describe('HTTPS URL of the signed trust list'),
        anchorKeyFiles: z.array(filePath).min(1).describe('Public JWK(s) of the trust anchor that signs the list'),
        refreshSeconds: z.number().int().min(10).max(86400).default(300),
      })
      .strict()
      .refine((t) => (t.file === undefined) !== (t.url === undefined), {
        message: 'exactly one of "file" or "url" must be given',
      }),
    nationalFhir: z
      .object({
        baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the national FHIR server (R4)'),
        summaryMode: z
          .enum(['operation', 'latest-document'])
          .default('operation')
          .describe('"operation": Patient/{id}/$summary; "latest-document": newest stored IPS Bundle'),
        timeoutMs: z.number().int().min(100).max(120000).default(10000),
      })
      .strict()
      .optional(),
    eid: z
      .object({
        oidc: z
          .array(
            z
              .object({
                id: z.string().regex(/^[a-z0-9-]+$/),
                issuer: z.url().describe('Pinned issuer of the national OpenID provider'),
                clientId: z.string().min(1).describe('Our client id at the provider (citizen portal) or the hospital EHR client id (hcp)'),
                clientSecretFile: filePath.optional().describe('Client secret for a confidential portal client; public clients use PKCE only'),
                redirectUri: z.url().optional().describe('Our callback URL (citizen portal: /api/v1/auth/callback)'),
                audiences: z.array(z.string().min(1)).min(1).optional().describe('Accepted `aud` values of EHR-posted ID tokens (default: clientId)'),
                purpose: z.enum(['citizen', 'hcp']).describe('"citizen": portal sign-in; "hcp": ID tokens posted by hospital EHRs'),
                personIdClaim: z.string().min(1).default('sub').describe('Claim holding the national person identifier'),
                allowedAlgs: z.array(z.enum(['RS256', 'PS256', 'ES256', 'EdDSA'])).min(1).optional(),
                acrMapping: z.record(z.string(), z.enum(['low', 'substantial', 'high'])).optional().describe('acr value -> eIDAS level'),
                allowInsecureHttp: z.boolean().default(false).describe('Permit an http:// issuer (loopback sandbox only; refused in production)'),
              })
              .strict(),
          )
          .default([]),
        saml: z
          .array(
            z
              .object({
                id: z.string().regex(/^[a-z0-9-]+$/),
                idpEntityId: z.string().min(1).describe('Pinned IdP (eIDAS node) entity id'),
                idpCertFiles: z.array(filePath).min(1).describe('Pinned IdP signing certificates (never taken from KeyInfo)'),
                spEntityId: z.string().min(1).describe('Our entity id: the required Audience'),
                acsUrl: z.url().describe('Required Destination/Recipient'),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    registry: z
      .object({
        baseUrl: z.url({ protocol: /^https?$/ }).optional().describe('National HCP registry (FHIR); default: nationalFhir.baseUrl'),
      })
      .strict()
      .prefault({}),
    clients: z
      .array(
        z
          .object({
            id: z.string().min(1).max(128),
            name: z.string().min(1),
            scopes: z.array(z.string().min(1)).min(1),
            jwksFile: filePath.describe('Public JWKS the client signs its private_key_jwt assertions with'),
          })
          .strict(),
      )
      .default([])
      .describe('Registered hospital EHR / mHealth clients (private_key_jwt, RFC 7523)'),
    citizen: z
      .object({
        patientIdentifierSystem: z.string().min(1).describe('Identifier system of this country\'s patients (e.g. CPR urn:oid:1.2.208.176.1.2)'),
        sessionTtlSeconds: z.number().int().min(300).max(43200).default(3600),
        secureCookies: z.boolean().default(true).describe('Mark session cookies Secure (keep true outside loopback tests)'),
      })
      .strict()
      .optional(),
    dataKeys: z
      .array(z.object({ id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), file: filePath }).strict())
      .min(1)
      .describe('AES-256-GCM keys (32 bytes, base64 files) encrypting health data at rest; the first is current'),
    submissions: z
      .object({
        retentionHours: z.number().int().min(0).max(24 * 365).default(168).describe('Keep delivered payloads this long, then purge them'),
        maxBodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(2 * 1024 * 1024),
        maxAgeHours: z.number().int().min(1).max(24 * 30).default(72).describe('A receiver accepts deliveries submitted at most this long ago'),
        webhookUrl: z.url({ protocol: /^https?$/ }).optional().describe('Notified (ids only, no health data) when a document from abroad is registered'),
        retry: z
          .object({
            baseDelaySeconds: z.number().int().min(1).max(3600).default(2),
            maxDelaySeconds: z.number().int().min(1).max(86400).default(300),
            breakerThreshold: z.number().int().min(1).max(1000).default(5).describe('Consecutive transient failures that open a peer\'s circuit'),
            breakerOpenSeconds: z.number().int().min(1).max(3600).default(30),
            leaseSeconds: z.number().int().min(1).max(3600).default(60).describe('How long a worker owns a claimed delivery before another may take it over (crash recovery)'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    policy: z
      .object({
        clockSkewSeconds: z.number().int().min(0).max(300).default(60),
        breakGlass: z.enum(['allowed', 'forbidden']).default('forbidden'),
        hcpAssertionTtlSeconds: z.number().int().min(60).max(4 * 3600).default(3600),
      })
      .strict()
      .prefault({}),
    capacity: z
      .object({
        peerOperations: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(CAPACITY_DEFAULTS.concurrency)
          .describe('Peer requests (other countries asking us) worked on at once; the rest queue, countries taking turns'),
        perPeer: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(CAPACITY_DEFAULTS.concurrency)
          .describe('Cross-border requests of our EHRs and viewer in flight to one peer country at once; the rest queue'),
        queuePerKey: z.number().int().min(0).max(10000).default(CAPACITY_DEFAULTS.maxQueuedPerKey).describe('Requests that may wait per peer country; one more is refused with service.busy (503)'),
        queueTotal: z.number().int().min(0).max(100000).default(CAPACITY_DEFAULTS.maxQueued).describe('Peer requests that may wait for all countries together (each holds its body, up to peer.bodyLimitBytes)'),
        queueTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(8000)
          .default(CAPACITY_DEFAULTS.queueTimeoutMs)
          .describe('A request that waited this long is refused with service.busy (503); below the peer client\'s 15 s wait for an answer\'s headers, so a peer\'s refusal reaches its caller'),
      })
      .strict()
      .prefault({})
      .describe('Bulkheads: how many Patient Summaries a gateway holds in work at once (memory stays bounded under any load)'),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof ConfigSchema>;
export type Config = z.output<typeof ConfigSchema>;
