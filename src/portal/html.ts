/**
 * The one way pages are built: an `html` tagged template that escapes every interpolated value,
 * unless it is already `SafeHtml` (the result of another `html` template, or `raw()` of markup that
 * went through the narrative sanitiser). Arrays are joined, `undefined`/`null`/`false` render as
 * nothing, so conditional fragments read naturally.
 *
 * Escaping covers element content and double- or single-quoted attribute values (OWASP XSS
 * prevention cheat sheet, rules 1 and 2). Templates never put values in unquoted attributes, in
 * URLs without `url()`, in `<script>` or in `style`: pages have neither.
 */

const SAFE = Symbol('SafeHtml');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly value: string;
}

function safe(value: string): SafeHtml {
  return { [SAFE]: true, value };
}

export function isSafeHtml(v: unknown): v is SafeHtml {
  return typeof v === 'object' && v !== null && SAFE in v;
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === undefined || value === null || value === false) return '';
  if (typeof value === 'string') return escapeHtml(value);
  if (typeof value === 'number' || typeof value === 'boolean') return escapeHtml(String(value));
  if (isSafeHtml(value)) return value.value;
  return value.map(render).join('');
}

export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return safe(out);
}

/**
 * Markup that is trusted as it is. Only for output of `sanitizeNarrative` (./sanitize.ts) and for
 * constant markup written in this folder; never for anything a request or a document supplied.
 */
export function raw(trustedMarkup: string): SafeHtml {
  return safe(trustedMarkup);
}

/** Joins fragments with a separator (both escaped unless already safe). */
export function join(parts: readonly HtmlValue[], separator: HtmlValue): SafeHtml {
  return safe(parts.map(render).join(render(separator)));
}

/**
 * A same-origin path with an escaped query, for `href`/`action`. Paths are written in this folder;
 * query values are user- or peer-supplied and percent-encoded here.
 */
export function url(path: string, query: Readonly<Record<string, string | undefined>> = {}): string {
  if (!path.startsWith('/') || path.startsWith('//')) throw new TypeError('url(): only same-origin absolute paths');
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, v);
  const q = params.toString();
  return q.length === 0 ? path : `${path}?${q}`;
}
