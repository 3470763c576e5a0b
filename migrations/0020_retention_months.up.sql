-- moderator_prune_audit (0018) looked for its candidates among every row
-- older than the cutoff, so each batch walked again past the rows it
-- keeps: a month kept whole for an open appeal, with perhaps a million
-- actions, was read again for every batch of 5,000 deleted elsewhere.
-- Rows of an event go when the event's month is gone, so the candidates
-- are now sought only within the months before the cutoff that have no
-- events partition any more (dropped, or never created), by the tables'
-- time indexes (an action's created_at, a before-send key's received_at
-- and a link's linked_at are its event's received_at: one transaction's
-- now()). The per-row check that the event is gone stays, for the rare
-- row of the default partition. Months are UTC, as the partitions'.
CREATE OR REPLACE FUNCTION moderator_prune_audit(p_before timestamptz, p_batch integer)
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET TimeZone = 'UTC' SET moderator.sanctioned_change = 'retention' AS $$
DECLARE
    gone   timestamptz[];
    doomed bigint[];
BEGIN
    SELECT coalesce(array_agg(m), '{}') INTO gone
    FROM generate_series(
        date_trunc('month', least((SELECT min(created_at) FROM actions), (SELECT min(received_at) FROM before_send_keys),
            (SELECT min(linked_at) FROM before_send_links), p_before)),
        p_before - interval '1 month', interval '1 month') AS m
    WHERE to_regclass('events_' || to_char(m, 'YYYY_MM')) IS NULL;

    -- LATERAL: each month is read by its own range of the time index
    -- (a join on the array lets the planner read every action instead).
    SELECT coalesce(array_agg(id), '{}') INTO doomed FROM (
        SELECT c.id FROM unnest(gone) AS g(lo) CROSS JOIN LATERAL (
            SELECT a.id FROM actions a
            WHERE a.created_at >= g.lo AND a.created_at < g.lo + interval '1 month'
                AND a.reverses_action_id IS NULL AND a.overturn_id IS NULL
                AND EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id)
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id)
                AND NOT EXISTS (SELECT 1 FROM appeals ap WHERE ap.action_id = a.id)
                AND NOT EXISTS (SELECT 1 FROM overturns o WHERE o.action_id = a.id)
                AND NOT EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id OR r.reversal_action_id = a.id)
                AND NOT EXISTS (SELECT 1 FROM actions x WHERE x.reverses_action_id = a.id)
            LIMIT p_batch) c
        LIMIT p_batch) a;

    table_name := 'action_calls';
    DELETE FROM action_calls WHERE action_id = ANY (doomed);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'action_attempts';
    DELETE FROM action_attempts WHERE action_id = ANY (doomed);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'action_outcomes';
    DELETE FROM action_outcomes WHERE action_id = ANY (doomed);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'actions';
    DELETE FROM actions WHERE id = ANY (doomed);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;

    table_name := 'before_send_keys';
    DELETE FROM before_send_keys WHERE event_id IN (
        SELECT c.event_id FROM unnest(gone) AS g(lo) CROSS JOIN LATERAL (
            SELECT k.event_id FROM before_send_keys k
            WHERE k.received_at >= g.lo AND k.received_at < g.lo + interval '1 month'
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = k.event_id)
            LIMIT p_batch) c
        LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'before_send_links';
    DELETE FROM before_send_links WHERE message_event_id IN (
        SELECT c.message_event_id FROM unnest(gone) AS g(lo) CROSS JOIN LATERAL (
            SELECT l.message_event_id FROM before_send_links l
            WHERE l.linked_at >= g.lo AND l.linked_at < g.lo + interval '1 month'
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = l.message_event_id)
            LIMIT p_batch) c
        LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    -- Raw bodies are rare (a payload that had to be repaired): checked
    -- one by one.
    table_name := 'event_raw_bodies';
    DELETE FROM event_raw_bodies WHERE event_id IN (
        SELECT r.event_id FROM event_raw_bodies r
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = r.event_id)
        ORDER BY r.event_id LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'quarantine';
    DELETE FROM quarantine WHERE id IN (
        SELECT q.id FROM quarantine q WHERE q.quarantined_at < p_before ORDER BY q.quarantined_at LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'action_daily_counts';
    DELETE FROM action_daily_counts WHERE day < p_before::date;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
END;
$$;
