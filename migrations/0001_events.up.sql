-- Every event Stream delivered and the service accepted, one row per event.
-- Deliveries that repeat an event (Stream's retries share X-Webhook-Id; a
-- replay reuses the signed body under a new id) create no row: the two unique
-- indexes below are the deduplication keys. Rows are never updated or deleted
-- (see the trigger); retention will drop whole time partitions.
CREATE TABLE events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       text,                    -- X-Webhook-Id; absent on hand-made deliveries
    body_sha256      bytea       NOT NULL,    -- hash of the verified (decompressed) body
    attempt          integer     NOT NULL,    -- X-Webhook-Attempt of the delivery that was recorded
    api_key          text        NOT NULL,    -- which configured key signed it (key rotation)
    compressed       boolean     NOT NULL,
    body_bytes       integer     NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    type             text        NOT NULL,
    created_at       timestamptz,             -- the event's own time, from Stream
    user_id          text,                    -- the user the event concerns (author, target, banned user)
    actor_id         text,                    -- the user who caused it, when the payload tells
    channel_cid      text,
    message_id       text,
    own              boolean     NOT NULL,    -- caused by the service's bot user: never re-evaluated
    ignored          boolean     NOT NULL,    -- a type the service does not act on
    payload          jsonb       NOT NULL     -- the event as Stream sent it
);

CREATE UNIQUE INDEX events_webhook_id_key ON events (webhook_id);
CREATE UNIQUE INDEX events_body_sha256_key ON events (body_sha256);
CREATE INDEX events_received_at_idx ON events (received_at DESC);
CREATE INDEX events_user_idx ON events (user_id, received_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX events_channel_idx ON events (channel_cid, received_at DESC) WHERE channel_cid IS NOT NULL;
CREATE INDEX events_message_idx ON events (message_id, received_at DESC) WHERE message_id IS NOT NULL;
CREATE INDEX events_type_idx ON events (type, received_at DESC);

-- The audit trail is append-only: corrections are new rows.
CREATE FUNCTION forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit table % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
