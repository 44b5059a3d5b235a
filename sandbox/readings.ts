/**
 * What a Spanish hospital sends home about a patient in the tests and the benchmark: an SpO2 reading
 * and the emergency encounter, as a FHIR collection Bundle whose resources name the patient by the
 * opaque reference the identification returned (`Patient/<ref>`). Entry 0 is the Observation.
 */
export function readingsBundle(ref: string, spo2: number): Record<string, unknown> {
  const subject = { reference: `Patient/${ref}` };
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' }] },
          subject,
          effectiveDateTime: new Date().toISOString(),
          valueQuantity: { value: spo2, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
        },
      },
      { resource: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER' }, subject } },
    ],
  };
}
