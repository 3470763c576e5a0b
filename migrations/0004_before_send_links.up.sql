-- Links between a before-send decision and the message.new that follows it.
-- When the hook runs Stream has not given the message an id yet, so the
-- link is what Stream saves: the author, the channel and the final text
-- (the rewritten text), hashed into link_key. Only rewrites are keyed: a
-- blocked message never arrives, and an accepted one was not changed.
CREATE TABLE before_send_keys (
    event_id     bigint      PRIMARY KEY REFERENCES events (id), -- the before_send event
    link_key     bytea       NOT NULL,  -- sha256 of user id, channel cid and text (policy.MessageKey)
    outcome      text        NOT NULL,  -- rewrite (the only outcome keyed today)
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX before_send_keys_link_idx ON before_send_keys (link_key, received_at DESC);

-- A message.new linked to the before-send decision that let it through.
CREATE TABLE before_send_links (
    message_event_id     bigint      PRIMARY KEY REFERENCES events (id),
    before_send_event_id bigint      NOT NULL REFERENCES events (id),
    outcome              text        NOT NULL, -- the before-send outcome (rewrite)
    linked_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX before_send_links_before_send_idx ON before_send_links (before_send_event_id);

CREATE TRIGGER before_send_keys_append_only BEFORE UPDATE OR DELETE ON before_send_keys
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER before_send_links_append_only BEFORE UPDATE OR DELETE ON before_send_links
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
