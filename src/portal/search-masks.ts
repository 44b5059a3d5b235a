/**
 * Search masks of the professional viewer: what a clinician types to identify a patient of another
 * country, per country (STANDARDS.md "National identifiers"). Each mask checks its identifier
 * before anything leaves this gateway, so a typo is a message on the page and never a peer request.
 *
 * A country without a mask here cannot be searched from the viewer (the API still can).
 */
export type MaskProblem = 'birthDateInvalid' | 'cprBirthDateMismatch' | 'dniLetterWrong';

export interface SearchMask {
  readonly country: string;
  /** The identifier system the patient's country indexes its patients by. */
  readonly system: string;
  readonly label: Readonly<Record<'da' | 'en' | 'es', string>>;
  readonly placeholder: string;
  /** HTML `pattern` for the input (a hint; the server checks with `check`). */
  readonly pattern: string;
  readonly inputMode: 'numeric' | 'text';
  /** Normalises what was typed (spaces and dashes), or undefined if it is not plausible at all. */
  normalise(raw: string): string | undefined;
  /** Why the identifier is wrong (for the given birth date), as a message key; undefined if right. */
  check(identifier: string, birthDate: string): MaskProblem | undefined;
}

const DNI_LETTERS = 'TRWAGMYFPDXBNJZSQVHLCKE';

/**
 * Denmark, CPR: 10 digits DDMMYY + 4 (STANDARDS.md). The first six digits are the birth date, so a
 * mismatch is caught here. No modulus-11 check: CPR numbers issued since 2007 need not satisfy it.
 */
const DK: SearchMask = {
  country: 'DK',
  system: 'urn:oid:1.2.208.176.1.2',
  label: { en: 'CPR number (10 digits)', da: 'CPR-nummer (10 cifre)', es: 'Número CPR (10 dígitos)' },
  placeholder: 'DDMMÅÅ-XXXX',
  pattern: '\\d{6}-?\\d{4}',
  inputMode: 'numeric',
  normalise: (raw) => {
    const v = raw.replace(/[\s-]/g, '');
    return /^\d{10}$/.test(v) ? v : undefined;
  },
  check: (cpr, birthDate) => {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(birthDate);
    if (m === null) return 'birthDateInvalid';
    const ddmmyy = `${m[3] ?? ''}${m[2] ?? ''}${(m[1] ?? '').slice(2)}`;
    return cpr.slice(0, 6) === ddmmyy ? undefined : 'cprBirthDateMismatch';
  },
};

/** Spain, DNI: 8 digits and the check letter TRWAGMYFPDXBNJZSQVHLCKE[n mod 23] (STANDARDS.md). */
const ES: SearchMask = {
  country: 'ES',
  system: 'urn:ncpeh:sandbox:es:dni',
  label: { en: 'DNI (8 digits and the check letter)', da: 'DNI (8 cifre og kontrolbogstav)', es: 'DNI (8 dígitos y letra)' },
  placeholder: '12345678Z',
  pattern: '\\d{8}[A-Za-z]',
  inputMode: 'text',
  normalise: (raw) => {
    const v = raw.replace(/[\s-]/g, '').toUpperCase();
    return /^\d{8}[A-Z]$/.test(v) ? v : undefined;
  },
  check: (dni) => (DNI_LETTERS[Number(dni.slice(0, 8)) % 23] === dni.slice(8) ? undefined : 'dniLetterWrong'),
};

export const SEARCH_MASKS: ReadonlyMap<string, SearchMask> = new Map([DK, ES].map((m) => [m.country, m]));
