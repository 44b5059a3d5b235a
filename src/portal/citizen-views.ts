/**
 * Pages of the citizen portal (country A): sign-in, consents (list in plain language, grant form,
 * revoke buttons) and the access log. Pure: values in, markup out.
 */
import type { StoredConsent } from '../consent/repository.js';
import { IPS_SECTIONS, ISCO_ROLES, PURPOSES } from '../consent/model.js';
import { html, url, type HtmlValue, type SafeHtml } from './html.js';
import { AUDIT_WHAT, countryName, formatDate, formatDateTime, formatList, LOCALES, MESSAGES, PURPOSE_NAMES, PURPOSE_PHRASES, ROLE_NAMES, ROLE_TITLES, SECTION_NAMES, type Lang } from './i18n.js';
import type { AccessLogView } from '../audit/access-log.js';

export const PORTAL_PATH = '/portal';
export const PORTAL_LANGS: readonly Lang[] = ['da', 'en'];

/** Where a date-only bound the citizen wrote is shown as written; otherwise the instant's day. */
function boundText(written: string | undefined, instant: Date | null, lang: Lang, kind: 'start' | 'end'): string | undefined {
  if (written !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(written)) return formatDate(new Date(`${written}T00:00:00Z`), lang);
  if (instant === null) return undefined;
  // Ends are exclusive instants: the last covered moment is just before.
  return formatDate(kind === 'end' ? new Date(instant.getTime() - 1) : instant, lang);
}

/** Plain section names in IPS order (Problems before Allergies, as the summary shows them). */
function sectionNames(codes: readonly string[], lang: Lang): string[] {
  const order = IPS_SECTIONS.map((s) => s.code as string);
  return [...codes]
    .sort((a, b) => order.indexOf(a) - order.indexOf(b))
    .map((c) => {
      const t = SECTION_NAMES[c]?.[lang] ?? IPS_SECTIONS.find((s) => s.code === c)?.title ?? c;
      // Mid-sentence, Danish and Spanish nouns are lower case; English keeps the section names.
      return lang === 'en' ? t : t.toLocaleLowerCase(LOCALES[lang]);
    });
}

/** "Physicians in Spain may read your Allergies and Problems for treatment until 3 December 2026." */
export function describeConsent(c: StoredConsent, lang: Lang, now: Date): string {
  const m = MESSAGES[lang];
  const period = c.resource.provision.period;
  const from = c.periodStart.getTime() > now.getTime() ? boundText(period?.start, c.periodStart, lang, 'start') : undefined;
  const until = c.periodEnd === null ? undefined : boundText(period?.end, c.periodEnd, lang, 'end');
  if (c.kind === 'opt-out') return m.optOutSentence(from, until);
  const roles = c.roles.map((r) => ROLE_NAMES[r]?.[lang] ?? r);
  const rolesText = formatList(roles.map((r, i) => (i === 0 ? r : r.toLocaleLowerCase(LOCALES[lang]))), lang);
  return m.sentence({
    roles: rolesText,
    countries: formatList(c.countries.map((cc) => countryName(cc, lang)), lang),
    sections: formatList(sectionNames(c.sections, lang), lang),
    purposes: formatList(c.purposes.map((p) => PURPOSE_PHRASES[p]?.[lang] ?? p), lang),
    from,
    until,
  });
}

export function consentState(c: StoredConsent, now: Date): 'active' | 'revoked' | 'expired' | 'future' {
  if (c.status === 'revoked') return 'revoked';
  if (c.periodEnd !== null && c.periodEnd.getTime() <= now.getTime()) return 'expired';
  if (c.periodStart.getTime() > now.getTime()) return 'future';
  return 'active';
}

export function signInBody(lang: Lang): SafeHtml {
  const m = MESSAGES[lang];
  const returnTo = url(PORTAL_PATH, { lang });
  return html`<h1>${m.portalTitle}</h1>
<p class="lead">${m.portalIntro}</p>
<h2>${m.signInHeading}</h2>
<p>${m.signInText}</p>
<p><a class="button" href="${url('/api/v1/auth/login', { return_to: returnTo })}">${m.signInLink}</a></p>`;
}

export interface GrantFormState {
  readonly countries: readonly string[];
  readonly roles: readonly string[];
  readonly purposes: readonly string[];
  readonly sections: readonly string[];
  readonly start: string;
  readonly end: string;
}

/** One problem with the form, keyed by the field it concerns (`countries`, `period.end`, ...). */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export interface ConsentsPageModel {
  readonly lang: Lang;
  readonly name: string | undefined;
  readonly consents: readonly StoredConsent[];
  readonly grantableCountries: readonly string[];
  readonly form: GrantFormState;
  readonly problems: readonly FieldProblem[];
  readonly notice: 'created' | 'revoked' | undefined;
  readonly csrf: string;
  readonly now: Date;
}

function checkbox(name: string, value: string, label: HtmlValue, checked: boolean, describedBy: string | undefined): SafeHtml {
  const id = `${name}-${value}`.replace(/[^A-Za-z0-9_-]/g, '_');
  return html`<label for="${id}"><input type="checkbox" id="${id}" name="${name}" value="${value}"${checked ? html` checked` : ''}${describedBy === undefined ? '' : html` aria-describedby="${describedBy}"`}><span>${label}</span></label>`;
}

function choiceGroup(
  name: string,
  legend: string,
  options: ReadonlyArray<{ value: string; label: HtmlValue }>,
  selected: readonly string[],
  problems: readonly FieldProblem[],
): SafeHtml {
  const mine = problems.filter((p) => p.field === name);
  const errorId = mine.length > 0 ? `${name}-error` : undefined;
  return html`<fieldset id="field-${name}"><legend>${legend}</legend>
${errorId === undefined ? '' : html`<span class="field-error" id="${errorId}">${mine.map((p) => p.message).join(' ')}</span>`}
<div class="choices">${options.map((o) => checkbox(name, o.value, o.label, selected.includes(o.value), errorId))}</div></fieldset>`;
}

function dateInput(id: string, name: string, label: string, value: string, problems: readonly FieldProblem[], hint?: string): SafeHtml {
  const mine = problems.filter((p) => p.field === `period.${name}`);
  const describedBy = [hint === undefined ? undefined : `${id}-hint`, mine.length > 0 ? `${id}-error` : undefined].filter((x) => x !== undefined).join(' ');
  return html`<label class="block" for="${id}">${label}</label>
${hint === undefined ? '' : html`<span class="hint" id="${id}-hint">${hint}</span>`}
${mine.length === 0 ? '' : html`<span class="field-error" id="${id}-error">${mine.map((p) => p.message).join(' ')}</span>`}
<input type="date" id="${id}" name="${name}" value="${value}"${name === 'start' ? html` required` : ''}${describedBy.length === 0 ? '' : html` aria-describedby="${describedBy}"`}${mine.length > 0 ? html` aria-invalid="true"` : ''}>`;
}

export function consentsBody(p: ConsentsPageModel): SafeHtml {
  const { lang, now } = p;
  const m = MESSAGES[lang];
  const current = p.consents.filter((c) => {
    const s = consentState(c, now);
    return s === 'active' || s === 'future';
  });
  const past = p.consents.filter((c) => !current.includes(c));
  const revokeForm = (c: StoredConsent, sentence: string): SafeHtml =>
    html`<form method="post" action="${url(`${PORTAL_PATH}/consents/${encodeURIComponent(c.id)}/revoke`, { lang })}"><input type="hidden" name="csrf" value="${p.csrf}"><button type="submit" class="danger" aria-label="${m.revokeLabel(sentence)}">${m.revoke}</button></form>`;
  const item = (c: StoredConsent, withRevoke: boolean): SafeHtml => {
    const sentence = describeConsent(c, lang, now);
    const state = consentState(c, now);
    const status =
      state === 'active'
        ? m.consentActive
        : state === 'future'
          ? m.consentNotYetStarted
          : state === 'expired'
            ? m.consentExpired
            : m.consentRevokedOn(formatDate(c.revokedAt ?? now, lang));
    return html`<li data-consent-id="${c.id}"><p>${sentence} <span class="status${state === 'active' ? ' active' : ''}">${status} · ${m.consentGivenOn(formatDate(c.createdAt, lang))}</span></p>${withRevoke ? revokeForm(c, sentence) : ''}</li>`;
  };
  const notice =
    p.notice === undefined ? '' : html`<div class="notice ok" role="status"><p>${p.notice === 'created' ? m.consentCreated : m.consentRevoked}</p></div>`;
  const errors =
    p.problems.length === 0
      ? ''
      : html`<div class="errors" role="alert" tabindex="-1" id="form-errors"><h2>${m.formErrorsHeading}</h2><ul>${p.problems.map(
          (e) => html`<li><a href="#${e.field.startsWith('period.') ? (e.field === 'period.end' ? 'end' : 'start') : `field-${e.field}`}">${m.fieldNames[e.field] ?? m.fieldNames['form'] ?? ''}: ${e.message}</a></li>`,
        )}</ul></div>`;
  const f = p.form;
  const grant =
    p.grantableCountries.length === 0
      ? html`<p>${m.noOtherCountries}</p>`
      : html`<form method="post" action="${url(`${PORTAL_PATH}/consents`, { lang })}" novalidate>
<input type="hidden" name="csrf" value="${p.csrf}">
${choiceGroup('countries', m.countriesLegend, p.grantableCountries.map((c) => ({ value: c, label: countryName(c, lang) })), f.countries, p.problems)}
${choiceGroup('roles', m.rolesLegend, ISCO_ROLES.map((r) => ({ value: r.code, label: ROLE_NAMES[r.code]?.[lang] ?? r.display })), f.roles, p.problems)}
${choiceGroup('purposes', m.purposesLegend, PURPOSES.map((x) => ({ value: x.code, label: PURPOSE_NAMES[x.code]?.[lang] ?? x.display })), f.purposes, p.problems)}
${choiceGroup('sections', m.sectionsLegend, IPS_SECTIONS.map((s) => ({ value: s.code, label: SECTION_NAMES[s.code]?.[lang] ?? s.title })), f.sections, p.problems)}
<fieldset><legend>${m.periodLegend}</legend>
${dateInput('start', 'start', m.startLabel, f.start, p.problems)}
${dateInput('end', 'end', m.endLabel, f.end, p.problems, m.endHint)}
</fieldset>
<p><button type="submit">${m.grantButton}</button></p>
</form>`;
  return html`<h1>${m.portalTitle}</h1>
${p.name === undefined ? '' : html`<p class="lead">${m.signedInAs(p.name)}</p>`}
${notice}
${errors}
<h2 id="consents-heading">${m.yourConsents}</h2>
${current.length === 0 ? html`<p>${m.noConsents}</p>` : html`<ul class="consents" aria-labelledby="consents-heading">${current.map((c) => item(c, true))}</ul>`}
<h2 id="grant-heading">${m.grantHeading}</h2>
${grant}
${past.length === 0 ? '' : html`<h2 id="past-heading">${m.revokedHeading}</h2><ul class="consents" aria-labelledby="past-heading">${past.map((c) => item(c, c.status === 'active'))}</ul>`}`;
}

/** An audit record's role (the ISCO-08 display the assertion carried) in the reader's language. */
function roleTitle(display: string, lang: Lang): string {
  const code = ISCO_ROLES.find((r) => r.display === display || r.code === display)?.code;
  return (code === undefined ? undefined : ROLE_TITLES[code]?.[lang]) ?? display;
}

export function accessLogBody(lang: Lang, view: AccessLogView, signer: string): SafeHtml {
  const m = MESSAGES[lang];
  const rows = view.entries.map((e) => {
    const s = e.summary;
    const country = s?.country;
    return html`<tr>
<td>${formatDateTime(e.recordedAt, lang)}</td>
<td>${s?.who ?? '—'}</td>
<td>${s?.role === undefined ? '—' : roleTitle(s.role, lang)}</td>
<td>${s?.organization ?? '—'}</td>
<td>${country === undefined ? '—' : countryName(country, lang)}</td>
<td>${s === undefined ? '—' : (AUDIT_WHAT[s.what]?.[lang] ?? s.what)}</td>
<td>${s === undefined || s.why.length === 0 ? '—' : formatList(s.why.map((w) => PURPOSE_NAMES[w]?.[lang] ?? w), lang)}</td>
<td>${s === undefined ? '—' : s.outcome === 'success' ? m.outcomeSuccess : m.outcomeFailed}</td>
<td>${e.verified ? html`<span class="verified">✓ ${m.verifiedYes}</span>` : html`<span class="unverified">✗ ${m.verifiedNo}</span>`}</td>
</tr>`;
  });
  const cp = view.checkpoint;
  return html`<h1>${m.accessLogHeading}</h1>
<p class="lead">${m.accessLogIntro}</p>
${cp === undefined ? '' : html`<p class="notice">${m.checkpointNote(cp.treeSize, formatDateTime(cp.signedAt, lang), signer)}</p>`}
${view.entries.length === 0
  ? html`<p>${m.accessLogEmpty}</p>`
  : html`<div class="table-wrap"><table><caption class="sr-only">${m.accessLogHeading}</caption><thead><tr>
<th scope="col">${m.colWhen}</th><th scope="col">${m.colWho}</th><th scope="col">${m.colRole}</th><th scope="col">${m.colOrganisation}</th><th scope="col">${m.colCountry}</th><th scope="col">${m.colWhat}</th><th scope="col">${m.colWhy}</th><th scope="col">${m.colOutcome}</th><th scope="col">${m.colVerified}</th>
</tr></thead><tbody>${rows}</tbody></table></div>`}`;
}
