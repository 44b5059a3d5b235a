/**
 * Assembles the identity side of one gateway from its configuration: the national eID verifiers
 * (OpenID Connect for citizens and professionals, eIDAS SAML for professionals), the professional
 * registry, and the registered hospital clients.
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { ReplayStore } from '../crossborder/replay-store.js';
import { ClientSchema, type RegisteredClient } from './clients.js';
import { createOidcProvider, type OidcProvider } from './oidc.js';
import { createRegistry, type Registry } from './registry.js';
import { createSamlVerifier, type SamlVerifier } from './saml.js';

export interface IdentityServices {
  /** Providers whose ID tokens hospital EHRs may post for professionals. */
  readonly hcpOidc: readonly OidcProvider[];
  /** Providers citizens sign in with (code flow). */
  readonly citizenOidc: readonly OidcProvider[];
  readonly saml: ReadonlyArray<{ readonly id: string; readonly verifier: SamlVerifier }>;
  readonly registry: Registry | undefined;
  readonly clients: readonly RegisteredClient[];
}

export async function createIdentityServices(config: Readonly<Config>, replay: ReplayStore): Promise<IdentityServices> {
  const skew = config.policy.clockSkewSeconds;
  const oidc = await Promise.all(
    config.eid.oidc.map(async (o) => ({
      purpose: o.purpose,
      provider: createOidcProvider({
        providerId: o.id,
        issuer: o.issuer,
        clientId: o.clientId,
        ...(o.clientSecretFile === undefined ? {} : { clientSecret: (await readFile(o.clientSecretFile, 'utf8')).trim() }),
        ...(o.redirectUri === undefined ? {} : { redirectUri: o.redirectUri }),
        ...(o.audiences === undefined ? {} : { audiences: o.audiences }),
        ...(o.acrMapping === undefined ? {} : { acrMapping: o.acrMapping }),
        ...(o.allowedAlgs === undefined ? {} : { allowedAlgs: o.allowedAlgs }),
        personIdClaim: o.personIdClaim,
        clockSkewSeconds: skew,
        replay,
        allowInsecureHttp: o.allowInsecureHttp,
      }),
    })),
  );
  const saml = await Promise.all(
    config.eid.saml.map(async (s) => ({
      id: s.id,
      verifier: createSamlVerifier({
        providerId: s.id,
        idpEntityId: s.idpEntityId,
        idpCertsPem: await Promise.all(s.idpCertFiles.map((f) => readFile(f, 'utf8'))),
        spEntityId: s.spEntityId,
        acsUrl: s.acsUrl,
        replay,
        clockSkewSeconds: skew,
      }),
    })),
  );
  const clients = await Promise.all(
    config.clients.map(async (c) => {
      const jwks: unknown = JSON.parse(await readFile(c.jwksFile, 'utf8'));
      const parsed = ClientSchema.safeParse({ id: c.id, name: c.name, scopes: c.scopes, jwks });
      if (!parsed.success) throw new TypeError(`client ${c.id}: ${c.jwksFile} is not a usable public JWKS`, { cause: parsed.error });
      return parsed.data;
    }),
  );
  const registryUrl = config.registry.baseUrl ?? config.nationalFhir?.baseUrl;
  return {
    hcpOidc: oidc.filter((o) => o.purpose === 'hcp').map((o) => o.provider),
    citizenOidc: oidc.filter((o) => o.purpose === 'citizen').map((o) => o.provider),
    saml,
    registry: registryUrl === undefined ? undefined : createRegistry({ baseUrl: registryUrl }),
    clients,
  };
}
