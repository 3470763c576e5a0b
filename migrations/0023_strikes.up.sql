-- Strikes (strikes.* in rules): one compact row per action that counts
-- against its target user, so that the history read finds a user's strikes
-- by one index range scan instead of joining the user's actions to their
-- events and anti-joining outcomes and reversals for every judged message
-- (the statement that dominated intake's slow ones). The rows are derived,
-- not audit: the actions tables keep the truth.
--
-- A row is written by a trigger in the transaction that records its
-- action, and deleted by one in the transaction that takes the strike
-- back: an outcome that keeps the action from being a strike (superseded,
-- failed, held, suppressed) or a reversal by an overturn. Pending and
-- dry-run actions count. Triggers, so that the rows follow the audit
-- tables whichever code (or hand) writes them.
--
-- Shadow rows are a shadow (or demoted) rule's would-be actions, written
-- with the decision that matched: a shadow rule reads the real rows and
-- these, so a shadow ladder climbs as it would enforced; enforced rules
-- read the real rows only. They have no action, so nothing takes them back.
--
-- Rows expire as counter marks do, by the event's recording time
-- (store.ExpireStrikes, store.CounterRetention).
CREATE TABLE strikes (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint      NOT NULL,  -- the event acted on (events.id)
    action_id   bigint      UNIQUE,    -- the action (actions.id); NULL for a shadow row
    user_id     text        NOT NULL,  -- the target user
    strike_key  text        NOT NULL,  -- what one strike is: 'm:' || message id, else 'e:' || event id
    rule_id     text        NOT NULL,
    type        text        NOT NULL,  -- flag, mute, ban, delete, warn
    at          timestamptz NOT NULL,  -- the event's own time (the rules' "now"), else when it was recorded
    shadow      boolean     NOT NULL   -- a shadow rule's would-be action
);

-- The history read: one user's real (or shadow) strikes in a time range.
CREATE INDEX strikes_user_idx ON strikes (user_id, shadow, at);
-- Expiry, by event id (ids grow with the time of recording).
CREATE INDEX strikes_event_idx ON strikes (event_id);

-- The strikes of the actions recorded so far (within the retention of
-- counter marks: older ones are past any window).
INSERT INTO strikes (event_id, action_id, user_id, strike_key, rule_id, type, at, shadow)
SELECT a.event_id, a.id, a.target_user_id, coalesce('m:' || a.message_id, 'e:' || a.event_id), a.rule_id, a.type,
    coalesce(e.created_at, e.received_at), false
FROM actions a JOIN events e ON e.id = a.event_id
WHERE a.reverses_action_id IS NULL AND a.target_user_id IS NOT NULL
    AND e.received_at > now() - interval '31 days'
    AND NOT EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id
        AND o.outcome IN ('superseded', 'failed', 'held', 'suppressed'))
    AND NOT EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id);

-- The shadow rules' would-be actions recorded so far, from the matches of
-- their decisions, so that a shadow lineage does not restart at the upgrade.
INSERT INTO strikes (event_id, action_id, user_id, strike_key, rule_id, type, at, shadow)
SELECT d.event_id, NULL, d.user_id, coalesce('m:' || d.message_id, 'e:' || d.event_id), act->>'rule_id', act->>'type',
    coalesce(e.created_at, e.received_at), true
FROM decisions d
JOIN events e ON e.id = d.event_id
CROSS JOIN LATERAL jsonb_array_elements(d.matches) AS m(match)
CROSS JOIN LATERAL jsonb_array_elements(coalesce(m.match->'actions', '[]')) AS x(act)
WHERE d.user_id IS NOT NULL AND d.decided_at > now() - interval '31 days'
    AND e.type <> 'before_send' AND NOT e.own
    AND m.match->>'mode' = 'shadow'
    AND act->>'type' IN ('flag', 'mute', 'ban', 'delete', 'warn');

-- The real rows follow the audit tables whatever writes them, in the
-- writing transaction: statement triggers, one statement per insert.

-- A new action against a user (a reversal is none) is a strike, from the
-- time of its event (recorded in the same transaction or before).
CREATE FUNCTION strikes_of_actions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO strikes (event_id, action_id, user_id, strike_key, rule_id, type, at, shadow)
    SELECT a.event_id, a.id, a.target_user_id, coalesce('m:' || a.message_id, 'e:' || a.event_id), a.rule_id, a.type,
        coalesce((SELECT coalesce(e.created_at, e.received_at) FROM events e WHERE e.id = a.event_id LIMIT 1), now()), false
    FROM new_actions a
    WHERE a.reverses_action_id IS NULL AND a.target_user_id IS NOT NULL;
    RETURN NULL;
END;
$$;
CREATE TRIGGER actions_strike AFTER INSERT ON actions
    REFERENCING NEW TABLE AS new_actions FOR EACH STATEMENT EXECUTE FUNCTION strikes_of_actions();

-- An outcome that keeps the action from being a strike (store.strikeOutcomes)
-- takes the strike back.
CREATE FUNCTION strikes_end_by_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM strikes s USING new_outcomes o
    WHERE s.action_id = o.action_id AND o.outcome IN ('superseded', 'failed', 'held', 'suppressed');
    RETURN NULL;
END;
$$;
CREATE TRIGGER action_outcomes_strike AFTER INSERT ON action_outcomes
    REFERENCING NEW TABLE AS new_outcomes FOR EACH STATEMENT EXECUTE FUNCTION strikes_end_by_outcome();

-- So does an overturn, whatever it did about the action.
CREATE FUNCTION strikes_end_by_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM strikes s USING new_reversals r WHERE s.action_id = r.action_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER action_reversals_strike AFTER INSERT ON action_reversals
    REFERENCING NEW TABLE AS new_reversals FOR EACH STATEMENT EXECUTE FUNCTION strikes_end_by_reversal();
