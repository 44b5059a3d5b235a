/**
 * Export of the audit log to other systems (issue 7, "Export"): NDJSON for files and bulk loads,
 * and RFC 5424 syslog over TLS (RFC 5425) for a SIEM.
 *
 * Both carry each entry's seq and leaf hash, and the event as canonical JSON, so a recipient can
 * recompute SHA-256(0x00 || event) and match it against an inclusion proof (RFC 9162 section 2.1).
 * `patient_key` is never read here: it is a national identifier and stays in the gateway.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import type { Db } from '../storage/db.js';
import { AUDIT_KIND_SYSTEM } from './balp.js';
import { toBuffer, toSafeInteger } from './log.js';
import { canonicalJson } from './merkle.js';

const DEFAULT_BATCH = 500;
const MAX_BATCH = 10_000;

/** One audit log entry as exported: everything but the patient key. */
export interface AuditExportEntry {
  seq: number;
  recordedAt: Date;
  leafHash: Buffer;
  /** The AuditEvent as stored (its `id` is the seq). */
  event: Record<string, unknown>;
}

export interface ExportRange {
  /** Export entries with seq greater than this (a cursor: the last seq already exported). */
  since?: number;
  /** ... and at most this (inclusive). */
  until?: number;
  /** Rows per query; default 500. */
  batch?: number;
}

// ---------------------------------------------------------------------------------------------
// Reading

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toDate(value: unknown): Date {
  const d = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (d === undefined || Number.isNaN(d.getTime())) throw new Error('audit_log.recorded_at is not a timestamp');
  return d;
}

function checkRange(opts: ExportRange): { after: number; until: number | undefined; batch: number } {
  const after = opts.since ?? -1;
  if (!Number.isSafeInteger(after) || after < -1) throw new RangeError('since must be a seq (integer >= -1)');
  if (opts.until !== undefined && (!Number.isSafeInteger(opts.until) || opts.until < 0)) throw new RangeError('until must be a seq (integer >= 0)');
  const batch = opts.batch ?? DEFAULT_BATCH;
  if (!Number.isSafeInteger(batch) || batch < 1 || batch > MAX_BATCH) throw new RangeError(`batch must be an integer in 1..${MAX_BATCH}`);
  return { after, until: opts.until, batch };
}

/**
 * Entries in seq order, one query per batch. Keyset pagination (seq > last seen) rather than
 * OFFSET, so each query is an index range scan and rows appended meanwhile are picked up, not skipped.
 */
export async function* readEntries(db: Db, opts: ExportRange = {}): AsyncGenerator<AuditExportEntry[]> {
  const { after, until, batch } = checkRange(opts);
  let last = after;
  for (;;) {
    const params: unknown[] = [last, batch];
    const upper = until === undefined ? '' : 'AND seq <= $3';
    if (until !== undefined) params.push(until);
    const { rows } = await db.query<{ seq: unknown; recorded_at: unknown; event: unknown; leaf_hash: unknown }>(
      `SELECT seq, recorded_at, event, leaf_hash FROM audit_log WHERE seq > $1 ${upper} ORDER BY seq LIMIT $2`,
      params,
    );
    if (rows.length === 0) return;
    const entries = rows.map((row) => {
      if (!isRecord(row.event)) throw new Error('audit_log.event is not a JSON object');
      return {
        seq: toSafeInteger(row.seq, 'seq'),
        recordedAt: toDate(row.recorded_at),
        leafHash: toBuffer(row.leaf_hash, 'leaf_hash'),
        event: row.event,
      };
    });
    yield entries;
    last = entries[entries.length - 1]?.seq ?? last;
    if (rows.length < batch) return;
  }
}

// ---------------------------------------------------------------------------------------------
// NDJSON

export function ndjsonLine(entry: AuditExportEntry): string {
  const head = JSON.stringify({ seq: entry.seq, recordedAt: entry.recordedAt.toISOString(), leafHash: entry.leafHash.toString('base64') });
  return `${head.slice(0, -1)},"event":${canonicalJson(entry.event)}}\n`;
}

/**
 * Writes `{"seq","recordedAt","leafHash","event"}` lines in seq order and returns how many. Waits
 * for 'drain' whenever `out` asks it to, so memory stays bounded by one batch. Does not end `out`.
 */
export async function exportNdjson(db: Db, out: NodeJS.WritableStream, opts: ExportRange = {}): Promise<number> {
  let count = 0;
  for await (const entries of readEntries(db, opts)) {
    for (const entry of entries) {
      if (!out.write(ndjsonLine(entry))) await once(out, 'drain');
      count++;
    }
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// RFC 5424 formatting

/** RFC 5424 section 6.2.1: 13 log audit, 10 security/authorization (authpriv). */
export type SyslogFacility = 13 | 10;
export type SyslogSeverity = 3 | 4 | 5 | 6;

/** Private enterprise number 32473 is reserved for documentation (RFC 5612). */
export const SD_ID = 'ncpeh@32473';
const NILVALUE = '-';
const BOM = '\uFEFF';

export interface SyslogFormatOptions {
  hostname: string;
  /** Default `ncpeh`. */
  appName?: string;
  procId?: string;
  /** Default 13 (log audit). */
  facility?: SyslogFacility;
}

/** AuditEvent.outcome (FHIR R4 audit-event-outcome) to severity; anything unexpected is a warning. */
export function severityOf(event: Readonly<Record<string, unknown>>): SyslogSeverity {
  switch (event['outcome']) {
    case '0':
      return 6;
    case '4':
      return 5;
    case '8':
      return 4;
    case '12':
      return 3;
    default:
      return 4;
  }
}

/** RFC 5424 section 6: header fields are PRINTUSASCII (33..126) with a maximum length, or NILVALUE. */
function headerField(value: string | undefined, maxLength: number): string {
  const printable = (value ?? '').replace(/[^\x21-\x7e]/g, '').slice(0, maxLength);
  return printable === '' ? NILVALUE : printable;
}

/** RFC 5424 section 6.3.3: inside PARAM-VALUE, '"', '\' and ']' MUST be escaped with '\'. */
export function escapeSdParam(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

function auditKindOf(event: Readonly<Record<string, unknown>>): string | undefined {
  const subtype = event['subtype'];
  if (!Array.isArray(subtype)) return undefined;
  for (const coding of subtype as unknown[]) {
    if (isRecord(coding) && coding['system'] === AUDIT_KIND_SYSTEM && typeof coding['code'] === 'string') return coding['code'];
  }
  return undefined;
}

/**
 * One SYSLOG-MSG: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [ncpeh@32473 seq leafHash] BOM JSON`.
 * MSGID is the audit kind; MSG is the canonical JSON of the event, marked UTF-8 by the BOM
 * (RFC 5424 section 6.4), so the leaf hash can be recomputed from the bytes after the BOM.
 */
export function formatSyslog(entry: AuditExportEntry, opts: SyslogFormatOptions): string {
  const pri = (opts.facility ?? 13) * 8 + severityOf(entry.event);
  const header = [
    `<${pri}>1`,
    entry.recordedAt.toISOString(),
    headerField(opts.hostname, 255),
    headerField(opts.appName ?? 'ncpeh', 48),
    headerField(opts.procId, 128),
    headerField(auditKindOf(entry.event), 32),
  ].join(' ');
  const sd = `[${SD_ID} seq="${escapeSdParam(String(entry.seq))}" leafHash="${escapeSdParam(entry.leafHash.toString('base64'))}"]`;
  return `${header} ${sd} ${BOM}${canonicalJson(entry.event)}`;
}

/** RFC 5425 section 4.3 octet-counting: `MSGLEN SP SYSLOG-MSG`, MSGLEN in octets. */
export function frameSyslog(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

// ---------------------------------------------------------------------------------------------
// TLS transport

export interface SyslogTlsOptions {
  host: string;
  port: number;
  /** The collector's CA; the only trust anchor used (the system store is not consulted). */
  ca: Buffer | string;
  /** Client certificate and key, when the collector authenticates us (RFC 5425 section 5.2). */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** Name to check the collector's certificate against; default `host`. */
  servername?: string;
  hostname: string;
  facility?: SyslogFacility;
  procId?: string;
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** A send whose writes are not flushed by then destroys the connection; default 30 s. */
  sendTimeoutMs?: number;
}

export class SyslogTlsExporter {
  readonly #opts: SyslogTlsOptions;
  readonly #format: SyslogFormatOptions;
  #socket: Promise<tls.TLSSocket> | undefined;

  constructor(opts: SyslogTlsOptions) {
    this.#opts = opts;
    this.#format = {
      hostname: opts.hostname,
      ...(opts.facility === undefined ? {} : { facility: opts.facility }),
      ...(opts.procId === undefined ? {} : { procId: opts.procId }),
    };
  }

  /**
   * Writes one frame per entry on one (reused) connection and resolves once every byte was handed
   * to the kernel. RFC 5425 has no application-level acknowledgement, so a rejection means some
   * frames may have arrived: resend from the caller's cursor, the collector sees seq twice at worst.
   */
  async send(entries: readonly AuditExportEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const data = Buffer.concat(entries.map((e) => frameSyslog(formatSyslog(e, this.#format))));
    const socket = await this.#connection();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error('syslog send timed out')), this.#opts.sendTimeoutMs ?? 30_000);
      const done = (error?: Error): void => {
        clearTimeout(timer);
        socket.off('error', done);
        socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onClose = (): void => done(new Error('syslog connection closed before the frames were written'));
      socket.once('error', done);
      socket.once('close', onClose);
      socket.write(data, (error) => done(error ?? undefined));
    });
  }

  async close(): Promise<void> {
    const pending = this.#socket;
    this.#socket = undefined;
    const socket = await pending?.catch(() => undefined);
    if (socket === undefined || socket.destroyed) return;
    const closed = once(socket, 'close');
    const timer = setTimeout(() => socket.destroy(), this.#opts.connectTimeoutMs ?? 10_000);
    socket.end();
    await closed.catch(() => undefined);
    clearTimeout(timer);
  }

  #connection(): Promise<tls.TLSSocket> {
    this.#socket ??= this.#connect();
    return this.#socket;
  }

  #connect(): Promise<tls.TLSSocket> {
    const o = this.#opts;
    const attempt = new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({
        host: o.host,
        port: o.port,
        ca: o.ca,
        ...(o.cert === undefined ? {} : { cert: o.cert }),
        ...(o.key === undefined ? {} : { key: o.key }),
        ...(o.servername === undefined ? {} : { servername: o.servername }),
        // Never configurable: audit records go only to a collector whose certificate chains to `ca`.
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      });
      const timer = setTimeout(() => socket.destroy(new Error(`syslog collector ${o.host}:${o.port} did not complete TLS in time`)), o.connectTimeoutMs ?? 10_000);
      const forget = (): void => {
        if (this.#socket === attempt) this.#socket = undefined;
      };
      // Kept for the socket's lifetime: an unhandled 'error' would crash the process, and any
      // error or close means the next send() reconnects.
      socket.on('error', (error: Error) => {
        clearTimeout(timer);
        forget();
        reject(error);
      });
      // The collector ending its side means it will not read more: do not reuse the connection.
      socket.on('end', forget);
      socket.on('close', () => {
        clearTimeout(timer);
        forget();
        reject(new Error('syslog connection closed during the TLS handshake'));
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        // The collector does not talk back (RFC 5425); discard anything it sends.
        socket.resume();
        resolve(socket);
      });
    });
    return attempt;
  }
}

/** The part of SyslogTlsExporter that exportToSyslog needs. */
export interface AuditEntrySink {
  send(entries: readonly AuditExportEntry[]): Promise<void>;
}

/**
 * Sends every entry after `since` in batches and returns the last seq sent (or `since` when there
 * was nothing new), for the caller to persist as its cursor. On failure it throws SyslogExportError
 * whose `lastSent` is the cursor after the batches that were written.
 */
export async function exportToSyslog(db: Db, exporter: AuditEntrySink, opts: { since?: number; batch?: number } = {}): Promise<number | undefined> {
  let last = opts.since;
  try {
    for await (const entries of readEntries(db, opts)) {
      await exporter.send(entries);
      last = entries[entries.length - 1]?.seq ?? last;
    }
  } catch (error) {
    throw new SyslogExportError(last, error);
  }
  return last;
}

/** A syslog export that stopped part way; `lastSent` is the cursor to resume from. */
export class SyslogExportError extends Error {
  readonly lastSent: number | undefined;

  constructor(lastSent: number | undefined, cause: unknown) {
    super(`audit syslog export failed after seq ${lastSent ?? 'none'}`, { cause });
    this.name = 'SyslogExportError';
    this.lastSent = lastSent;
  }
}
