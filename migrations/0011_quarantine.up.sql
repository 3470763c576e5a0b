-- Deliveries that Postgres refused for their data, however often they are
-- retried (a value no column accepts, an index row too large, a
-- constraint): each is kept here, in its own transaction, instead of being
-- answered 503 until Stream gives up and the event is lost unmoderated.
-- Staff list them (GET /api/v1/quarantine, `moderator audit quarantine`).
-- A retry of the same body finds its row (the unique index on the hash).
CREATE TABLE quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    webhook_id     text,                 -- X-Webhook-Id as events would store it (policy.SafeID)
    attempt        integer     NOT NULL,
    api_key        text        NOT NULL,
    compressed     boolean     NOT NULL,
    body_sha256    bytea       NOT NULL, -- hash of the verified (decompressed) body, as in events
    body           bytea       NOT NULL, -- the verified body, byte for byte as signed
    event_type     text,
    headers        jsonb       NOT NULL, -- the delivery's headers that matter (webhook id as sent, attempt, key, gzip)
    error          text        NOT NULL, -- why Postgres refused it
    sqlstate       text                  -- its SQLSTATE, when Postgres answered one
);

CREATE UNIQUE INDEX quarantine_body_sha256_key ON quarantine (body_sha256);
CREATE INDEX quarantine_quarantined_at_idx ON quarantine (quarantined_at DESC, id DESC);

CREATE TRIGGER quarantine_append_only
    BEFORE UPDATE OR DELETE ON quarantine
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();

-- The exact signed bytes of a recorded event whose payload had to be
-- repaired to be stored as jsonb (a \u0000 escape, a lone surrogate,
-- invalid UTF-8 become U+FFFD there). Rare; the payload stays readable and
-- searchable, this is the evidence of what Stream signed.
CREATE TABLE event_raw_bodies (
    event_id bigint PRIMARY KEY,
    body     bytea  NOT NULL
);

CREATE TRIGGER event_raw_bodies_append_only
    BEFORE UPDATE OR DELETE ON event_raw_bodies
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
