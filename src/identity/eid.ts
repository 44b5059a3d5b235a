/**
 * What a verified national eID sign-in tells the gateway, whichever protocol carried it.
 * OIDC (src/identity/oidc.ts) and eIDAS SAML (src/identity/saml.ts) both produce this shape; the
 * professional registry lookup and the HCP assertion build on it.
 */

/** eIDAS levels of assurance (Implementing Regulation (EU) 2015/1502). */
export type LevelOfAssurance = 'low' | 'substantial' | 'high';

export const LOA_URIS: Readonly<Record<LevelOfAssurance, string>> = {
  low: 'http://eidas.europa.eu/LoA/low',
  substantial: 'http://eidas.europa.eu/LoA/substantial',
  high: 'http://eidas.europa.eu/LoA/high',
};

const LOA_RANK: Readonly<Record<LevelOfAssurance, number>> = { low: 1, substantial: 2, high: 3 };

export function loaAtLeast(actual: LevelOfAssurance, required: LevelOfAssurance): boolean {
  return LOA_RANK[actual] >= LOA_RANK[required];
}

export interface VerifiedEid {
  readonly protocol: 'oidc' | 'saml';
  /** The configured provider id (config `eid.oidc[].id` / `eid.saml[].id`). */
  readonly providerId: string;
  /** OIDC `iss` or SAML IdP entity id. */
  readonly issuer: string;
  /**
   * The national person identifier: for eIDAS the PersonIdentifier value (`ES/DK/<opaque>`), for
   * OIDC the `sub` (or a configured national-id claim).
   */
  readonly personId: string;
  readonly givenName: string | undefined;
  readonly familyName: string | undefined;
  /** YYYY-MM-DD when the eID carries it. */
  readonly birthDate: string | undefined;
  readonly loa: LevelOfAssurance;
  readonly authTime: Date;
  /** Assertion ID / ID token `jti` (or a hash of the token): what the replay cache remembers. */
  readonly assertionId: string;
  /** When the assertion stops being valid. */
  readonly expiresAt: Date;
}
