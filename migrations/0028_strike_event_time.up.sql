-- A strike takes its event's time (0023's strikes_of_actions), looked up
-- by events.id alone, which the partitions' keys (id, received_at) cannot
-- prune: the lookup probed every month's partition, oldest first, until
-- one held the event, so with a year of events each action's strike
-- cost a dozen index probes before the current month's. Nearly every
-- action's event was recorded in the same transaction, this month: look
-- there first (now() prunes the older months when the statement starts),
-- then, for an event of an earlier month (a delivery spooled across the
-- month's end, an action on an older event), everywhere as before.
CREATE OR REPLACE FUNCTION strikes_of_actions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO strikes (event_id, action_id, user_id, strike_key, rule_id, type, at, shadow)
    SELECT a.event_id, a.id, a.target_user_id, coalesce('m:' || a.message_id, 'e:' || a.event_id), a.rule_id, a.type,
        coalesce(
            (SELECT coalesce(e.created_at, e.received_at) FROM events e
                WHERE e.id = a.event_id AND e.received_at >= date_trunc('month', now(), 'UTC') LIMIT 1),
            (SELECT coalesce(e.created_at, e.received_at) FROM events e WHERE e.id = a.event_id LIMIT 1),
            now()), false
    FROM new_actions a
    WHERE a.reverses_action_id IS NULL AND a.target_user_id IS NOT NULL;
    RETURN NULL;
END;
$$;
