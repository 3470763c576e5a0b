-- Every call to Stream is recorded before it is made (action_calls: the
-- intent) and its answer after (action_attempts, with the same attempt
-- number). A call whose answer was never recorded (the process stopped, or
-- the database failed after Stream answered) is visible as a call with no
-- attempt row: a rerun records it as "no answer" before it calls again,
-- and an overturn counts it as a call that may have taken effect.
CREATE TABLE action_calls (
    action_id  bigint      NOT NULL REFERENCES actions (id),
    attempt    integer     NOT NULL, -- the number its attempt row will carry
    endpoint   text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (action_id, attempt)
);

CREATE TRIGGER action_calls_append_only
    BEFORE UPDATE OR DELETE ON action_calls
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();

-- When the call began; an attempt recorded late keeps its real times
-- (started_at, and at: when the answer came). NULL before this migration.
ALTER TABLE action_attempts ADD COLUMN started_at timestamptz;

-- The id of the message a warning posts, chosen at random when the action
-- is recorded and fixed for every retry: Stream refuses a second message
-- with the same id, so a warning is posted once however often its call is
-- repeated, and it can never collide with another database's warnings (a
-- restored backup, a second environment on the same Stream app).
ALTER TABLE actions ADD COLUMN stream_message_id text;

-- The call budget of each Stream endpoint, shared by every replica: a token
-- bucket (tokens may go below zero: calls reserved ahead, each waiting its
-- turn). Not audit: working state, updated in place.
CREATE TABLE rate_budgets (
    endpoint   text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL
);
