-- Tamper-evident audit log (DESIGN.md flow 6, issue 7). Every row is one leaf of a Merkle tree
-- (RFC 9162 section 2.1): seq is the 0-based leaf index, leaf_hash = SHA-256(0x00 || canonical JSON
-- of event). Appends are serialised by the application (advisory lock) so seq is gap-free across
-- replicas; the primary key makes a duplicate index impossible even if that discipline slipped.
CREATE TABLE audit_log (
  seq bigint PRIMARY KEY CHECK (seq >= 0),
  recorded_at timestamptz NOT NULL,
  -- Pseudonymous key of the patient the event is about, for the citizen's access log; NULL for
  -- events about no patient (sign-in, trust-list change).
  patient_key text,
  event jsonb NOT NULL,
  leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

CREATE INDEX audit_log_patient_key_idx ON audit_log (patient_key) WHERE patient_key IS NOT NULL;

-- Append-only: the gateway's role can insert, never rewrite. Tampering then needs a superuser to
-- disable the trigger, and `ncpeh audit verify` (plus the peers' witnessed checkpoints) still
-- catches the result.
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

-- TRUNCATE bypasses row triggers; it gets its own statement trigger.
CREATE TRIGGER audit_log_no_truncate
  BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Our signed tree heads: JWS (typ ncpeh-checkpoint+jws) over {treeSize, rootHash, timestamp, ncpId}.
CREATE TABLE audit_checkpoints (
  tree_size bigint PRIMARY KEY CHECK (tree_size >= 0),
  root_hash bytea NOT NULL CHECK (octet_length(root_hash) = 32),
  signed_at timestamptz NOT NULL,
  jws text NOT NULL
);

-- Peers' checkpoints we verified and kept (we witness their logs). Each new one must be consistent
-- with the largest one kept for that peer, so a peer that rewrites or rolls back its history is
-- caught here.
CREATE TABLE audit_witness (
  peer_country text NOT NULL,
  tree_size bigint NOT NULL CHECK (tree_size >= 0),
  root_hash bytea NOT NULL CHECK (octet_length(root_hash) = 32),
  jws text NOT NULL,
  received_at timestamptz NOT NULL,
  -- The consistency proof from the previously witnessed size (its hashes concatenated, 32 bytes
  -- each), kept so `audit verify` can re-check the chain later without asking the peer; NULL for
  -- the first checkpoint witnessed from a peer.
  from_size bigint,
  consistency_proof bytea CHECK (octet_length(consistency_proof) % 32 = 0),
  PRIMARY KEY (peer_country, tree_size)
);

-- Signed checkpoints and witness records are evidence too: append-only like the log.
CREATE TRIGGER audit_checkpoints_append_only
  BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_witness_append_only
  BEFORE UPDATE OR DELETE ON audit_witness
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
