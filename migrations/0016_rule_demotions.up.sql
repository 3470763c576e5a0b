-- Rules demoted to shadow by their guard (reviewers overturned too many of
-- their actions), and restored by an admin. Append-only: each demotion and
-- each restoration is a row; a rule is demoted while its latest row is a
-- demotion of its current definition (rule_digest), so that a demotion
-- survives reloads and restarts until restored or until the rule changes.
CREATE TABLE rule_demotions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id        text        NOT NULL,
    rule_digest    text        NOT NULL,   -- policy.RuleInfo.Digest of the rule demoted
    act            text        NOT NULL CHECK (act IN ('demote', 'restore')),
    actor          text        NOT NULL,   -- 'system' for a demotion, the admin's sub for a restoration
    reason         text        NOT NULL CHECK (btrim(reason) <> ''),
    overturn_rate  double precision,       -- demote: the rate that tripped the guard
    taken          integer,                -- demote: taken actions in the window
    overturned     integer,
    window_seconds bigint,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_demotions_rule_idx ON rule_demotions (rule_id, id DESC);

CREATE TRIGGER rule_demotions_append_only
    BEFORE UPDATE OR DELETE ON rule_demotions
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
