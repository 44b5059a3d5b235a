/**
 * The consent decision (DESIGN.md flow 4, issue 5): given a patient's consents, the national
 * emergency-access policy and one request (requesting country, HCP role, purpose of use, time, wanted
 * IPS sections), permit with the sections that may leave the country, or deny with one reason code.
 *
 * Pure and total: no I/O, no clock (the time is part of the request), and no throw on any input of
 * the declared types; anything it cannot evaluate counts against access (fail closed, DESIGN.md 6).
 *
 * The rules, in the order they apply:
 * 1. revoked consents are ignored;
 * 2. only consents whose period contains the request time count (start inclusive, end exclusive);
 * 3. an opt-out in force denies, whatever else holds, break-glass included;
 * 4. a permit counts when the requesting country, the HCP role and the purpose are all among its
 *    terms; the sections released are the union over counting permits, intersected with the wanted
 *    ones; nothing left means deny `sections`;
 * 5. no permit counts: break-glass (purpose ETREAT, national policy allows it) releases every wanted
 *    IPS section; otherwise deny with the most specific reason.
 */
import { IPS_SECTION_CODES, type ConsentKind, type ConsentStatus, type Purpose } from './model.js';

/** The indexed form of a stored consent (src/consent/repository.ts), all a decision needs. */
export interface ConsentRecord {
  readonly id: string;
  readonly kind: ConsentKind;
  readonly status: ConsentStatus;
  readonly countries: readonly string[];
  readonly roles: readonly string[];
  readonly purposes: readonly string[];
  readonly sections: readonly string[];
  readonly periodStart: Date;
  /** Exclusive; null means no expiry. */
  readonly periodEnd: Date | null;
}

export interface ConsentPolicy {
  /** National policy (config): may an emergency (ETREAT) read go ahead without a consent? */
  readonly breakGlass: 'allowed' | 'forbidden';
}

export interface DecisionRequest {
  /** ISO 3166-1 alpha-2 country of the requesting gateway (from the trust list, not the HCP). */
  readonly country: string;
  /** ISCO-08 role code from the HCP assertion. */
  readonly role: string;
  readonly purpose: Purpose;
  readonly at: Date;
  /** IPS section LOINC codes wanted; undefined means every section. */
  readonly sections?: readonly string[] | undefined;
}

export type DenyReason = 'no-consent' | 'opt-out' | 'not-in-period' | 'country' | 'role' | 'purpose' | 'sections';

export type Decision =
  | { readonly permit: true; readonly sections: string[]; readonly basis: 'consent' | 'break-glass'; readonly consentIds: string[] }
  | { readonly permit: false; readonly reason: DenyReason };

const deny = (reason: DenyReason): Decision => ({ permit: false, reason });

// ---------------------------------------------------------------------------------------------
// One rule each
// ---------------------------------------------------------------------------------------------

function isValidTime(d: Date): boolean {
  return Number.isFinite(d.getTime());
}

/**
 * Rule 2. A permit whose bounds are not valid instants never counts. An opt-out whose bounds are not
 * valid instants is taken as in force: a denial we cannot date must not be read as absent.
 */
function inPeriod(c: ConsentRecord, at: number): boolean {
  const start = c.periodStart.getTime();
  const end = c.periodEnd === null ? Number.POSITIVE_INFINITY : c.periodEnd.getTime();
  if (Number.isNaN(start) || Number.isNaN(end)) return c.kind === 'opt-out';
  return start <= at && at < end;
}

const matchesCountry = (c: ConsentRecord, r: DecisionRequest): boolean => c.countries.includes(r.country);
const matchesRole = (c: ConsentRecord, r: DecisionRequest): boolean => c.roles.includes(r.role);
/**
 * Purposes match exactly. v3-ActReason places ETREAT under TREAT, but the issue makes emergency use
 * something the citizen opts into explicitly, so a TREAT consent does not cover an ETREAT request.
 */
const matchesPurpose = (c: ConsentRecord, r: DecisionRequest): boolean => c.purposes.includes(r.purpose);

/** The wanted sections, or every IPS section when the request names none. */
function wantedSections(r: DecisionRequest): Set<string> {
  return new Set(r.sections ?? IPS_SECTION_CODES);
}

/**
 * Rule 5's "most specific reason": the last test some consent still passed, in the order period,
 * country, role, purpose. Only permits count; an opt-out out of its period grants nothing to explain.
 */
function mostSpecificReason(permits: readonly ConsentRecord[], inForce: readonly ConsentRecord[], r: DecisionRequest): DenyReason {
  if (permits.length === 0) return 'no-consent';
  if (inForce.length === 0) return 'not-in-period';
  const forCountry = inForce.filter((c) => matchesCountry(c, r));
  if (forCountry.length === 0) return 'country';
  const forRole = forCountry.filter((c) => matchesRole(c, r));
  if (forRole.length === 0) return 'role';
  return 'purpose';
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

export function decide(consents: readonly ConsentRecord[], policy: ConsentPolicy, request: DecisionRequest): Decision {
  const live = consents.filter((c) => c.status === 'active');
  // A request we cannot place in time cannot be checked against an opt-out's period.
  if (!isValidTime(request.at)) return deny(live.length === 0 ? 'no-consent' : 'not-in-period');
  const at = request.at.getTime();
  const inForce = live.filter((c) => inPeriod(c, at));

  if (inForce.some((c) => c.kind === 'opt-out')) return deny('opt-out');

  const permitsInForce = inForce.filter((c) => c.kind === 'permit');
  const matching = permitsInForce.filter((c) => matchesCountry(c, request) && matchesRole(c, request) && matchesPurpose(c, request));
  const wanted = wantedSections(request);

  if (matching.length > 0) {
    const released = new Set<string>();
    const contributing: string[] = [];
    for (const c of matching) {
      const granted = c.sections.filter((s) => wanted.has(s));
      if (granted.length === 0) continue;
      contributing.push(c.id);
      for (const s of granted) released.add(s);
    }
    if (released.size === 0) return deny('sections');
    return { permit: true, sections: sorted(released), basis: 'consent', consentIds: sorted(new Set(contributing)) };
  }

  if (request.purpose === 'ETREAT' && policy.breakGlass === 'allowed') {
    // Break-glass releases IPS sections only: a wanted code that is no IPS section is nothing to release.
    // A patient who has said what emergency access may see (an in-force ETREAT permit, for anyone)
    // has set its limit: break-glass never releases more than the union of those sections, so a
    // professional he did not name cannot see more than the ones he did.
    const emergencyLimits = permitsInForce.filter((c) => c.purposes.includes('ETREAT'));
    const ceiling = emergencyLimits.length === 0 ? undefined : new Set(emergencyLimits.flatMap((c) => c.sections));
    const released = IPS_SECTION_CODES.filter((s) => wanted.has(s) && (ceiling === undefined || ceiling.has(s)));
    if (released.length === 0) return deny('sections');
    return { permit: true, sections: sorted(released), basis: 'break-glass', consentIds: [] };
  }

  return deny(mostSpecificReason(live.filter((c) => c.kind === 'permit'), permitsInForce, request));
}

/**
 * Whether patient identification may answer the requester at all (DESIGN.md flow 3): the same
 * decision with every section wanted. A "no" is reported to the peer exactly like an unknown patient.
 */
export function permitsDiscovery(
  consents: readonly ConsentRecord[],
  policy: ConsentPolicy,
  request: { readonly country: string; readonly role: string; readonly purpose: Purpose; readonly at: Date },
): boolean {
  return decide(consents, policy, { country: request.country, role: request.role, purpose: request.purpose, at: request.at }).permit;
}
