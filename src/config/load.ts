import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigSchema, type Config } from './schema.js';
import { deepFreeze } from '../shared/freeze.js';

export interface ConfigProblem {
  /** Dotted path of the field, e.g. `peer.port`; `(file)` for the file itself. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(`Invalid configuration ${source}:\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * Environment variables that override one field each. An explicit table rather than a generic
 * prefix scheme, so every override is documented (docs/configuration.md) and none is accidental.
 */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly string[]; type: 'string' | 'int' }> = [
  { env: 'DATABASE_URL', path: ['database', 'url'], type: 'string' },
  { env: 'NCPEH_DATA_DIR', path: ['database', 'dataDir'], type: 'string' },
  { env: 'NCPEH_API_HOST', path: ['api', 'host'], type: 'string' },
  { env: 'NCPEH_API_PORT', path: ['api', 'port'], type: 'int' },
  { env: 'NCPEH_PEER_HOST', path: ['peer', 'host'], type: 'string' },
  { env: 'NCPEH_PEER_PORT', path: ['peer', 'port'], type: 'int' },
  { env: 'NCPEH_TRUST_LIST_FILE', path: ['trustList', 'file'], type: 'string' },
  { env: 'NCPEH_NATIONAL_FHIR_URL', path: ['nationalFhir', 'baseUrl'], type: 'string' },
  { env: 'NCPEH_LOG_LEVEL', path: ['log', 'level'], type: 'string' },
];

/** Fields holding file paths: resolved against the config file's folder and checked readable. */
const FILE_FIELDS: ReadonlyArray<(c: Config) => Array<[string, string]>> = [
  (c) => [
    ['peer.tls.certFile', c.peer.tls.certFile],
    ['peer.tls.keyFile', c.peer.tls.keyFile],
    ['peer.tls.clientCertFile', c.peer.tls.clientCertFile],
    ['peer.tls.clientKeyFile', c.peer.tls.clientKeyFile],
    ['peer.tls.caFile', c.peer.tls.caFile],
    ['keys.signingKeyFile', c.keys.signingKeyFile],
  ],
  (c) => c.keys.encryptionKeyFiles.map((f, i): [string, string] => [`keys.encryptionKeyFiles.${i}`, f]),
  (c) => c.trustList.anchorKeyFiles.map((f, i): [string, string] => [`trustList.anchorKeyFiles.${i}`, f]),
  (c) => (c.trustList.file === undefined ? [] : [['trustList.file', c.trustList.file]]),
  (c) => c.eid.saml.flatMap((s, i) => s.idpCertFiles.map((f, j): [string, string] => [`eid.saml.${i}.idpCertFiles.${j}`, f])),
  (c) =>
    c.eid.oidc.flatMap((o, i): Array<[string, string]> =>
      o.clientSecretFile === undefined ? [] : [[`eid.oidc.${i}.clientSecretFile`, o.clientSecretFile]],
    ),
  (c) => c.clients.map((cl, i): [string, string] => [`clients.${i}.jwksFile`, cl.jwksFile]),
  (c) => c.dataKeys.map((k, i): [string, string] => [`dataKeys.${i}.file`, k.file]),
];

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(target: JsonObject, path: readonly string[], value: Json): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (isObject(next)) node = next;
    else {
      const created: JsonObject = {};
      node[key] = created;
      node = created;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function applyEnv(raw: JsonObject, env: NodeJS.ProcessEnv, problems: ConfigProblem[]): void {
  for (const o of ENV_OVERRIDES) {
    const value = env[o.env];
    if (value === undefined || value === '') continue;
    if (o.type === 'int') {
      if (!/^\d+$/.test(value)) {
        problems.push({ path: `${o.path.join('.')} (env ${o.env})`, message: `must be a whole number, got "${value}"` });
        continue;
      }
      setPath(raw, o.path, Number(value));
    } else {
      setPath(raw, o.path, value);
    }
  }
}

/** Resolves every path-valued field against `baseDir` and reports the unreadable ones. */
function resolveFiles(config: Config, baseDir: string, problems: ConfigProblem[]): Config {
  const resolved = structuredClone(config);
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  resolved.peer.tls = {
    certFile: abs(config.peer.tls.certFile),
    keyFile: abs(config.peer.tls.keyFile),
    clientCertFile: abs(config.peer.tls.clientCertFile),
    clientKeyFile: abs(config.peer.tls.clientKeyFile),
    caFile: abs(config.peer.tls.caFile),
  };
  resolved.keys.signingKeyFile = abs(config.keys.signingKeyFile);
  resolved.keys.encryptionKeyFiles = config.keys.encryptionKeyFiles.map(abs);
  resolved.trustList.anchorKeyFiles = config.trustList.anchorKeyFiles.map(abs);
  if (config.trustList.file !== undefined) resolved.trustList.file = abs(config.trustList.file);
  resolved.eid.saml = config.eid.saml.map((s) => ({ ...s, idpCertFiles: s.idpCertFiles.map(abs) }));
  resolved.eid.oidc = config.eid.oidc.map((o) =>
    o.clientSecretFile === undefined ? o : { ...o, clientSecretFile: abs(o.clientSecretFile) },
  );
  resolved.clients = config.clients.map((cl) => ({ ...cl, jwksFile: abs(cl.jwksFile) }));
  resolved.dataKeys = config.dataKeys.map((k) => ({ ...k, file: abs(k.file) }));
  if (config.database.url === undefined && config.database.dataDir !== 'memory://') {
    resolved.database.dataDir = abs(config.database.dataDir);
  }
  for (const list of FILE_FIELDS) {
    for (const [path, file] of list(resolved)) {
      try {
        accessSync(file, constants.R_OK);
      } catch (e) {
        const code = e instanceof Error && 'code' in e ? String(e.code) : 'unreadable';
        problems.push({ path, message: `file ${file} is not readable (${code})` });
      }
    }
  }
  return resolved;
}

function productionProblems(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.sandbox) {
    problems.push({ path: 'sandbox', message: 'a sandbox configuration (development keys) cannot run with NODE_ENV=production' });
  }
  if (config.database.url === undefined) {
    problems.push({
      path: 'database.url',
      message: 'embedded PGlite storage is for development only; set DATABASE_URL to a PostgreSQL server',
    });
  }
  config.eid.oidc.forEach((o, i) => {
    if (o.allowInsecureHttp) problems.push({ path: `eid.oidc.${i}.allowInsecureHttp`, message: 'plain-HTTP eID providers are for the loopback sandbox only' });
  });
  if (config.citizen !== undefined && !config.citizen.secureCookies) {
    problems.push({ path: 'citizen.secureCookies', message: 'session cookies must be Secure in production' });
  }
  return problems;
}

/**
 * Parses a configuration document (already read) with environment overrides applied. Every problem
 * is collected before failing, so an operator fixes them in one round.
 */
export function parseConfig(raw: unknown, opts: { env?: NodeJS.ProcessEnv; baseDir: string; source?: string }): Readonly<Config> {
  const env = opts.env ?? process.env;
  const source = opts.source ?? '(inline)';
  const problems: ConfigProblem[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '(file)', message: 'must be a JSON object' }]);
  }
  // A JSON round trip gives us a plain, prototype-free copy we may mutate with overrides.
  const doc = JSON.parse(JSON.stringify(raw)) as JsonObject;
  applyEnv(doc, env, problems);
  const parsed = ConfigSchema.safeParse(doc);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ path: issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.'), message: issue.message });
    }
    throw new ConfigError(source, problems);
  }
  const config = resolveFiles(parsed.data, opts.baseDir, problems);
  if (env.NODE_ENV === 'production') problems.push(...productionProblems(config));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(config);
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = e instanceof Error && 'code' in e ? String(e.code) : 'unreadable';
    throw new ConfigError(path, [{ path: '(file)', message: `cannot read ${path} (${code})` }]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, [{ path: '(file)', message: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` }]);
  }
  return parseConfig(raw, { env, baseDir: dirname(path), source: path });
}

/** The config file named by `--config` or NCPEH_CONFIG. */
export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? env.NCPEH_CONFIG;
}
