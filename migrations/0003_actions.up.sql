-- Actions: what the rules asked Stream to do, every attempt to do it, and how
-- it ended. One actions row per action a decision requested (after merging,
-- the merged-away ones end as "superseded"), written in the same transaction
-- as the event, its decision and the durable job that carries it out. The
-- three tables are append-only audit: a retry is a new attempt row, the end
-- is one outcome row. The daily counters are not audit, they are the safety
-- valve's state, and are updated in place.
CREATE TABLE actions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint      NOT NULL REFERENCES events (id),
    position        integer     NOT NULL, -- index in the decision's actions
    rule_id         text        NOT NULL,
    type            text        NOT NULL, -- flag, mute, ban, delete, warn
    target_user_id  text,
    message_id      text,
    channel_cid     text,
    params          jsonb       NOT NULL, -- the policy.Action as decided
    idempotency_key text        NOT NULL, -- event id and position: one action per request, however often a job runs
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX actions_idempotency_key ON actions (idempotency_key);
CREATE INDEX actions_event_idx ON actions (event_id);
CREATE INDEX actions_user_idx ON actions (target_user_id, created_at DESC) WHERE target_user_id IS NOT NULL;
CREATE INDEX actions_rule_idx ON actions (rule_id, created_at DESC);
CREATE INDEX actions_created_at_idx ON actions (created_at DESC);

CREATE TABLE action_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id    bigint      NOT NULL REFERENCES actions (id),
    attempt      integer     NOT NULL, -- 1, 2, … calls made to Stream for this action
    endpoint     text        NOT NULL, -- "POST /moderation/ban"
    http_status  integer,              -- NULL: no answer (network error, timeout)
    stream_code  integer,              -- Stream's error code, NULL on success
    duration_ms  double precision NOT NULL,
    error        text,
    at           timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX action_attempts_action_attempt_key ON action_attempts (action_id, attempt);
CREATE INDEX action_attempts_at_idx ON action_attempts (at DESC);

CREATE TABLE action_outcomes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id  bigint      NOT NULL REFERENCES actions (id),
    outcome    text        NOT NULL CHECK (outcome IN ('applied', 'failed', 'held', 'dry_run', 'superseded')),
    reason     text        NOT NULL DEFAULT '',
    request    jsonb,                 -- dry_run: the request that would have been sent
    at         timestamptz NOT NULL DEFAULT now()
);

-- One final outcome per action: a job that runs twice cannot end twice.
CREATE UNIQUE INDEX action_outcomes_action_key ON action_outcomes (action_id);
CREATE INDEX action_outcomes_at_idx ON action_outcomes (at DESC, outcome);

CREATE TRIGGER actions_append_only
    BEFORE UPDATE OR DELETE ON actions
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER action_attempts_append_only
    BEFORE UPDATE OR DELETE ON action_attempts
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER action_outcomes_append_only
    BEFORE UPDATE OR DELETE ON action_outcomes
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();

-- Daily caps: how many actions of a type were let through on a UTC day.
CREATE TABLE action_daily_counts (
    day   date    NOT NULL,
    type  text    NOT NULL,
    n     integer NOT NULL,
    PRIMARY KEY (day, type)
);
