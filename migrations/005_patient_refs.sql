-- Opaque patient references handed to other countries (DESIGN.md flow 3). A reference reveals
-- neither the national identifier nor the internal id; it is valid only for the requesting country
-- and the HCP session (assertion jti) that identified the patient, and only until that session ends.
CREATE TABLE patient_refs (
  ref text PRIMARY KEY,
  patient_id text NOT NULL,
  patient_key text NOT NULL,
  requester_country text NOT NULL,
  hcp_subject text NOT NULL,
  hcp_session text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patient_refs_expires_at ON patient_refs (expires_at);
