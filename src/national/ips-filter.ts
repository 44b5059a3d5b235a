/**
 * Consent filtering of a validated IPS document (STANDARDS.md, HL7 FHIR IPS: "A consent that withholds
 * a required section: keep the section, drop its entries and narrative, set emptyReason ... withheld;
 * remove resources no longer referenced from the Bundle (so nothing withheld leaks through entry)").
 *
 * Pure: the input is never mutated. Only the Composition is changed, so only it is copied; the
 * result shares every other entry with the input (both are read-only from here on). The result is
 * re-validated before it is returned, so a filtering outcome that is not a valid IPS document fails
 * closed instead of being relayed.
 */
import type { Bundle, BundleEntry, CodeableConcept, Composition, CompositionSection, Narrative } from '@medplum/fhirtypes';
import {
  BundleIndex,
  LOINC,
  REQUIRED_SECTIONS,
  containedIdsOf,
  loincCodeOf,
  resolveReference,
  validateIpsDocument,
  type IpsDocument,
} from './ips.js';

const XHTML = 'http://www.w3.org/1999/xhtml';

/** http://terminology.hl7.org/CodeSystem/list-empty-reason#withheld, fresh for every use. */
export function withheldEmptyReason(): CodeableConcept {
  return {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/list-empty-reason', code: 'withheld', display: 'Information Withheld' }],
  };
}

export const WITHHELD_SECTION_TEXT = "Section withheld by the patient's consent.";

function generatedNarrative(sentence: string): Narrative {
  return { status: 'generated', div: `<div xmlns="${XHTML}"><p>${sentence}</p></div>` };
}

/**
 * The slot a withheld required section keeps. CompositionUvIps needs title, code and text (1..), and
 * ips-comp-1 needs entry or emptyReason. Everything else of the original section goes: its entries,
 * its narrative, and also its title, author, focus and extensions, which are free content chosen by
 * the author and may describe what is withheld. The title is the neutral IPS name of the section.
 */
function withheldSection(code: string, title: string): CompositionSection {
  return {
    title,
    code: { coding: [{ system: LOINC, code }] },
    text: generatedNarrative(WITHHELD_SECTION_TEXT),
    emptyReason: withheldEmptyReason(),
  };
}

/**
 * Where reachability starts: the Composition's document context and the kept sections. Deliberately
 * not `Composition.event.detail` (it often points at clinical resources, e.g. the procedures of a
 * withheld section); those references are pruned to what is kept anyway. Any other Composition
 * reference (extensions, relatesTo) whose target is not kept makes the result fail re-validation,
 * which fails closed rather than carrying a resource no consent covers.
 */
function rootReferences(composition: Composition): string[] {
  const refs: (string | undefined)[] = [
    composition.subject?.reference,
    composition.encounter?.reference,
    composition.custodian?.reference,
    ...(composition.author ?? []).map((a) => a.reference),
    ...(composition.attester ?? []).map((a) => a.party?.reference),
  ];
  for (const section of composition.section ?? []) {
    refs.push(...(section.author ?? []).map((a) => a.reference), section.focus?.reference, ...(section.entry ?? []).map((e) => e.reference));
  }
  return refs.filter((r): r is string => r !== undefined);
}

/**
 * Returns a new IPS document Bundle that discloses only the sections whose LOINC code is in `allowed`:
 * - an allowed section is kept as it is;
 * - a required section (Problems, Allergies, Medications) that is not allowed keeps its slot with
 *   `emptyReason` withheld and a neutral generated narrative;
 * - an optional section that is not allowed is removed;
 * - the Composition's own narrative, which may summarise every section, is replaced by a neutral one;
 * - entries not reachable from the Composition's context and kept sections are removed.
 *
 * A resource referenced both from a withheld section and from a kept one (directly or through other
 * kept resources, e.g. a Condition that is a MedicationStatement's reasonReference) stays: the consent
 * discloses it through the allowed path. A resource reachable only through withheld sections is gone,
 * from `entry` and from every reference.
 *
 * `Bundle.signature`, if any, is removed: it covered the original content, not this one.
 */
export function filterIpsBySections(doc: IpsDocument, allowed: ReadonlySet<string>): Bundle {
  const original = doc.bundle.entry?.[0];
  if (original === undefined || original.resource?.resourceType !== 'Composition') {
    throw new Error('filterIpsBySections: the document was not produced by validateIpsDocument');
  }
  const composition: Composition = structuredClone(original.resource);
  const entries: BundleEntry[] = [{ ...original, resource: composition }, ...(doc.bundle.entry ?? []).slice(1)];
  const bundle: Bundle = { ...doc.bundle, entry: entries };

  const sections: CompositionSection[] = [];
  for (const section of composition.section ?? []) {
    const code = loincCodeOf(section.code);
    if (code === undefined) continue;
    if (allowed.has(code)) {
      sections.push(section);
      continue;
    }
    const requiredTitle = REQUIRED_SECTIONS.get(code);
    if (requiredTitle !== undefined) sections.push(withheldSection(code, requiredTitle));
  }
  composition.section = sections;
  if (composition.text !== undefined) {
    composition.text = generatedNarrative('International Patient Summary; the content is in the sections of this document.');
  }

  const index = new BundleIndex(entries);
  const reachable = new Set<number>([0]);
  const queue: number[] = [];
  const visit = (reference: string, from: number, containedIds: ReadonlySet<string>): void => {
    const resolved = resolveReference(reference, from, containedIds, index);
    if (resolved.kind === 'entry' && !reachable.has(resolved.index)) {
      reachable.add(resolved.index);
      queue.push(resolved.index);
    }
  };
  const compositionContained = containedIdsOf(composition);
  for (const reference of rootReferences(composition)) visit(reference, 0, compositionContained);
  // The Patient is kept whatever the roots say (BundleUvIps entry[patient] 1..1).
  entries.forEach((e, i) => {
    if (e.resource?.resourceType === 'Patient' && !reachable.has(i)) {
      reachable.add(i);
      queue.push(i);
    }
  });
  // Every other entry is the input's own (same index, same object), so what its resource references
  // is what validation resolved.
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    for (const target of doc.references[next] ?? []) {
      if (!reachable.has(target)) {
        reachable.add(target);
        queue.push(target);
      }
    }
  }

  for (const event of composition.event ?? []) {
    if (event.detail === undefined) continue;
    event.detail = event.detail.filter((d) => {
      if (d.reference === undefined) return true;
      const resolved = resolveReference(d.reference, 0, compositionContained, index);
      return resolved.kind === 'entry' ? reachable.has(resolved.index) : resolved.kind === 'contained';
    });
    if (event.detail.length === 0) delete event.detail;
  }
  if (composition.event !== undefined) {
    composition.event = composition.event.filter((e) => Object.keys(e).length > 0);
    if (composition.event.length === 0) delete composition.event;
  }

  const kept: BundleEntry[] = entries.filter((_, i) => reachable.has(i));
  bundle.entry = kept;
  delete bundle.signature;

  validateIpsDocument(bundle);
  return bundle;
}
