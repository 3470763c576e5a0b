-- Human review: appeals, their decisions, overturns of automatic actions,
-- the immunity an overturn grants, and the staff audit log. All of it is
-- append-only audit: a reversal or a decision is a new row, never an edit.
--
-- An overturn reverses one action, or every action of one decision. For
-- each action it covers there is one action_reversals row saying what was
-- done about it: a reversal action was enqueued (the unban, unmute, unflag
-- or undelete is itself an actions row, carried out by the same durable
-- pipeline, with its attempts and outcome), a pending action was cancelled
-- before it ran (its outcome is 'superseded'), or there was nothing to undo
-- (it had failed, been held, superseded or only dry-run).

CREATE TABLE appeals (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text        NOT NULL,            -- who appeals
    action_id    bigint      REFERENCES actions (id),
    decision_id  bigint      REFERENCES decisions (id),
    statement    text        NOT NULL,            -- the user's own words
    source       text        NOT NULL,            -- where it came from: in_app, email, support, …
    recorded_by  text        NOT NULL,            -- the staff token's sub
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (action_id IS NOT NULL OR decision_id IS NOT NULL)
);
CREATE INDEX appeals_created_at_idx ON appeals (created_at DESC);
CREATE INDEX appeals_user_idx ON appeals (user_id, created_at DESC);
CREATE INDEX appeals_action_idx ON appeals (action_id) WHERE action_id IS NOT NULL;
CREATE INDEX appeals_decision_idx ON appeals (decision_id) WHERE decision_id IS NOT NULL;

CREATE TABLE overturns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id     bigint      REFERENCES actions (id),   -- one action overturned, or
    decision_id   bigint      REFERENCES decisions (id), -- every action of a decision
    appeal_id     bigint      REFERENCES appeals (id),   -- the appeal it decides, if any
    reviewer      text        NOT NULL,                  -- the staff token's sub
    reason        text        NOT NULL CHECK (btrim(reason) <> ''),
    immune_until  timestamptz,                           -- the rules' immunity against the user ends
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((action_id IS NULL) <> (decision_id IS NULL))
);
CREATE INDEX overturns_created_at_idx ON overturns (created_at DESC);
CREATE INDEX overturns_action_idx ON overturns (action_id) WHERE action_id IS NOT NULL;
CREATE INDEX overturns_decision_idx ON overturns (decision_id) WHERE decision_id IS NOT NULL;

CREATE TABLE appeal_decisions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appeal_id    bigint      NOT NULL REFERENCES appeals (id),
    outcome      text        NOT NULL CHECK (outcome IN ('upheld', 'overturned')),
    reviewer     text        NOT NULL,
    reason       text        NOT NULL CHECK (btrim(reason) <> ''),
    overturn_id  bigint      REFERENCES overturns (id),  -- set when outcome = 'overturned'
    decided_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'overturned') = (overturn_id IS NOT NULL))
);
-- An appeal is decided once.
CREATE UNIQUE INDEX appeal_decisions_appeal_key ON appeal_decisions (appeal_id);
CREATE INDEX appeal_decisions_decided_at_idx ON appeal_decisions (decided_at DESC);

-- Reversal actions are ordinary actions rows that point at what they undo.
ALTER TABLE actions ADD COLUMN reverses_action_id bigint REFERENCES actions (id);
ALTER TABLE actions ADD COLUMN overturn_id bigint REFERENCES overturns (id);
CREATE INDEX actions_reverses_idx ON actions (reverses_action_id) WHERE reverses_action_id IS NOT NULL;

CREATE TABLE action_reversals (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    overturn_id         bigint      NOT NULL REFERENCES overturns (id),
    action_id           bigint      NOT NULL REFERENCES actions (id), -- the automatic action overturned
    disposition         text        NOT NULL CHECK (disposition IN ('reversed', 'cancelled', 'nothing_to_undo')),
    reversal_action_id  bigint      REFERENCES actions (id),          -- the unban/unmute/unflag/undelete, when reversed
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((disposition = 'reversed') = (reversal_action_id IS NOT NULL))
);
-- An action is overturned once: a second overturn of it finds this row.
CREATE UNIQUE INDEX action_reversals_action_key ON action_reversals (action_id);
CREATE INDEX action_reversals_overturn_idx ON action_reversals (overturn_id);

-- After an overturn, the rule that acted may not act against the same user
-- until `until`; its matches meanwhile are recorded, their actions end as
-- 'suppressed'.
CREATE TABLE rule_immunities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    overturn_id  bigint      NOT NULL REFERENCES overturns (id),
    rule_id      text        NOT NULL,
    user_id      text        NOT NULL,
    until        timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_immunities_user_idx ON rule_immunities (user_id, rule_id, until DESC);

ALTER TABLE action_outcomes DROP CONSTRAINT action_outcomes_outcome_check;
ALTER TABLE action_outcomes ADD CONSTRAINT action_outcomes_outcome_check
    CHECK (outcome IN ('applied', 'failed', 'held', 'dry_run', 'superseded', 'suppressed'));

-- Every staff act: who searched whose history, who recorded, decided or
-- overturned what, when and why.
CREATE TABLE staff_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,  -- token sub
    role            text        NOT NULL,  -- the role the token carried
    act             text        NOT NULL,  -- search, timeline, view_decision, record_appeal, decide_appeal, overturn, rule_stats, …
    target_user_id  text,                  -- whose history, when one user's
    target          text,                  -- what else it concerned: "decision:12", "action:7", "appeal:3"
    reason          text,                  -- given for decisions and overturns
    params          jsonb       NOT NULL DEFAULT '{}'  -- the request's filters, ids, outcome
);
CREATE INDEX staff_audit_at_idx ON staff_audit (at DESC);
CREATE INDEX staff_audit_actor_idx ON staff_audit (actor, at DESC);
CREATE INDEX staff_audit_target_user_idx ON staff_audit (target_user_id, at DESC) WHERE target_user_id IS NOT NULL;

CREATE TRIGGER appeals_append_only BEFORE UPDATE OR DELETE ON appeals
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER overturns_append_only BEFORE UPDATE OR DELETE ON overturns
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER appeal_decisions_append_only BEFORE UPDATE OR DELETE ON appeal_decisions
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER action_reversals_append_only BEFORE UPDATE OR DELETE ON action_reversals
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER rule_immunities_append_only BEFORE UPDATE OR DELETE ON rule_immunities
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER staff_audit_append_only BEFORE UPDATE OR DELETE ON staff_audit
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
