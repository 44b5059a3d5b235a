/**
 * Renders docs/configuration.md from the configuration schema (`npm run docs:config`): one table
 * per section of `ConfigSchema` (src/config/schema.ts), from its JSON Schema as the operator writes
 * it (zod `io: 'input'`: defaults applied later, so fields with a default are not required), and the
 * environment overrides from `ENV_OVERRIDES` (src/config/load.ts). test/config-doc.test.ts fails
 * when the committed file differs, so the reference never drifts from the code.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { ENV_OVERRIDES } from '../src/config/load.js';
import { ConfigSchema } from '../src/config/schema.js';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
};

interface Row {
  readonly path: string;
  readonly type: string;
  readonly default: string;
  readonly required: string;
  readonly description: string;
}

/** Markdown table cells: a pipe or a line break would end the cell. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function code(text: string): string {
  return `\`${text}\``;
}

function typeOf(s: JsonSchema): string {
  if (s.anyOf !== undefined) return s.anyOf.map(typeOf).join(' or ');
  if (s.enum !== undefined) return s.enum.map((v) => code(JSON.stringify(v))).join(' or ');
  if (s.const !== undefined) return code(JSON.stringify(s.const));
  const base = Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
  const limits: string[] = [];
  if (s.format === 'uri') limits.push('URL');
  else if (s.format !== undefined) limits.push(s.format);
  if (s.pattern !== undefined) limits.push(`matching ${code(s.pattern)}`);
  const min = s.minimum ?? (s.exclusiveMinimum === undefined ? undefined : `> ${s.exclusiveMinimum}`);
  if (min !== undefined && s.maximum !== undefined) limits.push(typeof min === 'number' ? `${min}..${s.maximum}` : `${min}, <= ${s.maximum}`);
  else if (min !== undefined) limits.push(typeof min === 'number' ? `>= ${min}` : min);
  else if (s.maximum !== undefined) limits.push(`<= ${s.maximum}`);
  if (s.maxLength !== undefined) limits.push(`at most ${s.maxLength} characters`);
  if (base === 'array') {
    const item = s.items === undefined ? 'any' : s.items.type === 'object' ? 'object' : typeOf(s.items);
    return `array of ${item}${s.minItems !== undefined && s.minItems > 0 ? ` (at least ${s.minItems})` : ''}`;
  }
  if (base === 'object' && s.properties === undefined && typeof s.additionalProperties === 'object') {
    return `map of string to ${typeOf(s.additionalProperties)}`;
  }
  return limits.length === 0 ? base : `${base} (${limits.join(', ')})`;
}

function defaultOf(s: JsonSchema): string {
  return s.default === undefined ? '' : code(JSON.stringify(s.default));
}

/** Rows for `schema` and everything below it; arrays of objects continue as `path[].field`. */
function rows(schema: JsonSchema, path: string, required: boolean): Row[] {
  const out: Row[] = [
    { path: code(path), type: typeOf(schema), default: defaultOf(schema), required: required ? 'yes' : 'no', description: schema.description ?? '' },
  ];
  const objectSchema = schema.type === 'array' && schema.items?.type === 'object' ? schema.items : schema;
  const prefix = objectSchema === schema ? path : `${path}[]`;
  for (const [key, child] of Object.entries(objectSchema.properties ?? {})) {
    out.push(...rows(child, `${prefix}.${key}`, objectSchema.required?.includes(key) ?? false));
  }
  return out;
}

function table(list: readonly Row[]): string[] {
  return [
    '| path | type | default | required | description |',
    '| --- | --- | --- | --- | --- |',
    ...list.map((r) => `| ${[r.path, r.type, r.default, r.required, r.description].map(cell).join(' | ')} |`),
  ];
}

/** Constraints between fields that a JSON Schema table cannot show (refinements in schema.ts). */
const CROSS_FIELD_RULES: Readonly<Record<string, string>> = {
  trustList: 'Exactly one of `trustList.file` and `trustList.url` must be given.',
};

export function renderConfigDoc(): string {
  const root = z.toJSONSchema(ConfigSchema, { io: 'input' }) as JsonSchema;
  const properties = root.properties ?? {};
  const requiredTop = new Set(root.required ?? []);
  const scalars = Object.entries(properties).filter(([, s]) => s.type !== 'object' && !(s.type === 'array' && s.items?.type === 'object'));
  const sections = Object.entries(properties).filter(([key]) => !scalars.some(([k]) => k === key));

  const lines: string[] = [
    '# Configuration reference',
    '',
    'One JSON file per gateway (examples: `config/dk.json`, `config/es.json`), given as',
    '`ncpeh serve --config FILE` or `NCPEH_CONFIG`. It is parsed once at start by the zod schema in',
    '`src/config/schema.ts`; unknown fields are errors, every problem is printed with its field path, and',
    'the process exits with status 78. Relative file paths are resolved against the folder of the',
    'configuration file and must be readable at start.',
    '',
    'With `NODE_ENV=production` a gateway also refuses: `"sandbox": true`, a missing `database.url`',
    '(embedded PGlite), `eid.oidc[].allowInsecureHttp: true` and `citizen.secureCookies: false`.',
    '',
    '"required" is relative to the enclosing object: a required field of an optional section must be',
    'given only when the section is. A field with a default may be left out.',
    '',
    'This file is generated from `src/config/schema.ts` and `src/config/load.ts` by',
    '`npm run docs:config`; do not edit it by hand.',
    '',
    '## Top level',
    '',
    ...table(scalars.flatMap(([key, s]) => rows(s, key, requiredTop.has(key)))),
    '',
  ];
  for (const [key, s] of sections) {
    lines.push(`## \`${key}\``, '');
    const status = requiredTop.has(key) ? 'Required.' : s.default !== undefined ? 'Optional (defaults apply).' : 'Optional.';
    lines.push(`${s.description === undefined ? '' : `${s.description.replace(/\.$/, '')}. `}${status}`, '');
    lines.push(...table(rows(s, key, requiredTop.has(key))));
    const rule = CROSS_FIELD_RULES[key];
    if (rule !== undefined) lines.push('', rule);
    lines.push('');
  }

  const byPath = new Map<string, Row>();
  for (const [key, s] of Object.entries(properties)) for (const r of rows(s, key, false)) byPath.set(r.path, r);
  lines.push(
    '## Environment overrides',
    '',
    'Each variable, when set and not empty, replaces one field of the file before validation (an',
    'explicit list in `src/config/load.ts`, so no variable overrides a setting by accident).',
    '',
    '| variable | field | value | field description |',
    '| --- | --- | --- | --- |',
    ...ENV_OVERRIDES.map((o) => {
      const path = o.path.join('.');
      const value = o.type === 'int' ? 'whole number' : 'string';
      return `| ${[code(o.env), code(path), value, byPath.get(code(path))?.description ?? ''].map(cell).join(' | ')} |`;
    }),
    '',
  );
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigDoc());
  console.log('wrote docs/configuration.md');
}
