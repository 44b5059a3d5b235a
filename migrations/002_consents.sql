-- Consents citizens grant (DESIGN.md flow 1; src/consent/). `resource` is the FHIR Consent in IHE PCF
-- shape, the record the citizen sees; the columns beside it index the same terms, so a decision
-- reads a handful of arrays instead of walking JSON. Both are written by one statement and change
-- together on revocation (status, revoked_at and resource.status in one UPDATE).
-- Rows are never deleted: a revoked consent stays, for the citizen's history and the audit trail.
CREATE TABLE consents (
  id uuid PRIMARY KEY,
  -- "system|value" of the national patient identifier (e.g. urn:oid:1.2.208.176.1.2|0201609995).
  patient_key text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('permit', 'opt-out')),
  status text NOT NULL CHECK (status IN ('active', 'revoked')),
  countries text[] NOT NULL,
  roles text[] NOT NULL,
  purposes text[] NOT NULL,
  sections text[] NOT NULL,
  period_start timestamptz NOT NULL,
  -- Exclusive; NULL means no expiry.
  period_end timestamptz,
  resource jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CHECK (period_end IS NULL OR period_end > period_start),
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

-- Every decision and every listing looks up one patient's consents, usually only the active ones.
CREATE INDEX consents_patient_status_idx ON consents (patient_key, status);
