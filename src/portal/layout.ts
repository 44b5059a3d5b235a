/**
 * The page frame every portal and viewer page shares: language, skip link, site header with
 * navigation, language switch and sign-out, and the main landmark.
 */
import { html, url, type HtmlValue, type SafeHtml } from './html.js';
import { LANG_NAMES, MESSAGES, type Lang } from './i18n.js';

export const CSS_PATH = '/portal/static/portal.css';

export interface PageFrame {
  readonly lang: Lang;
  readonly title: string;
  /** The app's name and home link. */
  readonly site: { readonly name: string; readonly home: string };
  /** Same page in the other offered languages. */
  readonly langSwitch: { readonly path: string; readonly offered: readonly Lang[]; readonly query?: Readonly<Record<string, string>> };
  readonly nav?: ReadonlyArray<{ readonly href: string; readonly label: string; readonly current?: boolean }>;
  /** When signed in: where the sign-out form posts, and its form token. */
  readonly signOut?: { readonly action: string; readonly csrf: string };
  readonly body: HtmlValue;
}

export function renderPage(p: PageFrame): string {
  const m = MESSAGES[p.lang];
  const langLinks = p.langSwitch.offered.map(
    (l) =>
      html`<li><a href="${url(p.langSwitch.path, { ...p.langSwitch.query, lang: l })}" lang="${l}" hreflang="${l}"${l === p.lang ? html` aria-current="true"` : ''}>${LANG_NAMES[l]}</a></li>`,
  );
  const nav = (p.nav ?? []).map(
    (n) => html`<li><a href="${n.href}"${n.current === true ? html` aria-current="page"` : ''}>${n.label}</a></li>`,
  );
  const signOut: SafeHtml | undefined =
    p.signOut === undefined
      ? undefined
      : html`<form method="post" action="${p.signOut.action}"><input type="hidden" name="csrf" value="${p.signOut.csrf}"><button type="submit">${m.signOut}</button></form>`;
  const page = html`<!doctype html>
<html lang="${p.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${p.title} · ${p.site.name}</title>
<link rel="stylesheet" href="${CSS_PATH}">
</head>
<body>
<a class="skip" href="#main">${m.skipToContent}</a>
<header class="site">
<a class="brand" href="${url(p.site.home, { lang: p.lang })}">${p.site.name}</a>
<nav aria-label="${p.site.name}"><ul>${nav}</ul></nav>
<nav aria-label="${m.language}" class="langs"><ul>${langLinks}</ul></nav>
${signOut}
</header>
<main id="main" tabindex="-1">
${p.body}
</main>
</body>
</html>
`;
  return page.value;
}
