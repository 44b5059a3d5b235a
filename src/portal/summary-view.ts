/**
 * The Patient Summary for humans: an IPS document Bundle (already validated by
 * validateIpsDocument and filtered by the patient's consent at home) rendered as sections in the
 * Composition's order, with tables for allergies, problems, medications, results and the other
 * entries, coded values in the reader's language with the document's own display beside them,
 * withheld sections said plainly, and the author's narrative only after sanitising.
 *
 * The document is still data from outside: every field is narrowed from `unknown` here and every
 * value is escaped by `html`; only `sanitizeNarrative` output is embedded as markup.
 */
import { html, raw, type HtmlValue, type SafeHtml } from './html.js';
import { countryName, formatDateTime, MESSAGES, type Lang, type Messages } from './i18n.js';
import { sanitizeNarrative } from './sanitize.js';
import {
  FHIR_ALLERGY_CATEGORY,
  FHIR_ALLERGY_CRITICALITY,
  FHIR_ALLERGY_TYPE,
  FHIR_GENDER,
  FHIR_IMMUNIZATION_STATUS,
  FHIR_MEDICATION_STATEMENT_STATUS,
  FHIR_OBSERVATION_STATUS,
  LIST_EMPTY_REASON,
  LOINC,
  sectionTitle,
  translateCode,
  translateConcept,
  type CodingLike,
  type ConceptLike,
  type Translated,
} from './terminology.js';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function obj(v: unknown): Json | undefined {
  return isObject(v) ? v : undefined;
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? (v as unknown[]) : [];
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function concept(v: unknown): ConceptLike | undefined {
  const c = obj(v);
  if (c === undefined) return undefined;
  const coding: CodingLike[] = arr(c['coding'])
    .filter(isObject)
    .map((x) => ({ system: str(x['system']), code: str(x['code']), display: str(x['display']) }));
  return { coding, text: str(c['text']) };
}

/** FHIR date/dateTime as an unambiguous ISO text (partial dates stay partial). */
function fhirDate(v: unknown): string | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const m = /^(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:T(\d{2}:\d{2}))?/.exec(s);
  if (m === null) return undefined;
  return m[2] === undefined ? m[1] : `${m[1] ?? ''} ${m[2]}`;
}

/** Resolves references inside the document: by fullUrl, by `Type/id`, and `#id` in `contained`. */
class DocumentIndex {
  readonly #byKey = new Map<string, Json>();

  constructor(bundle: Json) {
    for (const e of arr(bundle['entry'])) {
      const entry = obj(e);
      const resource = obj(entry?.['resource']);
      if (entry === undefined || resource === undefined) continue;
      const fullUrl = str(entry['fullUrl']);
      if (fullUrl !== undefined) this.#byKey.set(fullUrl, resource);
      const type = str(resource['resourceType']);
      const id = str(resource['id']);
      if (type !== undefined && id !== undefined) this.#byKey.set(`${type}/${id}`, resource);
    }
  }

  resolve(reference: unknown, from?: Json): Json | undefined {
    const ref = str(obj(reference)?.['reference']);
    if (ref === undefined) return undefined;
    if (ref.startsWith('#')) return arr(from?.['contained']).filter(isObject).find((c) => str(c['id']) === ref.slice(1));
    const direct = this.#byKey.get(ref);
    if (direct !== undefined) return direct;
    // An absolute URL ending in Type/id
    const m = /([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
    return m?.[1] === undefined ? undefined : this.#byKey.get(m[1]);
  }
}

function humanName(v: unknown): string | undefined {
  const n = obj(arr(v)[0]);
  if (n === undefined) return undefined;
  const text = str(n['text']);
  if (text !== undefined) return text;
  const parts = [...arr(n['prefix']).map(str), ...arr(n['given']).map(str), str(n['family'])].filter((p): p is string => p !== undefined && p.length > 0);
  return parts.length === 0 ? undefined : parts.join(' ');
}

/** A coded value: the reader's text, the original beside it, or the "not translated" flag. */
function coded(t: Translated | undefined, m: Messages): HtmlValue {
  if (t === undefined) return '';
  if (!t.translated) return html`${t.original} <span class="untranslated">${m.notTranslated}</span>`;
  if (t.text === t.original) return t.text;
  return html`${t.text} <span class="orig">${m.original}: ${t.original}</span>`;
}

function codedList(ts: ReadonlyArray<Translated | undefined>, m: Messages): HtmlValue {
  const present = ts.filter((t): t is Translated => t !== undefined);
  return present.map((t, i) => html`${i > 0 ? html`<br>` : ''}${coded(t, m)}`);
}

function table(caption: string, headers: readonly string[], rows: readonly (readonly HtmlValue[])[]): SafeHtml {
  return html`<div class="table-wrap"><table><caption class="sr-only">${caption}</caption><thead><tr>${headers.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead><tbody>${rows.map(
    (r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`,
  )}</tbody></table></div>`;
}

function quantity(v: unknown): string | undefined {
  const q = obj(v);
  const value = num(q?.['value']);
  if (q === undefined || value === undefined) return undefined;
  const unit = str(q['unit']) ?? str(q['code']) ?? '';
  return `${str(q['comparator']) ?? ''}${value} ${unit}`.trim();
}

interface Ctx {
  readonly lang: Lang;
  readonly m: Messages;
  readonly index: DocumentIndex;
}

function medicationConcept(statement: Json, ctx: Ctx): ConceptLike | undefined {
  const direct = concept(statement['medicationCodeableConcept']);
  if (direct !== undefined) return direct;
  const medication = ctx.index.resolve(statement['medicationReference'], statement);
  return concept(medication?.['code']);
}

function allergyRows(items: readonly Json[], ctx: Ctx): HtmlValue[][] {
  const { lang, m } = ctx;
  return items.map((a) => [
    coded(translateConcept(concept(a['code']), lang), m),
    codedList([translateCode(FHIR_ALLERGY_TYPE, str(a['type']), lang), ...arr(a['category']).map((c) => translateCode(FHIR_ALLERGY_CATEGORY, str(c), lang))], m),
    coded(translateCode(FHIR_ALLERGY_CRITICALITY, str(a['criticality']), lang), m),
    coded(translateConcept(concept(a['clinicalStatus']), lang), m),
    fhirDate(a['onsetDateTime']) ?? fhirDate(a['recordedDate']) ?? '',
    codedList(
      arr(a['reaction']).flatMap((r) => arr(obj(r)?.['manifestation']).map((x) => translateConcept(concept(x), lang))),
      m,
    ),
  ]);
}

function conditionRows(items: readonly Json[], ctx: Ctx): HtmlValue[][] {
  const { lang, m } = ctx;
  return items.map((c) => [
    coded(translateConcept(concept(c['code']), lang), m),
    coded(translateConcept(concept(c['clinicalStatus']), lang), m),
    coded(translateConcept(concept(c['severity']), lang), m),
    fhirDate(c['onsetDateTime']) ?? fhirDate(obj(c['onsetPeriod'])?.['start']) ?? str(c['onsetString']) ?? fhirDate(c['recordedDate']) ?? '',
  ]);
}

function medicationRows(items: readonly Json[], ctx: Ctx): HtmlValue[][] {
  const { lang, m } = ctx;
  return items.map((s) => {
    const dosage = arr(s['dosage']).filter(isObject);
    return [
      coded(translateConcept(medicationConcept(s, ctx), lang), m),
      coded(translateCode(FHIR_MEDICATION_STATEMENT_STATUS, str(s['status']), lang), m),
      dosage.map((d, i) => html`${i > 0 ? html`<br>` : ''}${str(d['text']) ?? ''}${d['route'] === undefined ? '' : html` ${coded(translateConcept(concept(d['route']), lang), m)}`}`),
      fhirDate(obj(s['effectivePeriod'])?.['start']) ?? fhirDate(s['effectiveDateTime']) ?? fhirDate(s['authoredOn']) ?? '',
    ];
  });
}

function observationValue(o: Json, ctx: Ctx): HtmlValue {
  const q = quantity(o['valueQuantity']);
  if (q !== undefined) return q;
  if (o['valueCodeableConcept'] !== undefined) return coded(translateConcept(concept(o['valueCodeableConcept']), ctx.lang), ctx.m);
  const s = str(o['valueString']);
  if (s !== undefined) return s;
  const members = arr(o['hasMember']).map((r) => ctx.index.resolve(r)).filter((x): x is Json => x !== undefined);
  return members.map((member, i) => html`${i > 0 ? html`<br>` : ''}${coded(translateConcept(concept(member['code']), ctx.lang), ctx.m)}: ${observationValue(member, ctx)}`);
}

function observationRows(items: readonly Json[], ctx: Ctx): HtmlValue[][] {
  const { lang, m } = ctx;
  return items.map((o) => [
    coded(translateConcept(concept(o['code']), lang), m),
    observationValue(o, ctx),
    fhirDate(o['effectiveDateTime']) ?? fhirDate(obj(o['effectivePeriod'])?.['start']) ?? '',
    coded(translateCode(FHIR_OBSERVATION_STATUS, str(o['status']), lang), m),
  ]);
}

function otherRows(items: readonly Json[], ctx: Ctx): HtmlValue[][] {
  const { lang, m } = ctx;
  return items.map((r) => {
    const type = str(r['resourceType']) ?? '';
    const code = r['vaccineCode'] ?? r['code'] ?? r['type'];
    const date = fhirDate(r['occurrenceDateTime']) ?? fhirDate(r['performedDateTime']) ?? fhirDate(obj(r['performedPeriod'])?.['start']) ?? fhirDate(r['date']) ?? '';
    const status = type === 'Immunization' ? coded(translateCode(FHIR_IMMUNIZATION_STATUS, str(r['status']), lang), m) : (str(r['status']) ?? '');
    return [type, coded(translateConcept(concept(code), lang), m), date, status];
  });
}

function renderEntries(entries: readonly Json[], title: string, ctx: Ctx): SafeHtml[] {
  const { m } = ctx;
  const byType = (types: readonly string[]): Json[] => entries.filter((e) => types.includes(str(e['resourceType']) ?? ''));
  const out: SafeHtml[] = [];
  const allergies = byType(['AllergyIntolerance']);
  if (allergies.length > 0) out.push(table(title, [m.colSubstance, m.colType, m.colCriticality, m.colStatus, m.colOnset, m.colReaction], allergyRows(allergies, ctx)));
  const conditions = byType(['Condition']);
  if (conditions.length > 0) out.push(table(title, [m.colProblem, m.colStatus, m.colSeverity, m.colOnset], conditionRows(conditions, ctx)));
  const medications = byType(['MedicationStatement', 'MedicationRequest']);
  if (medications.length > 0) out.push(table(title, [m.colMedication, m.colStatus, m.colDosage, m.colSince], medicationRows(medications, ctx)));
  const observations = byType(['Observation']);
  if (observations.length > 0) out.push(table(title, [m.colTest, m.colValue, m.colDate, m.colStatus], observationRows(observations, ctx)));
  const known = new Set(['AllergyIntolerance', 'Condition', 'MedicationStatement', 'MedicationRequest', 'Observation']);
  const others = entries.filter((e) => !known.has(str(e['resourceType']) ?? ''));
  if (others.length > 0) out.push(table(title, [m.colKind, m.colItem, m.colDate, m.colStatus], otherRows(others, ctx)));
  return out;
}

function loincOf(section: Json): string | undefined {
  const coding = arr(obj(section['code'])?.['coding'])
    .filter(isObject)
    .find((c) => str(c['system']) === LOINC);
  return str(coding?.['code']);
}

function renderSection(section: Json, position: number, ctx: Ctx, from: Json): SafeHtml {
  const { lang, m } = ctx;
  const code = loincOf(section);
  const originalTitle = str(section['title']) ?? code ?? '';
  const translatedTitle = code === undefined ? undefined : sectionTitle(code, lang);
  const headingId = `section-${position}`;
  const heading =
    translatedTitle === undefined
      ? html`${originalTitle} <span class="untranslated">${m.notTranslated}</span>`
      : html`${translatedTitle} <span class="orig">${m.original}: ${originalTitle}</span>`;
  const emptyReason = concept(section['emptyReason']);
  const withheld = emptyReason?.coding?.some((c) => c.system === LIST_EMPTY_REASON && c.code === 'withheld') === true;
  if (withheld) {
    return html`<section class="ips withheld" aria-labelledby="${headingId}" data-loinc="${code ?? ''}"><h2 id="${headingId}">${heading}</h2><p><strong>${m.withheld}</strong></p></section>`;
  }
  const entries = arr(section['entry'])
    .map((r) => ctx.index.resolve(r, from))
    .filter((x): x is Json => x !== undefined);
  const tables = renderEntries(entries, translatedTitle ?? originalTitle, ctx);
  const empty =
    entries.length === 0
      ? html`<p>${emptyReason === undefined ? m.emptySection : coded(translateConcept(emptyReason, lang), m)}</p>`
      : '';
  const div = str(obj(section['text'])?.['div']);
  const narrative = div === undefined ? '' : sanitizeNarrative(div);
  const narrativeBlock =
    narrative.length === 0
      ? ''
      : html`<details open><summary>${m.narrativeHeading}</summary><p class="hint">${m.narrativeNote}</p><div class="narrative">${raw(narrative)}</div></details>`;
  return html`<section class="ips" aria-labelledby="${headingId}" data-loinc="${code ?? ''}"><h2 id="${headingId}">${heading}</h2>${empty}${tables}${narrativeBlock}</section>`;
}

export interface SummaryProvenance {
  readonly signerNcpId: string;
  readonly signerCountry: string;
  readonly signedAt: Date;
  readonly basis: 'consent' | 'break-glass';
}

export interface RenderedSummary {
  readonly patientName: string;
  readonly body: SafeHtml;
}

/** The whole document view. `bundle` passed validateIpsDocument: the first entry is the Composition. */
export function renderSummary(bundle: unknown, provenance: SummaryProvenance, lang: Lang): RenderedSummary {
  const m = MESSAGES[lang];
  const doc = obj(bundle) ?? {};
  const index = new DocumentIndex(doc);
  const ctx: Ctx = { lang, m, index };
  const composition = obj(obj(arr(doc['entry'])[0])?.['resource']) ?? {};
  const patient = index.resolve(composition['subject']) ?? {};
  const patientName = humanName(patient['name']) ?? '—';
  const author = index.resolve(arr(composition['author'])[0]);
  const authorName = author === undefined ? undefined : (humanName(author['name']) ?? str(author['name']));
  const sections = arr(composition['section']).filter(isObject);
  const gender = translateCode(FHIR_GENDER, str(patient['gender']), lang);
  const body = html`
<h1>${m.summaryOf(patientName)}</h1>
<dl class="facts">
<dt>${m.born}</dt><dd>${fhirDate(patient['birthDate']) ?? '—'}</dd>
<dt>${m.gender}</dt><dd>${gender === undefined ? '—' : coded(gender, m)}</dd>
<dt>${m.documentLabel}</dt><dd>${str(composition['title']) ?? ''} (${fhirDate(composition['date']) ?? ''})</dd>
${authorName === undefined ? '' : html`<dt>${m.authorLabel}</dt><dd>${authorName}</dd>`}
</dl>
<section aria-labelledby="provenance" class="notice">
<h2 id="provenance">${m.provenanceHeading}</h2>
<p>${m.signedBy(`${provenance.signerNcpId} (${countryName(provenance.signerCountry, lang)})`, formatDateTime(provenance.signedAt, lang))}</p>
<p>${provenance.basis === 'consent' ? m.basisConsent : m.basisBreakGlass}</p>
</section>
${sections.map((s, i) => renderSection(s, i + 1, ctx, composition))}
`;
  return { patientName, body };
}
