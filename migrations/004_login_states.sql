-- Citizen sign-ins in progress (OpenID Connect code flow). The PKCE verifier and nonce stay
-- server-side, so replicas behind a load balancer share them; a row is consumed exactly once by the
-- callback (DELETE ... RETURNING) and expires after ten minutes.
CREATE TABLE login_states (
  state text PRIMARY KEY,
  provider_id text NOT NULL,
  nonce text NOT NULL,
  code_verifier text NOT NULL,
  return_to text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_states_created_at ON login_states (created_at);
