/**
 * The sanitiser for a document's own narrative (`text.div`) before it reaches a clinician's screen.
 * A peer signed the document, but what its author wrote is still data: it is shown only after
 * being reduced to the FHIR narrative rules (R4 narrative.html, invariant txt-1 "only contain
 * basic HTML formatting elements", txt-2 "no active content", txt-3 "no style attributes"),
 * made stricter still:
 *
 * - elements: the basic formatting and table elements of XHTML only; `script`, `style`, `iframe`,
 *   `object`, `embed`, `form`, inputs, media, `svg`/`math` are removed (their content too, where
 *   it would otherwise become visible code or text that was never meant to show);
 * - attributes: no event handlers, no `style`, no `class`/`id` (no page styling or DOM clobbering),
 *   only a few table and text attributes;
 * - links and images: nothing may leave the document. `a href` survives only as a same-document
 *   fragment (`#...`); `img` only with a same-document `src`, otherwise it becomes its alt text.
 *   `javascript:`, `data:` and every other scheme are dropped.
 *
 * Defence in depth: the page's CSP (no script, `img-src 'self'`) would block what slipped through.
 */
import { createRequire } from 'node:module';
import type sanitizeHtml from 'sanitize-html';

/**
 * sanitize-html (with its HTML and CSS parsers) is about 80 ms of module loading, and only the
 * viewer needs it: it is loaded on the first narrative, not while the gateway starts.
 */
const requireCjs = createRequire(import.meta.url);
let library: typeof sanitizeHtml | undefined;
function sanitizer(): typeof sanitizeHtml {
  library ??= requireCjs('sanitize-html') as typeof sanitizeHtml;
  return library;
}

/** FHIR R4 narrative.html: the XHTML elements a narrative may use (minus `img`, handled apart). */
const ALLOWED_TAGS = [
  'a', 'abbr', 'acronym', 'b', 'big', 'blockquote', 'br', 'caption', 'cite', 'code', 'col', 'colgroup', 'dd', 'dfn', 'div', 'dl', 'dt',
  'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'li', 'ol', 'p', 'pre', 'q', 'samp', 'small', 'span', 'strong', 'sub',
  'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'tt', 'ul', 'var',
];

/** Elements whose text content must not survive either (it is code, or hidden by design). */
const DROP_WITH_CONTENT = [
  'script', 'style', 'textarea', 'option', 'select', 'noscript', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'template',
  'title', 'head', 'xmp', 'noembed', 'noframes', 'plaintext', 'svg', 'math', 'audio', 'video', 'canvas', 'button',
];

const SAME_DOCUMENT = /^#[A-Za-z0-9_.:-]{0,128}$/;

const OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: ALLOWED_TAGS,
  allowedAttributes: {
    a: ['href', 'title'],
    img: ['src', 'alt', 'title'],
    td: ['colspan', 'rowspan', 'headers', 'abbr'],
    th: ['colspan', 'rowspan', 'headers', 'abbr', 'scope'],
    col: ['span'],
    colgroup: ['span'],
    ol: ['start', 'reversed'],
    abbr: ['title'],
    acronym: ['title'],
    q: ['cite'],
    blockquote: ['cite'],
  },
  // No scheme at all: what is left after transformTags is a fragment or nothing.
  allowedSchemes: [],
  allowedSchemesByTag: {},
  allowProtocolRelative: false,
  allowVulnerableTags: false,
  parseStyleAttributes: false,
  disallowedTagsMode: 'discard',
  nonTextTags: DROP_WITH_CONTENT,
  nestingLimit: 32,
  enforceHtmlBoundary: false,
  transformTags: {
    a: (tagName, attribs) => {
      const href = attribs['href'];
      const kept: sanitizeHtml.Attributes = {};
      if (href !== undefined && SAME_DOCUMENT.test(href)) kept['href'] = href;
      if (attribs['title'] !== undefined) kept['title'] = attribs['title'];
      return { tagName, attribs: kept };
    },
    img: (_tagName, attribs) => {
      const src = attribs['src'];
      if (src !== undefined && SAME_DOCUMENT.test(src)) return { tagName: 'img', attribs: { src, alt: attribs['alt'] ?? '' } };
      // An external or inline (data:) image would be a request out of the page or smuggled content:
      // the reader gets what it stood for.
      return { tagName: 'span', attribs: {}, text: attribs['alt'] === undefined || attribs['alt'] === '' ? '' : `[${attribs['alt']}]` };
    },
    // q/blockquote `cite` is a URL too: keep it only as a fragment.
    q: (tagName, attribs) => ({ tagName, attribs: attribs['cite'] !== undefined && SAME_DOCUMENT.test(attribs['cite']) ? { cite: attribs['cite'] } : {} }),
    blockquote: (tagName, attribs) => ({ tagName, attribs: attribs['cite'] !== undefined && SAME_DOCUMENT.test(attribs['cite']) ? { cite: attribs['cite'] } : {} }),
  },
};

/** Markup safe to embed in a page (wrap it with `raw()`); empty when nothing readable is left. */
export function sanitizeNarrative(xhtml: string): string {
  return sanitizer()(xhtml, OPTIONS).trim();
}
