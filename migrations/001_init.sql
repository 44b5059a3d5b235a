-- Replay cache: identifiers that may be accepted only once. Holds the `jti` of every signed (JWS)
-- request a peer gateway sent us and the ID of every eID assertion we consumed, each under its own
-- `scope`, so a captured request or assertion cannot be played again while it is still valid.
-- Rows are purged once `expires_at` (the token's own expiry) has passed: an expired token is
-- refused on its lifetime, so remembering it longer buys nothing.
CREATE TABLE replay_cache (
  scope text NOT NULL,
  jti text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, jti)
);

-- The purge job deletes by expiry.
CREATE INDEX replay_cache_expires_at_idx ON replay_cache (expires_at);
