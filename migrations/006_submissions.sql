-- Data back home (DESIGN.md flow 5).
-- Country B: what hospitals submitted, encrypted at rest (AES-256-GCM under a configured data key),
-- and the outbox that delivers it. A submission and its outbox row are written in one transaction.
CREATE TABLE submissions (
  tracking_id uuid PRIMARY KEY,
  client_id text NOT NULL,
  idempotency_key text NOT NULL,
  body_hash text NOT NULL,
  country text NOT NULL,
  patient_ref text NOT NULL,
  hcp_subject text NOT NULL,
  submitted_at timestamptz NOT NULL DEFAULT now(),
  -- Encrypted payload: {bundle, hcp} as JSON; NULL once purged after delivery + retention.
  key_id text,
  payload bytea,
  status text NOT NULL CHECK (status IN ('queued', 'delivering', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  last_error text,
  receipt_jws text,
  delivered_at timestamptz,
  UNIQUE (client_id, idempotency_key)
);
CREATE INDEX submissions_due ON submissions (next_attempt_at) WHERE status IN ('queued', 'delivering');
CREATE INDEX submissions_patient ON submissions (country, patient_ref, submitted_at);

-- Country A: what peers delivered, for deduplication by message id (a redelivery gets the original
-- receipt) and the record of what was registered in the national FHIR server.
CREATE TABLE received_documents (
  message_id text NOT NULL,
  sender_country text NOT NULL,
  content_hash text NOT NULL,
  patient_key text NOT NULL,
  registered jsonb NOT NULL,
  receipt_jws text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sender_country, message_id)
);
