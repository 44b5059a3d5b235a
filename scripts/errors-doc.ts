/**
 * Renders docs/errors.md from the error catalogue (`npm run docs:errors`). test/errors.test.ts
 * fails when the committed file differs, so the document never drifts from the code.
 */
import { writeFileSync } from 'node:fs';
import { ERROR_CATALOGUE, ERROR_SYSTEM } from '../src/http/errors.js';

export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CATALOGUE)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.issueType} | ${spec.title} | ${spec.exposeDetail ? 'yes' : 'no'} |`);
  return [
    '# Error codes',
    '',
    'Every error the gateway returns is a FHIR `OperationOutcome` (`application/fhir+json`) whose first',
    `issue carries one of these codes in \`issue[0].details.coding\` (system \`${ERROR_SYSTEM}\`).`,
    'The `id` of the OperationOutcome is the correlation id, also sent as the `x-request-id` header and',
    'written in the log line of the request: quote it when reporting a problem.',
    '',
    'Codes are stable: clients may branch on them. "Detail shown" says whether `issue[0].diagnostics`',
    'may carry a detail from the failing check (validation paths, a country code); codes that say "no"',
    'never reveal more than their title, so that refusals cannot be used as an oracle.',
    'Unknown failures are always `internal.error` (500) with no detail.',
    '',
    'This file is generated from `src/http/errors.ts` by `npm run docs:errors`.',
    '',
    '| code | HTTP status | FHIR issue type | meaning | detail shown |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc());
  console.log('wrote docs/errors.md');
}
