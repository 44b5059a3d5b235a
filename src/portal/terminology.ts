/**
 * The terminology catalogue of the professional viewer and the citizen portal: Spanish, Danish and
 * English display names for the codes the sandbox's IPS documents carry (the six fixtures under
 * sandbox/data/ips and Kenneth's document, sandbox/seed.ts), extracted from those files and
 * translated by hand. DESIGN.md flow 4: translations are added for the reader, the original code
 * and display are always kept and shown beside them.
 *
 * A real deployment loads the eHDSI Master Translation Catalogue (MTC) instead; the lookup
 * (`translateCoding`) stays the same. Codes not in the catalogue are shown with their original
 * display and flagged as not translated.
 */
import type { Lang } from './i18n.js';

export const LOINC = 'http://loinc.org';
export const SNOMED = 'http://snomed.info/sct';
const ATC = 'http://www.whocc.no/atc';
const EDQM = 'http://standardterms.edqm.eu';
const CVX = 'http://hl7.org/fhir/sid/cvx';
const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
const ICDO3 = 'urn:oid:2.16.840.1.113883.6.43.1';
const ABSENT = 'http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips';
const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const CONDITION_VERIFICATION = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';
const ALLERGY_CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const ALLERGY_VERIFICATION = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification';
export const LIST_EMPTY_REASON = 'http://terminology.hl7.org/CodeSystem/list-empty-reason';
// FHIR R4 `code` elements (no Coding in the resource): the systems their value sets bind to.
export const FHIR_ALLERGY_CRITICALITY = 'http://hl7.org/fhir/allergy-intolerance-criticality';
export const FHIR_ALLERGY_TYPE = 'http://hl7.org/fhir/allergy-intolerance-type';
export const FHIR_ALLERGY_CATEGORY = 'http://hl7.org/fhir/allergy-intolerance-category';
export const FHIR_MEDICATION_STATEMENT_STATUS = 'http://hl7.org/fhir/CodeSystem/medication-statement-status';
export const FHIR_OBSERVATION_STATUS = 'http://hl7.org/fhir/observation-status';
export const FHIR_IMMUNIZATION_STATUS = 'http://hl7.org/fhir/event-status';
export const FHIR_GENDER = 'http://hl7.org/fhir/administrative-gender';

type Displays = Readonly<Record<Lang, string>>;

/** `[system, code, {en, es, da}]`: English is the reader-friendly display, not always the FSN. */
const ENTRIES: ReadonlyArray<readonly [string, string, Displays]> = [
  // IPS Composition sections (LOINC), in IPS_SECTIONS order, and the document type
  [LOINC, '11450-4', { en: 'Problem list', es: 'Lista de problemas', da: 'Problemliste' }],
  [LOINC, '48765-2', { en: 'Allergies and intolerances', es: 'Alergias e intolerancias', da: 'Allergier og intolerancer' }],
  [LOINC, '10160-0', { en: 'Medication summary', es: 'Resumen de medicación', da: 'Medicinoversigt' }],
  [LOINC, '11369-6', { en: 'Immunizations', es: 'Vacunaciones', da: 'Vaccinationer' }],
  [LOINC, '30954-2', { en: 'Results', es: 'Resultados de pruebas', da: 'Prøvesvar' }],
  [LOINC, '47519-4', { en: 'History of procedures', es: 'Procedimientos previos', da: 'Tidligere procedurer' }],
  [LOINC, '46264-8', { en: 'Medical devices', es: 'Dispositivos médicos', da: 'Medicinsk udstyr' }],
  [LOINC, '42348-3', { en: 'Advance directives', es: 'Instrucciones previas', da: 'Behandlingstestamente' }],
  [LOINC, '104605-1', { en: 'Alerts', es: 'Alertas', da: 'Advarsler' }],
  [LOINC, '47420-5', { en: 'Functional status', es: 'Estado funcional', da: 'Funktionsevne' }],
  [LOINC, '11348-0', { en: 'History of past illness', es: 'Antecedentes de enfermedades', da: 'Tidligere sygdomme' }],
  [LOINC, '10162-6', { en: 'History of pregnancies', es: 'Antecedentes de embarazos', da: 'Tidligere graviditeter' }],
  [LOINC, '81338-6', { en: 'Patient goals and preferences', es: 'Objetivos y preferencias del paciente', da: 'Patientens mål og ønsker' }],
  [LOINC, '18776-5', { en: 'Plan of care', es: 'Plan de cuidados', da: 'Behandlingsplan' }],
  [LOINC, '29762-2', { en: 'Social history', es: 'Historia social', da: 'Sociale forhold' }],
  [LOINC, '8716-3', { en: 'Vital signs', es: 'Constantes vitales', da: 'Vitale værdier' }],
  [LOINC, '60591-5', { en: 'Patient Summary', es: 'Historia clínica resumida', da: 'Patientresumé' }],
  // LOINC: laboratory, categories and answers
  [LOINC, '882-1', { en: 'ABO and Rh blood group', es: 'Grupo sanguíneo ABO y Rh', da: 'ABO- og Rh-blodtype' }],
  [LOINC, '945-6', { en: 'Anti-C antibodies in serum or plasma', es: 'Anticuerpos anti-C en suero o plasma', da: 'Anti-C-antistoffer i serum eller plasma' }],
  [LOINC, '1018-1', { en: 'Anti-E antibodies in serum or plasma', es: 'Anticuerpos anti-E en suero o plasma', da: 'Anti-E-antistoffer i serum eller plasma' }],
  [LOINC, '1156-9', { en: 'Anti-c antibodies in serum or plasma', es: 'Anticuerpos anti-c en suero o plasma', da: 'Anti-c-antistoffer i serum eller plasma' }],
  [LOINC, '17856-6', { en: 'Haemoglobin A1c in blood (HPLC)', es: 'Hemoglobina A1c en sangre (HPLC)', da: 'Hæmoglobin A1c i blod (HPLC)' }],
  [LOINC, '42803-7', { en: 'Bacteria identified in isolate', es: 'Bacteria identificada en el aislado', da: 'Bakterie påvist i isolat' }],
  [LOINC, '75326-9', { en: 'Problem', es: 'Problema', da: 'Problem' }],
  [LOINC, 'LA6750-9', { en: 'Severe', es: 'Grave', da: 'Svær' }],
  [LOINC, 'LA6751-7', { en: 'Moderate', es: 'Moderada', da: 'Moderat' }],
  // SNOMED CT: problems and diagnoses
  [SNOMED, '13645005', { en: 'Chronic obstructive pulmonary disease', es: 'Enfermedad pulmonar obstructiva crónica (EPOC)', da: 'Kronisk obstruktiv lungesygdom (KOL)' }],
  [SNOMED, '48447003', { en: 'Chronic heart failure', es: 'Insuficiencia cardíaca crónica', da: 'Kronisk hjertesvigt' }],
  [SNOMED, '22298006', { en: 'Myocardial infarction', es: 'Infarto de miocardio', da: 'Myokardieinfarkt (blodprop i hjertet)' }],
  [SNOMED, '254837009', { en: 'Malignant tumour of breast', es: 'Tumor maligno de mama', da: 'Ondartet svulst i brystet' }],
  [SNOMED, '198436008', { en: 'Menopausal flushing', es: 'Sofocos menopáusicos', da: 'Hedeture i overgangsalderen' }],
  [SNOMED, '160245001', { en: 'No current problems or disability', es: 'Sin problemas ni discapacidad actuales', da: 'Ingen aktuelle problemer eller funktionsnedsættelser' }],
  // SNOMED CT: allergies, intolerances, substances, reactions
  [SNOMED, '373270004', { en: 'Penicillins', es: 'Penicilinas', da: 'Penicilliner' }],
  [SNOMED, '716186003', { en: 'No known allergy', es: 'Sin alergias conocidas', da: 'Ingen kendte allergier' }],
  [SNOMED, '782415009', { en: 'Lactose intolerance', es: 'Intolerancia a la lactosa', da: 'Laktoseintolerans' }],
  [SNOMED, '1269424006', { en: 'Gluten intolerance', es: 'Intolerancia al gluten', da: 'Glutenintolerans' }],
  [SNOMED, '89811004', { en: 'Gluten', es: 'Gluten', da: 'Gluten' }],
  [SNOMED, '373568007', { en: 'Chlorhexidine', es: 'Clorhexidina', da: 'Klorhexidin' }],
  [SNOMED, '21522001', { en: 'Abdominal pain', es: 'Dolor abdominal', da: 'Mavesmerter' }],
  [SNOMED, '116289008', { en: 'Abdominal bloating', es: 'Distensión abdominal', da: 'Oppustethed' }],
  [SNOMED, '62315008', { en: 'Diarrhoea', es: 'Diarrea', da: 'Diarré' }],
  [SNOMED, '247472004', { en: 'Hives', es: 'Urticaria', da: 'Nældefeber' }],
  [SNOMED, '84229001', { en: 'Fatigue', es: 'Fatiga', da: 'Træthed' }],
  // SNOMED CT: medicines, forms, results, body sites
  [SNOMED, '108774000', { en: 'Anastrozole', es: 'Anastrozol', da: 'Anastrozol' }],
  [SNOMED, '412588001', { en: 'Black cohosh extract (Cimicifuga racemosa)', es: 'Extracto de cimicífuga (Cimicifuga racemosa)', da: 'Ekstrakt af sølvlys (Cimicifuga racemosa)' }],
  [SNOMED, '386869006', { en: 'Bisoprolol fumarate', es: 'Fumarato de bisoprolol', da: 'Bisoprololfumarat' }],
  [SNOMED, '23281011000036106', { en: 'Bisoprolol fumarate 2.5 mg tablet', es: 'Bisoprolol fumarato 2,5 mg comprimido', da: 'Bisoprololfumarat 2,5 mg tablet' }],
  [SNOMED, '787481004', { en: 'No known medications', es: 'Sin medicación conocida', da: 'Ingen kendt medicin' }],
  [SNOMED, '385055001', { en: 'Tablet', es: 'Comprimido', da: 'Tablet' }],
  [SNOMED, '10828004', { en: 'Positive', es: 'Positivo', da: 'Positiv' }],
  [SNOMED, '260385009', { en: 'Negative', es: 'Negativo', da: 'Negativ' }],
  [SNOMED, '278149003', { en: 'Blood group A Rh(D) positive', es: 'Grupo sanguíneo A Rh(D) positivo', da: 'Blodtype A, RhD-positiv' }],
  [SNOMED, '115329001', { en: 'Meticillin-resistant Staphylococcus aureus (MRSA)', es: 'Staphylococcus aureus resistente a meticilina (SARM)', da: 'Methicillinresistent Staphylococcus aureus (MRSA)' }],
  [SNOMED, '72098002', { en: 'Left upper arm', es: 'Brazo izquierdo', da: 'Venstre overarm' }],
  // ATC (WHO) and EDQM standard terms
  [ATC, 'R03BB04', { en: 'Tiotropium bromide', es: 'Bromuro de tiotropio', da: 'Tiotropiumbromid' }],
  [ATC, 'C03CA01', { en: 'Furosemide', es: 'Furosemida', da: 'Furosemid' }],
  [ATC, 'L02BG03', { en: 'Anastrozole', es: 'Anastrozol', da: 'Anastrozol' }],
  [ATC, 'G02CX04', { en: 'Black cohosh root (Cimicifugae rhizoma)', es: 'Rizoma de cimicífuga (Cimicifugae rhizoma)', da: 'Sølvlysrod (Cimicifugae rhizoma)' }],
  [EDQM, '20053000', { en: 'Oral use', es: 'Vía oral', da: 'Oral anvendelse' }],
  [EDQM, '20020000', { en: 'Inhalation use', es: 'Vía inhalatoria', da: 'Til inhalation' }],
  // Vaccines and classifications
  [CVX, '141', { en: 'Seasonal influenza vaccine, injectable', es: 'Vacuna antigripal estacional, inyectable', da: 'Sæsoninfluenzavaccine til injektion' }],
  [ICD10, 'N95.1', { en: 'Menopausal and female climacteric states', es: 'Estados menopáusicos y climatéricos femeninos', da: 'Menopause og klimakterium hos kvinder' }],
  [ICDO3, '8500/3', { en: 'Infiltrating duct carcinoma, NOS', es: 'Carcinoma ductal infiltrante, SAI', da: 'Infiltrerende duktalt karcinom, UNS' }],
  // IPS absent and unknown data
  [ABSENT, 'no-known-allergies', { en: 'No known allergies', es: 'Sin alergias conocidas', da: 'Ingen kendte allergier' }],
  [ABSENT, 'no-known-food-allergies', { en: 'No known food allergies', es: 'Sin alergias alimentarias conocidas', da: 'Ingen kendte fødevareallergier' }],
  [ABSENT, 'no-known-medication-allergies', { en: 'No known medication allergies', es: 'Sin alergias medicamentosas conocidas', da: 'Ingen kendte lægemiddelallergier' }],
  [ABSENT, 'no-allergy-info', { en: 'No information about allergies', es: 'Sin información sobre alergias', da: 'Ingen oplysninger om allergier' }],
  [ABSENT, 'no-known-problems', { en: 'No known problems', es: 'Sin problemas conocidos', da: 'Ingen kendte problemer' }],
  [ABSENT, 'no-problem-info', { en: 'No information about problems', es: 'Sin información sobre problemas', da: 'Ingen oplysninger om problemer' }],
  [ABSENT, 'no-known-medications', { en: 'No known medications', es: 'Sin medicación conocida', da: 'Ingen kendt medicin' }],
  [ABSENT, 'no-medication-info', { en: 'No information about medications', es: 'Sin información sobre medicación', da: 'Ingen oplysninger om medicin' }],
  // HL7 status code systems
  [CONDITION_CLINICAL, 'active', { en: 'Active', es: 'Activo', da: 'Aktiv' }],
  [CONDITION_CLINICAL, 'recurrence', { en: 'Recurrence', es: 'Recurrencia', da: 'Genopstået' }],
  [CONDITION_CLINICAL, 'relapse', { en: 'Relapse', es: 'Recaída', da: 'Tilbagefald' }],
  [CONDITION_CLINICAL, 'inactive', { en: 'Inactive', es: 'Inactivo', da: 'Inaktiv' }],
  [CONDITION_CLINICAL, 'remission', { en: 'In remission', es: 'En remisión', da: 'I remission' }],
  [CONDITION_CLINICAL, 'resolved', { en: 'Resolved', es: 'Resuelto', da: 'Overstået' }],
  [CONDITION_VERIFICATION, 'confirmed', { en: 'Confirmed', es: 'Confirmado', da: 'Bekræftet' }],
  [CONDITION_VERIFICATION, 'provisional', { en: 'Provisional', es: 'Provisional', da: 'Foreløbig' }],
  [CONDITION_VERIFICATION, 'unconfirmed', { en: 'Unconfirmed', es: 'No confirmado', da: 'Ikke bekræftet' }],
  [CONDITION_VERIFICATION, 'refuted', { en: 'Refuted', es: 'Descartado', da: 'Afkræftet' }],
  [ALLERGY_CLINICAL, 'active', { en: 'Active', es: 'Activa', da: 'Aktiv' }],
  [ALLERGY_CLINICAL, 'inactive', { en: 'Inactive', es: 'Inactiva', da: 'Inaktiv' }],
  [ALLERGY_CLINICAL, 'resolved', { en: 'Resolved', es: 'Resuelta', da: 'Overstået' }],
  [ALLERGY_VERIFICATION, 'confirmed', { en: 'Confirmed', es: 'Confirmada', da: 'Bekræftet' }],
  [ALLERGY_VERIFICATION, 'unconfirmed', { en: 'Unconfirmed', es: 'No confirmada', da: 'Ikke bekræftet' }],
  [ALLERGY_VERIFICATION, 'refuted', { en: 'Refuted', es: 'Descartada', da: 'Afkræftet' }],
  [LIST_EMPTY_REASON, 'withheld', { en: "Withheld by the patient's consent", es: 'Retenido por el consentimiento del paciente', da: 'Tilbageholdt efter patientens samtykke' }],
  [LIST_EMPTY_REASON, 'unavailable', { en: 'Unavailable', es: 'No disponible', da: 'Ikke tilgængelig' }],
  [LIST_EMPTY_REASON, 'nilknown', { en: 'Nothing known', es: 'Nada conocido', da: 'Intet kendt' }],
  [LIST_EMPTY_REASON, 'notasked', { en: 'Not asked', es: 'No preguntado', da: 'Ikke spurgt' }],
  [LIST_EMPTY_REASON, 'notstarted', { en: 'Not started', es: 'No iniciado', da: 'Ikke påbegyndt' }],
  [LIST_EMPTY_REASON, 'closed', { en: 'Closed', es: 'Cerrado', da: 'Lukket' }],
  [FHIR_ALLERGY_CRITICALITY, 'low', { en: 'Low risk', es: 'Riesgo bajo', da: 'Lav risiko' }],
  [FHIR_ALLERGY_CRITICALITY, 'high', { en: 'High risk', es: 'Riesgo alto', da: 'Høj risiko' }],
  [FHIR_ALLERGY_CRITICALITY, 'unable-to-assess', { en: 'Unable to assess risk', es: 'Riesgo no evaluable', da: 'Risiko kan ikke vurderes' }],
  [FHIR_ALLERGY_TYPE, 'allergy', { en: 'Allergy', es: 'Alergia', da: 'Allergi' }],
  [FHIR_ALLERGY_TYPE, 'intolerance', { en: 'Intolerance', es: 'Intolerancia', da: 'Intolerans' }],
  [FHIR_ALLERGY_CATEGORY, 'food', { en: 'Food', es: 'Alimento', da: 'Fødevare' }],
  [FHIR_ALLERGY_CATEGORY, 'medication', { en: 'Medication', es: 'Medicamento', da: 'Lægemiddel' }],
  [FHIR_ALLERGY_CATEGORY, 'environment', { en: 'Environment', es: 'Ambiental', da: 'Miljø' }],
  [FHIR_ALLERGY_CATEGORY, 'biologic', { en: 'Biologic', es: 'Biológico', da: 'Biologisk' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'active', { en: 'Active', es: 'Activo', da: 'Aktiv' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'completed', { en: 'Completed', es: 'Finalizado', da: 'Afsluttet' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'stopped', { en: 'Stopped', es: 'Suspendido', da: 'Seponeret' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'on-hold', { en: 'On hold', es: 'En pausa', da: 'Pauseret' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'intended', { en: 'Intended', es: 'Previsto', da: 'Planlagt' }],
  [FHIR_MEDICATION_STATEMENT_STATUS, 'unknown', { en: 'Unknown', es: 'Desconocido', da: 'Ukendt' }],
  [FHIR_OBSERVATION_STATUS, 'final', { en: 'Final', es: 'Definitivo', da: 'Endeligt' }],
  [FHIR_OBSERVATION_STATUS, 'preliminary', { en: 'Preliminary', es: 'Preliminar', da: 'Foreløbigt' }],
  [FHIR_OBSERVATION_STATUS, 'amended', { en: 'Amended', es: 'Corregido', da: 'Rettet' }],
  [FHIR_OBSERVATION_STATUS, 'registered', { en: 'Registered', es: 'Registrado', da: 'Registreret' }],
  [FHIR_IMMUNIZATION_STATUS, 'completed', { en: 'Completed', es: 'Administrada', da: 'Givet' }],
  [FHIR_IMMUNIZATION_STATUS, 'not-done', { en: 'Not done', es: 'No administrada', da: 'Ikke givet' }],
  [FHIR_GENDER, 'male', { en: 'Male', es: 'Hombre', da: 'Mand' }],
  [FHIR_GENDER, 'female', { en: 'Female', es: 'Mujer', da: 'Kvinde' }],
  [FHIR_GENDER, 'other', { en: 'Other', es: 'Otro', da: 'Andet' }],
  [FHIR_GENDER, 'unknown', { en: 'Unknown', es: 'Desconocido', da: 'Ukendt' }],
];

/** Some fixtures write a version into the system (`...v2-0360|2.7`); the catalogue has none. */
function keyOf(system: string, code: string): string {
  return `${system.split('|')[0] ?? system}|${code}`;
}

const CATALOGUE: ReadonlyMap<string, Displays> = new Map(ENTRIES.map(([system, code, d]) => [keyOf(system, code), d]));

export interface CodingLike {
  readonly system?: string | undefined;
  readonly code?: string | undefined;
  readonly display?: string | undefined;
}

export interface ConceptLike {
  readonly coding?: readonly CodingLike[] | undefined;
  readonly text?: string | undefined;
}

/** What the page shows for one coded value: the reader's text, and the document's own beside it. */
export interface Translated {
  /** In the reader's language when `translated`, else the original. */
  readonly text: string;
  /** The document's display (or text, or code): always shown. */
  readonly original: string;
  readonly translated: boolean;
  readonly system: string | undefined;
  readonly code: string | undefined;
}

export function lookup(system: string | undefined, code: string | undefined, lang: Lang): string | undefined {
  if (system === undefined || code === undefined) return undefined;
  return CATALOGUE.get(keyOf(system, code))?.[lang];
}

export function translateCoding(coding: CodingLike, lang: Lang, fallbackText?: string): Translated {
  const original = coding.display ?? fallbackText ?? coding.code ?? '';
  const text = lookup(coding.system, coding.code, lang);
  return { text: text ?? original, original, translated: text !== undefined, system: coding.system, code: coding.code };
}

/**
 * A CodeableConcept for the reader: the first coding the catalogue knows, else the first coding,
 * else only the concept's text (never translated: free text has no code to look up).
 */
export function translateConcept(concept: ConceptLike | undefined, lang: Lang): Translated | undefined {
  if (concept === undefined) return undefined;
  const codings = concept.coding ?? [];
  const known = codings.find((c) => lookup(c.system, c.code, lang) !== undefined);
  const chosen = known ?? codings[0];
  if (chosen !== undefined) return translateCoding(chosen, lang, concept.text);
  if (concept.text !== undefined) return { text: concept.text, original: concept.text, translated: false, system: undefined, code: undefined };
  return undefined;
}

/** A FHIR `code` element (status, criticality...) bound to `system`. */
export function translateCode(system: string, code: string | undefined, lang: Lang): Translated | undefined {
  return code === undefined ? undefined : translateCoding({ system, code }, lang);
}

/** The reader's title of an IPS section (LOINC code), if the catalogue has one. */
export function sectionTitle(code: string, lang: Lang): string | undefined {
  return lookup(LOINC, code, lang);
}
