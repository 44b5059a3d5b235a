/**
 * The document the benchmark moves: Kenneth's IPS (sandbox/seed.ts), grown to the 40-60 KB the issue
 * asks for by repeating the clinical entries each section references (fresh ids, same patient,
 * references kept resolvable), and checked with the gateway's own IPS validator so the grown
 * document is one the gateway relays.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { deriveKennethDocument, loadFixture } from '../sandbox/seed.js';
import { LOINC, validateIpsDocument } from '../src/national/ips.js';

export const TARGET_MIN_BYTES = 48 * 1024;
export const TARGET_MAX_BYTES = 60 * 1024;

export interface BenchIps {
  readonly bundle: Bundle;
  readonly bytes: number;
  readonly originalBytes: number;
  readonly entries: number;
  readonly originalEntries: number;
  /** LOINC codes of every section, for a consent that lets all of it through. */
  readonly sectionCodes: readonly string[];
}

function bytesOf(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/** A copy of `entry` under a fresh id; internal references (patient, medication, author) are kept. */
function cloneEntry(entry: BundleEntry): { entry: BundleEntry; oldId: string; newId: string } | undefined {
  const resource = entry.resource;
  if (resource?.id === undefined) return undefined;
  const newId = randomUUID();
  const copy = structuredClone(resource) as Resource & { identifier?: unknown };
  copy.id = newId;
  if (Array.isArray(copy.identifier)) copy.identifier = [{ system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` }];
  return { entry: { fullUrl: `urn:uuid:${newId}`, resource: copy }, oldId: resource.id, newId };
}

export async function buildBenchIps(): Promise<BenchIps> {
  const original = deriveKennethDocument(await loadFixture('ips-ig-bundle-01.json'));
  const originalBytes = bytesOf(original);
  const bundle = structuredClone(original);
  const entries = bundle.entry ?? [];
  const composition = entries[0]?.resource;
  if (composition?.resourceType !== 'Composition') throw new Error('bench: IPS does not start with a Composition');
  const byId = new Map(entries.flatMap((e) => (e.resource?.id === undefined ? [] : [[e.resource.id, e] as const])));
  const sections = composition.section ?? [];

  // Round by round, every section gets one more copy of each entry it referenced originally.
  const originalRefs = sections.map((s) => (s.entry ?? []).map((r) => r.reference ?? ''));
  let rounds = 0;
  while (bytesOf(bundle) < TARGET_MIN_BYTES && rounds < 50) {
    rounds++;
    sections.forEach((section, i) => {
      for (const reference of originalRefs[i] ?? []) {
        const id = reference.split(/[/:]/).pop() ?? '';
        const source = byId.get(id);
        const cloned = source === undefined ? undefined : cloneEntry(source);
        if (cloned === undefined) continue;
        entries.push(cloned.entry);
        section.entry = [...(section.entry ?? []), { reference: reference.replace(cloned.oldId, cloned.newId) }];
      }
    });
  }
  bundle.entry = entries;
  const bytes = bytesOf(bundle);
  if (bytes > TARGET_MAX_BYTES) throw new Error(`bench: grown IPS is ${bytes} bytes, above ${TARGET_MAX_BYTES}`);
  validateIpsDocument(bundle);
  const sectionCodes = sections.flatMap((s) => s.code?.coding?.filter((c) => c.system === LOINC).map((c) => c.code ?? '') ?? []).filter((c) => c !== '');
  return { bundle, bytes, originalBytes, entries: entries.length, originalEntries: original.entry?.length ?? 0, sectionCodes };
}
