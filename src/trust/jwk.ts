import type { z } from 'zod';

/** JWK members that only private (or symmetric) keys have (RFC 7518 sections 6.2.2, 6.3.2, 6.4). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * zod refinement for places that must only ever hold public keys (trust list, client registrations):
 * a private member is reported as exactly that, before any shape check, because its presence means
 * a secret has leaked into a document that is meant to be published.
 */
export function refusePrivateJwkMembers(value: unknown, ctx: z.RefinementCtx): void {
  if (typeof value !== 'object' || value === null) return;
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (Object.hasOwn(value, member)) {
      ctx.addIssue({ code: 'custom', message: `private key material ("${member}") is not allowed`, path: [member] });
    }
  }
}
