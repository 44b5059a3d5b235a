/**
 * Pages of the professional viewer (country B): sign-in (sandbox), patient search with one mask per
 * country, search results, and the Patient Summary page around summary-view.ts. Pure.
 */
import type { DiscoveryResult } from '../crossborder/provider.js';
import { html, url, type SafeHtml } from './html.js';
import { countryName, MESSAGES, type Lang } from './i18n.js';
import type { SearchMask } from './search-masks.js';
import { FHIR_GENDER, translateCode } from './terminology.js';

export const VIEWER_PATH = '/viewer';
export const VIEWER_LANGS: readonly Lang[] = ['es', 'da', 'en'];

export function viewerSignInBody(p: { lang: Lang; sandbox: boolean; csrf: string; failed: boolean; personId: string }): SafeHtml {
  const m = MESSAGES[p.lang];
  if (!p.sandbox) {
    return html`<h1>${m.viewerSignInHeading}</h1><div class="notice warn" role="status"><p>${m.viewerDisabled}</p></div>`;
  }
  return html`<h1>${m.viewerSignInHeading}</h1>
<p class="notice">${m.sandboxNote}</p>
${p.failed ? html`<div class="errors" role="alert"><p>${m.signInFailed}</p></div>` : ''}
<form method="post" action="${url(`${VIEWER_PATH}/sign-in`, { lang: p.lang })}">
<input type="hidden" name="csrf" value="${p.csrf}">
<label class="block" for="personId">${m.personIdLabel}</label>
<span class="hint" id="personId-hint">${m.personIdHint}</span>
<input type="text" id="personId" name="personId" required maxlength="256" autocomplete="username" spellcheck="false" aria-describedby="personId-hint" value="${p.personId}">
<fieldset><legend>${m.purposeLabel}</legend><div class="choices">
<label for="purpose-treat"><input type="radio" id="purpose-treat" name="purpose" value="TREAT" checked><span>${lang3(p.lang, 'Treatment', 'Behandling', 'Tratamiento')}</span></label>
<label for="purpose-etreat"><input type="radio" id="purpose-etreat" name="purpose" value="ETREAT"><span>${lang3(p.lang, 'Emergency treatment', 'Akut behandling', 'Tratamiento de urgencia')}</span></label>
</div></fieldset>
<p><button type="submit">${m.signInButton}</button></p>
</form>`;
}

function lang3(lang: Lang, en: string, da: string, es: string): string {
  return lang === 'da' ? da : lang === 'es' ? es : en;
}

export interface SearchState {
  readonly country: string;
  readonly identifier: string;
  readonly birthDate: string;
  readonly problems: ReadonlyArray<{ readonly field: 'identifier' | 'birthDate'; readonly message: string }>;
}

function searchForm(lang: Lang, mask: SearchMask, csrf: string, state: SearchState | undefined): SafeHtml {
  const m = MESSAGES[lang];
  const mine = state?.country === mask.country ? state : undefined;
  const cc = mask.country.toLowerCase();
  const problem = (f: 'identifier' | 'birthDate'): string | undefined => mine?.problems.find((p) => p.field === f)?.message;
  const idError = problem('identifier');
  const dateError = problem('birthDate');
  return html`<form method="post" action="${url(`${VIEWER_PATH}/identify`, { lang })}" class="mask" novalidate>
<fieldset><legend>${m.patientFrom(countryName(mask.country, lang))}</legend>
<input type="hidden" name="csrf" value="${csrf}">
<input type="hidden" name="country" value="${mask.country}">
<label class="block" for="identifier-${cc}">${mask.label[lang]}</label>
${idError === undefined ? '' : html`<span class="field-error" id="identifier-${cc}-error">${idError}</span>`}
<input type="text" id="identifier-${cc}" name="identifier" required inputmode="${mask.inputMode}" pattern="${mask.pattern}" placeholder="${mask.placeholder}" autocomplete="off" spellcheck="false" value="${mine?.identifier ?? ''}"${idError === undefined ? '' : html` aria-invalid="true" aria-describedby="identifier-${cc}-error"`}>
<label class="block" for="birthDate-${cc}">${m.birthDateLabel}</label>
${dateError === undefined ? '' : html`<span class="field-error" id="birthDate-${cc}-error">${dateError}</span>`}
<input type="date" id="birthDate-${cc}" name="birthDate" required value="${mine?.birthDate ?? ''}"${dateError === undefined ? '' : html` aria-invalid="true" aria-describedby="birthDate-${cc}-error"`}>
<p><button type="submit">${m.searchButton}</button></p>
</fieldset>
</form>`;
}

export function viewerHomeBody(p: { lang: Lang; who: string; masks: readonly SearchMask[]; csrf: string; state?: SearchState }): SafeHtml {
  const m = MESSAGES[p.lang];
  const hasErrors = p.state !== undefined && p.state.problems.length > 0;
  return html`<h1>${m.viewerTitle}</h1>
<p class="lead">${p.who}</p>
${hasErrors ? html`<div class="errors" role="alert"><h2>${m.formErrorsHeading}</h2><ul>${p.state?.problems.map((x) => html`<li>${x.message}</li>`)}</ul></div>` : ''}
<h2>${m.identifyHeading}</h2>
${p.masks.length === 0 ? html`<p>${m.noSearchMasks}</p>` : html`<div class="masks">${p.masks.map((mask) => searchForm(p.lang, mask, p.csrf, p.state))}</div>`}`;
}

export function viewerResultsBody(p: { lang: Lang; who: string; country: string; result: DiscoveryResult }): SafeHtml {
  const m = MESSAGES[p.lang];
  const back = html`<p><a href="${url(VIEWER_PATH, { lang: p.lang })}">${m.newSearch}</a></p>`;
  if (p.result.outcome === 'no-match') return html`<h1>${m.viewerTitle}</h1><p class="lead">${p.who}</p><div class="notice warn" role="status"><p>${m.noMatch}</p></div>${back}`;
  if (p.result.outcome === 'more-attributes-needed') {
    return html`<h1>${m.viewerTitle}</h1><p class="lead">${p.who}</p><div class="notice warn" role="status"><p>${m.moreAttributes}</p></div>${back}`;
  }
  const items = p.result.matches.map((match) => {
    const gender = translateCode(FHIR_GENDER, match.gender, p.lang);
    return html`<li><dl class="facts">
<dt>${m.patientFrom(countryName(p.country, p.lang))}</dt><dd><strong>${match.name ?? '—'}</strong></dd>
<dt>${m.born}</dt><dd>${match.birthDate ?? '—'}</dd>
<dt>${m.gender}</dt><dd>${gender?.text ?? '—'}</dd>
</dl>
<p><a class="button" href="${url(`${VIEWER_PATH}/patients/${encodeURIComponent(p.country)}/${encodeURIComponent(match.ref)}`, { lang: p.lang })}">${m.openSummary}</a></p></li>`;
  });
  return html`<h1>${m.matchHeading}</h1><p class="lead">${p.who}</p><ul class="consents">${items}</ul>${back}`;
}

/** "Submit a note back home": posts to the viewer, which submits as `POST .../documents` does. */
export function noteForm(p: { lang: Lang; country: string; ref: string; csrf: string; idempotencyKey: string; note?: string; problem?: string }): SafeHtml {
  const m = MESSAGES[p.lang];
  return html`<section aria-labelledby="note-heading" class="ips"><h2 id="note-heading">${m.noteHeading}</h2>
${p.problem === undefined ? '' : html`<div class="errors" role="alert"><p id="note-error">${p.problem}</p></div>`}
<form method="post" action="${url(`${VIEWER_PATH}/patients/${encodeURIComponent(p.country)}/${encodeURIComponent(p.ref)}/notes`, { lang: p.lang })}">
<input type="hidden" name="csrf" value="${p.csrf}">
<input type="hidden" name="idempotencyKey" value="${p.idempotencyKey}">
<label class="block" for="note">${m.noteLabel}</label>
<span class="hint" id="note-hint">${m.noteHint}</span>
<textarea id="note" name="note" required maxlength="4000" aria-describedby="note-hint${p.problem === undefined ? '' : ' note-error'}">${p.note ?? ''}</textarea>
<p><button type="submit">${m.noteButton}</button></p>
</form></section>`;
}

export function noteQueuedBody(p: { lang: Lang; who: string; country: string; ref: string; trackingId: string }): SafeHtml {
  const m = MESSAGES[p.lang];
  return html`<h1>${m.noteHeading}</h1><p class="lead">${p.who}</p><div class="notice ok" role="status"><p>${m.noteQueued(p.trackingId)}</p></div>
<p><a href="${url(`${VIEWER_PATH}/patients/${encodeURIComponent(p.country)}/${encodeURIComponent(p.ref)}`, { lang: p.lang })}">${m.backToSummary}</a></p>`;
}

export function viewerRefusedBody(lang: Lang, who: string): SafeHtml {
  const m = MESSAGES[lang];
  return html`<h1>${m.viewerTitle}</h1><p class="lead">${who}</p><div class="notice warn" role="status"><p>${m.summaryRefused}</p></div><p><a href="${url(VIEWER_PATH, { lang })}">${m.newSearch}</a></p>`;
}
