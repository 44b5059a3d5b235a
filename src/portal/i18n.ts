/**
 * Languages of the pages and every text they show. The citizen portal speaks Danish and English,
 * the professional viewer Spanish, Danish and English; one table holds all three so a text is
 * never missing in a language a page offers (the compiler checks it).
 *
 * Choice, in order: `?lang=` if the page offers it, else the first offered language in
 * Accept-Language (RFC 9110 section 12.5.4, q-values honoured), else the page's default.
 */

export const LANGS = ['da', 'en', 'es'] as const;
export type Lang = (typeof LANGS)[number];

export function isLang(v: unknown): v is Lang {
  return typeof v === 'string' && (LANGS as readonly string[]).includes(v);
}

/** Accept-Language ranges, best first; `*` and malformed ranges are ignored. */
function acceptedLanguages(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .slice(0, 32)
    .map((part, index) => {
      const [range = '', ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([01](?:\.\d{0,3})?)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      return { range: range.trim().toLowerCase(), q: q === undefined ? 1 : Number(q), index };
    })
    .filter((r) => /^[a-z]{1,8}(-[a-z0-9]{1,8})*$/.test(r.range) && r.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index)
    .map((r) => r.range.split('-')[0] ?? r.range);
}

export function negotiateLang(opts: { query: unknown; acceptLanguage: string | undefined; offered: readonly Lang[]; fallback: Lang }): Lang {
  if (isLang(opts.query) && opts.offered.includes(opts.query)) return opts.query;
  for (const l of acceptedLanguages(opts.acceptLanguage)) if (isLang(l) && opts.offered.includes(l)) return l;
  return opts.fallback;
}

export const LANG_NAMES: Readonly<Record<Lang, string>> = { da: 'Dansk', en: 'English', es: 'Español' };

/** BCP 47 locales for dates and lists. */
export const LOCALES: Readonly<Record<Lang, string>> = { da: 'da-DK', en: 'en-GB', es: 'es-ES' };

export function formatDate(d: Date, lang: Lang): string {
  return new Intl.DateTimeFormat(LOCALES[lang], { dateStyle: 'long', timeZone: 'UTC' }).format(d);
}

export function formatDateTime(d: Date, lang: Lang): string {
  return `${new Intl.DateTimeFormat(LOCALES[lang], { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' }).format(d)} UTC`;
}

export function formatList(items: readonly string[], lang: Lang): string {
  return new Intl.ListFormat(LOCALES[lang], { style: 'long', type: 'conjunction' }).format(items);
}

export function countryName(code: string, lang: Lang): string {
  try {
    return new Intl.DisplayNames([LOCALES[lang]], { type: 'region' }).of(code) ?? code;
  } catch {
    return code;
  }
}

/** ISCO-08 roles in the plural, as a consent sentence names them. */
export const ROLE_NAMES: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  '221': { en: 'Physicians', da: 'Læger', es: 'Médicos' },
  '2221': { en: 'Nurses', da: 'Sygeplejersker', es: 'Enfermeros' },
  '2222': { en: 'Midwives', da: 'Jordemødre', es: 'Matronas' },
  '2261': { en: 'Dentists', da: 'Tandlæger', es: 'Dentistas' },
  '2262': { en: 'Pharmacists', da: 'Farmaceuter', es: 'Farmacéuticos' },
  '2264': { en: 'Physiotherapists', da: 'Fysioterapeuter', es: 'Fisioterapeutas' },
  '3213': { en: 'Pharmacy technicians', da: 'Farmakonomer', es: 'Técnicos de farmacia' },
};

/**
 * IPS sections as a citizen names them (consent form and sentences), in IPS_SECTIONS order; the
 * clinical titles for professionals are in the terminology catalogue.
 */
export const SECTION_NAMES: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  '11450-4': { en: 'Problems', da: 'Problemer', es: 'Problemas' },
  '48765-2': { en: 'Allergies', da: 'Allergier', es: 'Alergias' },
  '10160-0': { en: 'Medication', da: 'Medicin', es: 'Medicación' },
  '11369-6': { en: 'Vaccinations', da: 'Vaccinationer', es: 'Vacunas' },
  '30954-2': { en: 'Test results', da: 'Prøvesvar', es: 'Resultados de pruebas' },
  '47519-4': { en: 'Procedures', da: 'Procedurer', es: 'Procedimientos' },
  '46264-8': { en: 'Medical devices', da: 'Medicinsk udstyr', es: 'Dispositivos médicos' },
  '42348-3': { en: 'Advance directives', da: 'Behandlingstestamente', es: 'Instrucciones previas' },
  '104605-1': { en: 'Alerts', da: 'Advarsler', es: 'Alertas' },
  '47420-5': { en: 'Functional status', da: 'Funktionsevne', es: 'Estado funcional' },
  '11348-0': { en: 'Past illnesses', da: 'Tidligere sygdomme', es: 'Enfermedades pasadas' },
  '10162-6': { en: 'Pregnancies', da: 'Graviditeter', es: 'Embarazos' },
  '81338-6': { en: 'Care preferences', da: 'Ønsker til behandling', es: 'Preferencias de cuidado' },
  '18776-5': { en: 'Care plan', da: 'Behandlingsplan', es: 'Plan de cuidados' },
  '29762-2': { en: 'Social history', da: 'Sociale forhold', es: 'Historia social' },
  '8716-3': { en: 'Vital signs', da: 'Vitale værdier', es: 'Constantes vitales' },
};

/** ISCO-08 roles in the singular, for "signed in as" and the access log. */
export const ROLE_TITLES: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  '221': { en: 'Physician', da: 'Læge', es: 'Médico' },
  '2221': { en: 'Nurse', da: 'Sygeplejerske', es: 'Enfermería' },
  '2222': { en: 'Midwife', da: 'Jordemoder', es: 'Matrona' },
  '2261': { en: 'Dentist', da: 'Tandlæge', es: 'Dentista' },
  '2262': { en: 'Pharmacist', da: 'Farmaceut', es: 'Farmacéutico' },
  '2264': { en: 'Physiotherapist', da: 'Fysioterapeut', es: 'Fisioterapeuta' },
  '3213': { en: 'Pharmacy technician', da: 'Farmakonom', es: 'Técnico de farmacia' },
};

export const PURPOSE_PHRASES: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  TREAT: { en: 'for treatment', da: 'til behandling', es: 'para tratamiento' },
  ETREAT: { en: 'for emergency treatment', da: 'til akut behandling', es: 'para tratamiento de urgencia' },
};

/** Readable purposes of use as the audit log records them (v3-ActReason displays). */
export const PURPOSE_NAMES: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  TREAT: { en: 'Treatment', da: 'Behandling', es: 'Tratamiento' },
  ETREAT: { en: 'Emergency treatment', da: 'Akut behandling', es: 'Tratamiento de urgencia' },
  treatment: { en: 'Treatment', da: 'Behandling', es: 'Tratamiento' },
  'Emergency Treatment': { en: 'Emergency treatment', da: 'Akut behandling', es: 'Tratamiento de urgencia' },
};

/** The access log's "what" (src/audit/balp.ts describeAuditEvent, English) in the reader's language. */
export const AUDIT_WHAT: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  'read the record': { en: 'read the record', da: 'læste journalen', es: 'leyó la historia' },
  'searched for the patient': { en: 'searched for you', da: 'søgte efter dig', es: 'le buscó' },
  'received the Patient Summary': { en: 'received your Patient Summary', da: 'modtog dit patientresumé', es: 'recibió su historia clínica resumida' },
  'consent was checked': { en: 'your consent was checked', da: 'dit samtykke blev kontrolleret', es: 'se comprobó su consentimiento' },
  'consent was changed': { en: 'your consent was changed', da: 'dit samtykke blev ændret', es: 'se modificó su consentimiento' },
  'consent was given': { en: 'you gave a consent', da: 'du gav et samtykke', es: 'usted dio un consentimiento' },
  'consent was deleted': { en: 'a consent was deleted', da: 'et samtykke blev slettet', es: 'se eliminó un consentimiento' },
  'signed in': { en: 'signed in', da: 'loggede ind', es: 'inició sesión' },
  'sent documents to the home country': { en: 'sent documents home', da: 'sendte dokumenter hjem', es: 'envió documentos al país de origen' },
  'added documents to the record': { en: 'added documents to your record', da: 'tilføjede dokumenter til din journal', es: 'añadió documentos a su historia' },
  'used emergency access': { en: 'used emergency access', da: 'brugte nødadgang', es: 'usó el acceso de urgencia' },
};

export interface Messages {
  readonly skipToContent: string;
  readonly language: string;
  readonly signOut: string;
  readonly errorTitle: string;
  readonly errorBack: string;
  readonly forbiddenForm: string;
  readonly sessionExpired: string;
  readonly notFound: string;
  readonly unavailable: string;
  readonly genericError: (correlationId: string) => string;
  // citizen portal
  readonly portalTitle: string;
  readonly portalIntro: string;
  readonly signInHeading: string;
  readonly signInText: string;
  readonly signInLink: string;
  readonly signedInAs: (name: string) => string;
  readonly yourConsents: string;
  readonly noConsents: string;
  readonly consentActive: string;
  readonly consentRevokedOn: (date: string) => string;
  readonly consentExpired: string;
  readonly consentNotYetStarted: string;
  readonly consentGivenOn: (date: string) => string;
  readonly revoke: string;
  readonly revokeLabel: (sentence: string) => string;
  readonly revokedHeading: string;
  readonly grantHeading: string;
  readonly countriesLegend: string;
  readonly rolesLegend: string;
  readonly purposesLegend: string;
  readonly sectionsLegend: string;
  readonly periodLegend: string;
  readonly startLabel: string;
  readonly endLabel: string;
  readonly endHint: string;
  readonly grantButton: string;
  readonly formErrorsHeading: string;
  readonly noOtherCountries: string;
  readonly consentCreated: string;
  readonly consentRevoked: string;
  readonly accessLogLink: string;
  readonly consentsLink: string;
  readonly accessLogHeading: string;
  readonly accessLogIntro: string;
  readonly accessLogEmpty: string;
  readonly checkpointNote: (size: number, signedAt: string, signer: string) => string;
  readonly colWhen: string;
  readonly colWho: string;
  readonly colRole: string;
  readonly colOrganisation: string;
  readonly colCountry: string;
  readonly colWhat: string;
  readonly colWhy: string;
  readonly colOutcome: string;
  readonly colVerified: string;
  readonly verifiedYes: string;
  readonly verifiedNo: string;
  readonly outcomeSuccess: string;
  readonly outcomeFailed: string;
  readonly sentence: (p: { roles: string; countries: string; sections: string; purposes: string; from: string | undefined; until: string | undefined }) => string;
  readonly optOutSentence: (from: string | undefined, until: string | undefined) => string;
  readonly fieldMessages: Readonly<Record<string, string>>;
  readonly fieldNames: Readonly<Record<string, string>>;
  // professional viewer
  readonly viewerTitle: string;
  readonly viewerSignInHeading: string;
  readonly personIdLabel: string;
  readonly personIdHint: string;
  readonly purposeLabel: string;
  readonly signInButton: string;
  readonly sandboxNote: string;
  readonly viewerDisabled: string;
  readonly signInFailed: string;
  readonly signedInAsHcp: (name: string, role: string, organisation: string) => string;
  readonly identifyHeading: string;
  readonly patientFrom: (country: string) => string;
  readonly noSearchMasks: string;
  readonly birthDateLabel: string;
  readonly searchButton: string;
  readonly identifierInvalid: string;
  readonly cprBirthDateMismatch: string;
  readonly dniLetterWrong: string;
  readonly birthDateInvalid: string;
  readonly noMatch: string;
  readonly moreAttributes: string;
  readonly matchHeading: string;
  readonly openSummary: string;
  readonly born: string;
  readonly gender: string;
  readonly newSearch: string;
  readonly summaryOf: (name: string) => string;
  readonly documentLabel: string;
  readonly authorLabel: string;
  readonly provenanceHeading: string;
  readonly signedBy: (signer: string, when: string) => string;
  readonly basisConsent: string;
  readonly basisBreakGlass: string;
  readonly withheld: string;
  readonly emptySection: string;
  readonly notTranslated: string;
  readonly original: string;
  readonly narrativeHeading: string;
  readonly narrativeNote: string;
  readonly colSubstance: string;
  readonly colType: string;
  readonly colCriticality: string;
  readonly colStatus: string;
  readonly colOnset: string;
  readonly colReaction: string;
  readonly colProblem: string;
  readonly colSeverity: string;
  readonly colMedication: string;
  readonly colDosage: string;
  readonly colSince: string;
  readonly colTest: string;
  readonly colValue: string;
  readonly colDate: string;
  readonly colItem: string;
  readonly colKind: string;
  readonly noteHeading: string;
  readonly noteLabel: string;
  readonly noteButton: string;
  readonly noteHint: string;
  readonly noteQueued: (trackingId: string) => string;
  readonly noteEmpty: string;
  readonly noteTooLong: (max: number) => string;
  readonly backToSummary: string;
  readonly summaryRefused: string;
}

const en: Messages = {
  skipToContent: 'Skip to content',
  language: 'Language',
  signOut: 'Sign out',
  errorTitle: 'Something went wrong',
  errorBack: 'Back',
  forbiddenForm: 'This form has expired or was sent from another site. Please reload the page and try again.',
  sessionExpired: 'Your sign-in has expired. Please sign in again.',
  notFound: 'Not found.',
  unavailable: 'A service we depend on is not available right now. Please try again later.',
  genericError: (id) => `An unexpected error occurred. If it persists, quote this reference to the operator: ${id}`,
  portalTitle: 'Your health data abroad',
  portalIntro: 'Decide which health professionals in other countries may read your Patient Summary, and see who has.',
  signInHeading: 'Sign in',
  signInText: 'Sign in with your national electronic ID to see and change your consents.',
  signInLink: 'Sign in with national eID',
  signedInAs: (name) => `Signed in as ${name}`,
  yourConsents: 'Your consents',
  noConsents: 'You have not given any consent. Nobody abroad can read your Patient Summary.',
  consentActive: 'In force',
  consentRevokedOn: (date) => `Revoked on ${date}`,
  consentExpired: 'Expired',
  consentNotYetStarted: 'Not yet in force',
  consentGivenOn: (date) => `given on ${date}`,
  revoke: 'Revoke',
  revokeLabel: (s) => `Revoke: ${s}`,
  revokedHeading: 'Revoked and expired consents',
  grantHeading: 'Give a new consent',
  countriesLegend: 'Health professionals in which countries?',
  rolesLegend: 'Which professionals?',
  purposesLegend: 'For what purpose?',
  sectionsLegend: 'Which parts of your Patient Summary?',
  periodLegend: 'For how long?',
  startLabel: 'From (date)',
  endLabel: 'Until (date, optional)',
  endHint: 'Leave empty for no end date. The consent covers the whole end day.',
  grantButton: 'Give consent',
  formErrorsHeading: 'Please correct the following',
  noOtherCountries: 'No other country is connected at the moment.',
  consentCreated: 'Your consent has been saved.',
  consentRevoked: 'Your consent has been revoked. It no longer applies, from the very next request.',
  accessLogLink: 'Who has seen my data',
  consentsLink: 'My consents',
  accessLogHeading: 'Who has seen my data',
  accessLogIntro: 'Every access to your data and every change to your consents is written to a tamper-evident log. Each entry is checked against the log\'s signed checkpoint.',
  accessLogEmpty: 'Nothing has been recorded about you yet.',
  checkpointNote: (size, at, signer) => `Checked against the signed checkpoint of ${size} log entries from ${at}, signed by ${signer}.`,
  colWhen: 'When',
  colWho: 'Who',
  colRole: 'Role',
  colOrganisation: 'Organisation',
  colCountry: 'Country',
  colWhat: 'What',
  colWhy: 'Why',
  colOutcome: 'Outcome',
  colVerified: 'In the log',
  verifiedYes: 'Verified',
  verifiedNo: 'Not verified',
  outcomeSuccess: 'Done',
  outcomeFailed: 'Refused or failed',
  sentence: (p) =>
    `${p.roles} in ${p.countries} may read your ${p.sections} ${p.purposes}${p.from === undefined ? '' : ` from ${p.from}`}${p.until === undefined ? ', with no end date' : ` until ${p.until}`}.`,
  optOutSentence: (from, until) =>
    `Nobody abroad may read your Patient Summary${from === undefined ? '' : ` from ${from}`}${until === undefined ? '' : ` until ${until}`} (opt-out).`,
  fieldMessages: {
    'the period must end after it starts': 'The end date must be after the start date.',
    'the period is already over': 'The end date has already passed.',
    'not a date (YYYY-MM-DD) or date-time with offset': 'Enter a date as YYYY-MM-DD.',
    required: 'Choose at least one.',
    unknown: 'Choose from the list.',
  },
  fieldNames: { countries: 'Countries', roles: 'Professionals', purposes: 'Purpose', sections: 'Parts of your Patient Summary', 'period.start': 'From', 'period.end': 'Until', form: 'Form' },
  viewerTitle: 'Patient Summary viewer',
  viewerSignInHeading: 'Sign in as a health professional',
  personIdLabel: 'Your eID person identifier',
  personIdHint: 'Sandbox test professionals, for example ES/ES/12345678Z (physician).',
  purposeLabel: 'Purpose of use',
  signInButton: 'Sign in',
  sandboxNote:
    'Sandbox: this page obtains a signed eIDAS assertion from the sandbox identity provider. In a real deployment the hospital\'s own EHR signs the professional in and calls the gateway API.',
  viewerDisabled: 'Signing in on this page is only available in the sandbox. In a real deployment, please use your hospital\'s EHR.',
  signInFailed: 'Sign-in failed: the identity provider does not know this person, or the national registry has no active role for them.',
  signedInAsHcp: (name, role, org) => `Signed in as ${name} (${role}, ${org})`,
  identifyHeading: 'Find a patient from another country',
  patientFrom: (country) => `Patient from ${country}`,
  noSearchMasks: 'No other country with a known search form is connected.',
  birthDateLabel: 'Date of birth',
  searchButton: 'Search',
  identifierInvalid: 'This is not a valid identifier for that country.',
  cprBirthDateMismatch: 'The CPR number does not match the date of birth.',
  dniLetterWrong: 'The check letter of the DNI is wrong.',
  birthDateInvalid: 'Enter the date of birth as YYYY-MM-DD.',
  noMatch: 'No patient found. The details may be wrong, or the patient has not consented to access from your country and role.',
  moreAttributes: 'More details are needed to identify the patient.',
  matchHeading: 'Patient found',
  openSummary: 'Open the Patient Summary',
  born: 'Born',
  gender: 'Sex',
  newSearch: 'New search',
  summaryOf: (name) => `Patient Summary of ${name}`,
  documentLabel: 'Document',
  authorLabel: 'Author',
  provenanceHeading: 'Provenance',
  signedBy: (signer, when) => `Signed by ${signer} on ${when}; signature verified by this gateway.`,
  basisConsent: 'Disclosed under the patient\'s consent.',
  basisBreakGlass: 'Disclosed under the emergency access policy.',
  withheld: 'Withheld by the patient\'s consent',
  emptySection: 'No entries',
  notTranslated: '(not translated)',
  original: 'original',
  narrativeHeading: 'Text of the document',
  narrativeNote: 'As written by the author; unsafe content removed.',
  colSubstance: 'Substance or agent',
  colType: 'Type',
  colCriticality: 'Criticality',
  colStatus: 'Status',
  colOnset: 'Onset',
  colReaction: 'Reaction',
  colProblem: 'Problem',
  colSeverity: 'Severity',
  colMedication: 'Medication',
  colDosage: 'Dosage',
  colSince: 'Since',
  colTest: 'Test',
  colValue: 'Value',
  colDate: 'Date',
  colItem: 'Item',
  colKind: 'Kind',
  noteHeading: 'Send a note back home',
  noteLabel: 'Note for the patient\'s doctor at home',
  noteButton: 'Send',
  noteHint: 'Sent to the patient\'s country as a clinical note (FHIR DocumentReference); delivered even if that country is unreachable right now.',
  noteQueued: (id) => `Your note is stored and will be delivered to the patient's country. Tracking number: ${id}`,
  noteEmpty: 'Write a note first.',
  noteTooLong: (max) => `A note has at most ${max} characters.`,
  backToSummary: 'Back to the Patient Summary',
  summaryRefused: 'The Patient Summary is not available: the patient\'s consent does not cover this request, or the reference has expired. Search again.',
};

const da: Messages = {
  skipToContent: 'Gå til indhold',
  language: 'Sprog',
  signOut: 'Log ud',
  errorTitle: 'Noget gik galt',
  errorBack: 'Tilbage',
  forbiddenForm: 'Formularen er udløbet eller blev sendt fra et andet websted. Genindlæs siden, og prøv igen.',
  sessionExpired: 'Dit login er udløbet. Log ind igen.',
  notFound: 'Ikke fundet.',
  unavailable: 'En tjeneste, vi afhænger af, er ikke tilgængelig lige nu. Prøv igen senere.',
  genericError: (id) => `Der opstod en uventet fejl. Hvis den fortsætter, så oplys denne reference til driften: ${id}`,
  portalTitle: 'Dine sundhedsdata i udlandet',
  portalIntro: 'Bestem, hvilke sundhedspersoner i andre lande der må læse dit patientresumé, og se, hvem der har gjort det.',
  signInHeading: 'Log ind',
  signInText: 'Log ind med dit nationale elektroniske ID for at se og ændre dine samtykker.',
  signInLink: 'Log ind med national eID',
  signedInAs: (name) => `Logget ind som ${name}`,
  yourConsents: 'Dine samtykker',
  noConsents: 'Du har ikke givet noget samtykke. Ingen i udlandet kan læse dit patientresumé.',
  consentActive: 'Gældende',
  consentRevokedOn: (date) => `Tilbagekaldt den ${date}`,
  consentExpired: 'Udløbet',
  consentNotYetStarted: 'Endnu ikke gældende',
  consentGivenOn: (date) => `givet den ${date}`,
  revoke: 'Tilbagekald',
  revokeLabel: (s) => `Tilbagekald: ${s}`,
  revokedHeading: 'Tilbagekaldte og udløbne samtykker',
  grantHeading: 'Giv et nyt samtykke',
  countriesLegend: 'Sundhedspersoner i hvilke lande?',
  rolesLegend: 'Hvilke sundhedspersoner?',
  purposesLegend: 'Til hvilket formål?',
  sectionsLegend: 'Hvilke dele af dit patientresumé?',
  periodLegend: 'Hvor længe?',
  startLabel: 'Fra (dato)',
  endLabel: 'Til og med (dato, valgfri)',
  endHint: 'Lad feltet stå tomt, hvis samtykket ikke skal udløbe. Samtykket gælder hele slutdagen.',
  grantButton: 'Giv samtykke',
  formErrorsHeading: 'Ret venligst følgende',
  noOtherCountries: 'Ingen andre lande er tilsluttet i øjeblikket.',
  consentCreated: 'Dit samtykke er gemt.',
  consentRevoked: 'Dit samtykke er tilbagekaldt. Det gælder ikke længere, fra og med næste forespørgsel.',
  accessLogLink: 'Hvem har set mine data',
  consentsLink: 'Mine samtykker',
  accessLogHeading: 'Hvem har set mine data',
  accessLogIntro: 'Hver adgang til dine data og hver ændring af dine samtykker skrives i en log, der ikke kan ændres ubemærket. Hver post kontrolleres mod loggens underskrevne kontrolpunkt.',
  accessLogEmpty: 'Der er endnu ikke registreret noget om dig.',
  checkpointNote: (size, at, signer) => `Kontrolleret mod det underskrevne kontrolpunkt med ${size} logposter fra ${at}, underskrevet af ${signer}.`,
  colWhen: 'Hvornår',
  colWho: 'Hvem',
  colRole: 'Rolle',
  colOrganisation: 'Organisation',
  colCountry: 'Land',
  colWhat: 'Hvad',
  colWhy: 'Hvorfor',
  colOutcome: 'Resultat',
  colVerified: 'I loggen',
  verifiedYes: 'Bekræftet',
  verifiedNo: 'Ikke bekræftet',
  outcomeSuccess: 'Gennemført',
  outcomeFailed: 'Afvist eller fejlet',
  sentence: (p) =>
    `${p.roles} i ${p.countries} må læse dine ${p.sections} ${p.purposes}${p.from === undefined ? '' : ` fra den ${p.from}`}${p.until === undefined ? ', uden slutdato' : ` til og med den ${p.until}`}.`,
  optOutSentence: (from, until) =>
    `Ingen i udlandet må læse dit patientresumé${from === undefined ? '' : ` fra den ${from}`}${until === undefined ? '' : ` til og med den ${until}`} (fravalg).`,
  fieldMessages: {
    'the period must end after it starts': 'Slutdatoen skal ligge efter startdatoen.',
    'the period is already over': 'Slutdatoen er allerede passeret.',
    'not a date (YYYY-MM-DD) or date-time with offset': 'Angiv en dato som ÅÅÅÅ-MM-DD.',
    required: 'Vælg mindst én.',
    unknown: 'Vælg fra listen.',
  },
  fieldNames: { countries: 'Lande', roles: 'Sundhedspersoner', purposes: 'Formål', sections: 'Dele af dit patientresumé', 'period.start': 'Fra', 'period.end': 'Til og med', form: 'Formular' },
  viewerTitle: 'Visning af patientresumé',
  viewerSignInHeading: 'Log ind som sundhedsperson',
  personIdLabel: 'Din eID-personidentifikator',
  personIdHint: 'Sandkassens testpersoner, for eksempel DK/DK/9208-2002-2-274815369021 (læge).',
  purposeLabel: 'Formål',
  signInButton: 'Log ind',
  sandboxNote:
    'Sandkasse: siden henter en underskrevet eIDAS-assertion fra sandkassens identitetsudbyder. I en rigtig installation logger hospitalets eget EPJ-system sundhedspersonen ind og kalder gatewayens API.',
  viewerDisabled: 'Login på denne side findes kun i sandkassen. I en rigtig installation skal du bruge dit hospitals EPJ-system.',
  signInFailed: 'Login mislykkedes: identitetsudbyderen kender ikke personen, eller det nationale register har ingen aktiv rolle for vedkommende.',
  signedInAsHcp: (name, role, org) => `Logget ind som ${name} (${role}, ${org})`,
  identifyHeading: 'Find en patient fra et andet land',
  patientFrom: (country) => `Patient fra ${country}`,
  noSearchMasks: 'Intet andet land med en kendt søgeformular er tilsluttet.',
  birthDateLabel: 'Fødselsdato',
  searchButton: 'Søg',
  identifierInvalid: 'Det er ikke et gyldigt identifikationsnummer for det land.',
  cprBirthDateMismatch: 'CPR-nummeret passer ikke med fødselsdatoen.',
  dniLetterWrong: 'DNI-nummerets kontrolbogstav er forkert.',
  birthDateInvalid: 'Angiv fødselsdatoen som ÅÅÅÅ-MM-DD.',
  noMatch: 'Ingen patient fundet. Oplysningerne kan være forkerte, eller patienten har ikke givet samtykke til adgang fra dit land og din rolle.',
  moreAttributes: 'Der skal flere oplysninger til for at identificere patienten.',
  matchHeading: 'Patient fundet',
  openSummary: 'Åbn patientresuméet',
  born: 'Født',
  gender: 'Køn',
  newSearch: 'Ny søgning',
  summaryOf: (name) => `Patientresumé for ${name}`,
  documentLabel: 'Dokument',
  authorLabel: 'Forfatter',
  provenanceHeading: 'Oprindelse',
  signedBy: (signer, when) => `Underskrevet af ${signer} den ${when}; underskriften er kontrolleret af denne gateway.`,
  basisConsent: 'Udleveret på grundlag af patientens samtykke.',
  basisBreakGlass: 'Udleveret efter reglerne for nødadgang.',
  withheld: 'Tilbageholdt efter patientens samtykke',
  emptySection: 'Ingen oplysninger',
  notTranslated: '(ikke oversat)',
  original: 'original',
  narrativeHeading: 'Dokumentets tekst',
  narrativeNote: 'Som forfatteren skrev den; usikkert indhold er fjernet.',
  colSubstance: 'Stof eller agens',
  colType: 'Type',
  colCriticality: 'Alvorlighed',
  colStatus: 'Status',
  colOnset: 'Debut',
  colReaction: 'Reaktion',
  colProblem: 'Problem',
  colSeverity: 'Sværhedsgrad',
  colMedication: 'Lægemiddel',
  colDosage: 'Dosering',
  colSince: 'Siden',
  colTest: 'Undersøgelse',
  colValue: 'Resultat',
  colDate: 'Dato',
  colItem: 'Oplysning',
  colKind: 'Art',
  noteHeading: 'Send en note hjem',
  noteLabel: 'Note til patientens læge i hjemlandet',
  noteButton: 'Send',
  noteHint: 'Sendes til patientens land som klinisk note (FHIR DocumentReference); leveres, også selv om landet ikke kan nås lige nu.',
  noteQueued: (id) => `Din note er gemt og bliver leveret til patientens land. Sporingsnummer: ${id}`,
  noteEmpty: 'Skriv en note først.',
  noteTooLong: (max) => `En note kan højst være ${max} tegn.`,
  backToSummary: 'Tilbage til patientresuméet',
  summaryRefused: 'Patientresuméet er ikke tilgængeligt: patientens samtykke dækker ikke denne forespørgsel, eller referencen er udløbet. Søg igen.',
};

const es: Messages = {
  skipToContent: 'Ir al contenido',
  language: 'Idioma',
  signOut: 'Cerrar sesión',
  errorTitle: 'Algo ha fallado',
  errorBack: 'Volver',
  forbiddenForm: 'Este formulario ha caducado o se envió desde otro sitio. Recargue la página e inténtelo de nuevo.',
  sessionExpired: 'Su sesión ha caducado. Vuelva a iniciar sesión.',
  notFound: 'No encontrado.',
  unavailable: 'Un servicio del que dependemos no está disponible ahora. Inténtelo más tarde.',
  genericError: (id) => `Se ha producido un error inesperado. Si persiste, indique esta referencia al operador: ${id}`,
  portalTitle: 'Sus datos de salud en el extranjero',
  portalIntro: 'Decida qué profesionales sanitarios de otros países pueden leer su historia clínica resumida y vea quién lo ha hecho.',
  signInHeading: 'Iniciar sesión',
  signInText: 'Inicie sesión con su identificación electrónica nacional para ver y cambiar sus consentimientos.',
  signInLink: 'Iniciar sesión con eID nacional',
  signedInAs: (name) => `Sesión iniciada como ${name}`,
  yourConsents: 'Sus consentimientos',
  noConsents: 'No ha dado ningún consentimiento. Nadie en el extranjero puede leer su historia clínica resumida.',
  consentActive: 'En vigor',
  consentRevokedOn: (date) => `Revocado el ${date}`,
  consentExpired: 'Caducado',
  consentNotYetStarted: 'Aún no en vigor',
  consentGivenOn: (date) => `dado el ${date}`,
  revoke: 'Revocar',
  revokeLabel: (s) => `Revocar: ${s}`,
  revokedHeading: 'Consentimientos revocados y caducados',
  grantHeading: 'Dar un nuevo consentimiento',
  countriesLegend: '¿Profesionales sanitarios de qué países?',
  rolesLegend: '¿Qué profesionales?',
  purposesLegend: '¿Con qué finalidad?',
  sectionsLegend: '¿Qué partes de su historia clínica resumida?',
  periodLegend: '¿Durante cuánto tiempo?',
  startLabel: 'Desde (fecha)',
  endLabel: 'Hasta (fecha, opcional)',
  endHint: 'Déjelo vacío si no debe caducar. El consentimiento cubre todo el último día.',
  grantButton: 'Dar consentimiento',
  formErrorsHeading: 'Corrija lo siguiente',
  noOtherCountries: 'Ningún otro país está conectado en este momento.',
  consentCreated: 'Su consentimiento se ha guardado.',
  consentRevoked: 'Su consentimiento se ha revocado. Deja de aplicarse desde la siguiente solicitud.',
  accessLogLink: 'Quién ha visto mis datos',
  consentsLink: 'Mis consentimientos',
  accessLogHeading: 'Quién ha visto mis datos',
  accessLogIntro: 'Cada acceso a sus datos y cada cambio de sus consentimientos se anota en un registro que no puede alterarse sin que se note. Cada entrada se comprueba con el punto de control firmado del registro.',
  accessLogEmpty: 'Todavía no hay nada registrado sobre usted.',
  checkpointNote: (size, at, signer) => `Comprobado con el punto de control firmado de ${size} entradas del ${at}, firmado por ${signer}.`,
  colWhen: 'Cuándo',
  colWho: 'Quién',
  colRole: 'Función',
  colOrganisation: 'Organización',
  colCountry: 'País',
  colWhat: 'Qué',
  colWhy: 'Por qué',
  colOutcome: 'Resultado',
  colVerified: 'En el registro',
  verifiedYes: 'Verificado',
  verifiedNo: 'No verificado',
  outcomeSuccess: 'Realizado',
  outcomeFailed: 'Denegado o fallido',
  sentence: (p) =>
    `${p.roles} de ${p.countries} pueden leer sus ${p.sections} ${p.purposes}${p.from === undefined ? '' : ` desde el ${p.from}`}${p.until === undefined ? ', sin fecha de fin' : ` hasta el ${p.until}`}.`,
  optOutSentence: (from, until) =>
    `Nadie en el extranjero puede leer su historia clínica resumida${from === undefined ? '' : ` desde el ${from}`}${until === undefined ? '' : ` hasta el ${until}`} (exclusión).`,
  fieldMessages: {
    'the period must end after it starts': 'La fecha de fin debe ser posterior a la de inicio.',
    'the period is already over': 'La fecha de fin ya ha pasado.',
    'not a date (YYYY-MM-DD) or date-time with offset': 'Indique una fecha como AAAA-MM-DD.',
    required: 'Elija al menos una opción.',
    unknown: 'Elija de la lista.',
  },
  fieldNames: { countries: 'Países', roles: 'Profesionales', purposes: 'Finalidad', sections: 'Partes de su historia clínica resumida', 'period.start': 'Desde', 'period.end': 'Hasta', form: 'Formulario' },
  viewerTitle: 'Visor de historia clínica resumida',
  viewerSignInHeading: 'Acceso de profesionales sanitarios',
  personIdLabel: 'Su identificador personal eID',
  personIdHint: 'Profesionales de prueba del entorno sandbox, por ejemplo ES/ES/12345678Z (médica).',
  purposeLabel: 'Finalidad del acceso',
  signInButton: 'Acceder',
  sandboxNote:
    'Sandbox: esta página obtiene una aserción eIDAS firmada del proveedor de identidad del sandbox. En un despliegue real, la historia clínica electrónica del hospital identifica al profesional y llama a la API de la pasarela.',
  viewerDisabled: 'El acceso desde esta página solo está disponible en el sandbox. En un despliegue real, utilice la historia clínica electrónica de su hospital.',
  signInFailed: 'No se pudo iniciar sesión: el proveedor de identidad no conoce a esta persona o el registro nacional no tiene una función activa para ella.',
  signedInAsHcp: (name, role, org) => `Sesión iniciada como ${name} (${role}, ${org})`,
  identifyHeading: 'Buscar un paciente de otro país',
  patientFrom: (country) => `Paciente de ${country}`,
  noSearchMasks: 'No hay conectado ningún otro país con un formulario de búsqueda conocido.',
  birthDateLabel: 'Fecha de nacimiento',
  searchButton: 'Buscar',
  identifierInvalid: 'No es un identificador válido para ese país.',
  cprBirthDateMismatch: 'El número CPR no coincide con la fecha de nacimiento.',
  dniLetterWrong: 'La letra de control del DNI es incorrecta.',
  birthDateInvalid: 'Indique la fecha de nacimiento como AAAA-MM-DD.',
  noMatch: 'No se ha encontrado ningún paciente. Los datos pueden ser incorrectos o el paciente no ha consentido el acceso desde su país y su función.',
  moreAttributes: 'Se necesitan más datos para identificar al paciente.',
  matchHeading: 'Paciente encontrado',
  openSummary: 'Abrir la historia clínica resumida',
  born: 'Fecha de nacimiento',
  gender: 'Sexo',
  newSearch: 'Nueva búsqueda',
  summaryOf: (name) => `Historia clínica resumida de ${name}`,
  documentLabel: 'Documento',
  authorLabel: 'Autor',
  provenanceHeading: 'Procedencia',
  signedBy: (signer, when) => `Firmado por ${signer} el ${when}; firma verificada por esta pasarela.`,
  basisConsent: 'Comunicado con el consentimiento del paciente.',
  basisBreakGlass: 'Comunicado según la política de acceso de urgencia.',
  withheld: 'Retenido por el consentimiento del paciente',
  emptySection: 'Sin entradas',
  notTranslated: '(sin traducción)',
  original: 'original',
  narrativeHeading: 'Texto del documento',
  narrativeNote: 'Tal como lo escribió el autor; se ha eliminado el contenido no seguro.',
  colSubstance: 'Sustancia o agente',
  colType: 'Tipo',
  colCriticality: 'Criticidad',
  colStatus: 'Estado',
  colOnset: 'Inicio',
  colReaction: 'Reacción',
  colProblem: 'Problema',
  colSeverity: 'Gravedad',
  colMedication: 'Medicamento',
  colDosage: 'Posología',
  colSince: 'Desde',
  colTest: 'Prueba',
  colValue: 'Valor',
  colDate: 'Fecha',
  colItem: 'Elemento',
  colKind: 'Clase',
  noteHeading: 'Enviar una nota al país de origen',
  noteLabel: 'Nota para el médico del paciente en su país',
  noteButton: 'Enviar',
  noteHint: 'Se envía al país del paciente como nota clínica (FHIR DocumentReference); se entrega aunque ese país no esté accesible ahora.',
  noteQueued: (id) => `Su nota se ha guardado y se entregará al país del paciente. Número de seguimiento: ${id}`,
  noteEmpty: 'Escriba primero una nota.',
  noteTooLong: (max) => `Una nota tiene como máximo ${max} caracteres.`,
  backToSummary: 'Volver a la historia clínica resumida',
  summaryRefused: 'La historia clínica resumida no está disponible: el consentimiento del paciente no cubre esta solicitud o la referencia ha caducado. Vuelva a buscar.',
};

export const MESSAGES: Readonly<Record<Lang, Messages>> = { da, en, es };
