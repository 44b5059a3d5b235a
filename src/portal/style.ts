/**
 * The one stylesheet of the pages, served from /portal/static/portal.css (CSP `style-src 'self'`:
 * no inline style anywhere). Kept in a module rather than a file so the build carries it.
 * Visible focus on every interactive element (WCAG 2.2, 2.4.7), sufficient contrast (1.4.3),
 * layout that reflows at 320 px (1.4.10).
 */
export const PORTAL_CSS = `
:root { --ink: #1b1f23; --muted: #4a5561; --line: #c9d1d9; --bg: #ffffff; --panel: #f4f6f8; --accent: #0b5cad; --ok: #116329; --warn: #8a4600; --bad: #a40e26; --focus: #ffbf47; }
* { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; font-size: 100%; line-height: 1.5; color: var(--ink); background: var(--bg); }
body { margin: 0; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, summary:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px; box-shadow: 0 0 0 5px var(--ink);
}
.skip { position: absolute; left: -9999px; top: 0; background: var(--focus); color: var(--ink); padding: .5rem 1rem; }
.skip:focus { left: 1rem; top: 1rem; z-index: 10; }
header.site { background: #12263f; color: #fff; padding: .75rem 1.25rem; display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: center; justify-content: space-between; }
header.site a { color: #fff; }
header.site .brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; }
header.site nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .5rem 1rem; margin: 0; padding: 0; }
header.site form { display: inline; margin: 0; }
header.site button { background: transparent; color: #fff; border: 1px solid #fff; }
.langs a[aria-current="true"] { font-weight: 700; text-decoration: none; }
main { max-width: 68rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
h1 { font-size: 1.75rem; margin: 1rem 0 .5rem; }
h2 { font-size: 1.35rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1.1rem; margin: 1.25rem 0 .25rem; }
p.lead { color: var(--muted); font-size: 1.05rem; }
.notice { border-left: 4px solid var(--accent); background: var(--panel); padding: .75rem 1rem; margin: 1rem 0; }
.notice.ok { border-color: var(--ok); }
.notice.warn { border-color: var(--warn); }
.errors { border: 2px solid var(--bad); padding: .75rem 1rem; margin: 1rem 0; }
.errors h2 { border: 0; margin-top: 0; color: var(--bad); font-size: 1.15rem; }
.field-error { color: var(--bad); font-weight: 600; display: block; }
.button, button { font: inherit; cursor: pointer; background: var(--accent); color: #fff; border: 1px solid var(--accent); border-radius: 4px; padding: .45rem 1rem; text-decoration: none; display: inline-block; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
button:disabled { background: #d0d7de; border-color: #d0d7de; color: #57606a; cursor: not-allowed; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: 1rem 0; padding: .5rem 1rem 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
.choices { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .25rem 1rem; }
.choices label { display: flex; gap: .5rem; align-items: flex-start; }
input[type="checkbox"], input[type="radio"] { width: 1.15rem; height: 1.15rem; margin-top: .2rem; }
label.block { display: block; font-weight: 600; margin-top: .75rem; }
.hint { display: block; color: var(--muted); font-size: .92rem; }
input[type="text"], input[type="date"], select, textarea { font: inherit; padding: .4rem .5rem; border: 1px solid #57606a; border-radius: 4px; max-width: 100%; }
textarea { width: 100%; min-height: 6rem; }
ul.consents { list-style: none; padding: 0; }
ul.consents li { border: 1px solid var(--line); border-radius: 4px; padding: .75rem 1rem; margin: .5rem 0; display: flex; flex-wrap: wrap; gap: .5rem 1rem; justify-content: space-between; align-items: center; }
ul.consents li p { margin: 0; flex: 1 1 30rem; }
.status { font-size: .9rem; font-weight: 600; color: var(--muted); }
.status.active { color: var(--ok); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
th, td { border: 1px solid var(--line); padding: .4rem .5rem; text-align: left; vertical-align: top; }
thead th { background: var(--panel); }
.verified { color: var(--ok); font-weight: 600; }
.unverified { color: var(--bad); font-weight: 600; }
.orig { display: block; color: var(--muted); font-size: .88rem; }
.untranslated { color: var(--warn); font-size: .88rem; }
section.ips { border: 1px solid var(--line); border-radius: 4px; padding: 0 1rem .5rem; margin: 1rem 0; }
section.ips h2 { border: 0; }
section.ips.withheld { background: var(--panel); }
.narrative { border-left: 3px solid var(--line); padding: .25rem .75rem; margin: .5rem 0; }
.narrative a:not([href]) { color: inherit; text-decoration: none; }
details summary { cursor: pointer; color: var(--accent); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.masks { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
@media (prefers-reduced-motion: reduce) { * { transition: none !important; } }
`;
