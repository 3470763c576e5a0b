-- The rules' verdict on each evaluated event, written in the same
-- transaction as the event. Every evaluated event records the rule set
-- version it was judged by (events.rule_set_version; NULL: not evaluated,
-- such as the service's own echoes); a decisions row exists when a rule
-- matched or failed, so a reviewer sees exactly what fired and why.
ALTER TABLE events ADD COLUMN rule_set_version text;

CREATE TABLE decisions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint      NOT NULL REFERENCES events (id),
    decided_at       timestamptz NOT NULL DEFAULT now(),
    rule_set_version text        NOT NULL,
    matched_rules    text[]      NOT NULL, -- ids of every matching rule, enforce and shadow, in order
    enforced_rules   text[]      NOT NULL, -- the subset in enforce mode: these asked for actions
    user_id          text,                 -- copied from the event for appeal lookups
    channel_cid      text,
    message_id       text,
    matches          jsonb       NOT NULL, -- per rule: mode, evidence (the values it read), actions, reason
    actions          jsonb       NOT NULL, -- the actions requested (enforce mode only)
    errors           jsonb       NOT NULL  -- rules that failed on this event, and why
);

CREATE UNIQUE INDEX decisions_event_id_key ON decisions (event_id);
CREATE INDEX decisions_decided_at_idx ON decisions (decided_at DESC);
CREATE INDEX decisions_matched_rules_idx ON decisions USING gin (matched_rules);
CREATE INDEX decisions_user_idx ON decisions (user_id, decided_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX decisions_channel_idx ON decisions (channel_cid, decided_at DESC) WHERE channel_cid IS NOT NULL;
CREATE INDEX decisions_message_idx ON decisions (message_id) WHERE message_id IS NOT NULL;

CREATE TRIGGER decisions_append_only
    BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
