-- Retention of the audit rows that are not partitioned (0017 covers
-- events and decisions, whose months are dropped whole). Rows that belong
-- to an event go with their event: once retention has dropped the event's
-- month, moderator_prune_audit deletes them in bounded batches. So they
-- keep the event's lifetime, and a month kept for an open appeal keeps
-- its actions, attempts and before-send records too. Rows of no event
-- (quarantine, the daily caps' counters) go by their own time.
--
--   actions, with action_calls, action_attempts, action_outcomes: an
--     action whose event is gone and that has its final outcome, unless
--     the staff's review record points at it (an appeal, an overturn, a
--     reversal, or it is one): that record is kept whole, and so are the
--     actions it names.
--   before_send_keys, before_send_links: those of a gone (message) event.
--   event_raw_bodies: those of a gone event.
--   quarantine: quarantined before the cutoff.
--   action_daily_counts: days before the cutoff (working state).
--
-- The append-only trigger lets a DELETE through only inside this function:
-- it runs as the owner, with moderator.sanctioned_change = 'retention' set
-- for its duration. The service role may call it, but may not delete
-- itself (no DELETE privilege), and setting that variable gains it
-- nothing, since the trigger also wants the table's owner.
CREATE OR REPLACE FUNCTION forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('moderator.sanctioned_change', true) = 'retention'
        AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit table % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- The batches below find their candidates by time.
CREATE INDEX before_send_keys_received_at_idx ON before_send_keys (received_at);
CREATE INDEX before_send_links_linked_at_idx ON before_send_links (linked_at);

-- moderator_prune_audit deletes, from each table above, at most p_batch
-- rows (actions: p_batch actions and their rows) that retention no longer
-- keeps, given the cutoff p_before, and returns how many it deleted from
-- each table. A caller repeats it while any count reaches p_batch: each
-- call is a short transaction.
CREATE FUNCTION moderator_prune_audit(p_before timestamptz, p_batch integer)
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET moderator.sanctioned_change = 'retention' AS $$
DECLARE
    doomed bigint[];
BEGIN
    SELECT coalesce(array_agg(id), '{}') INTO doomed FROM (
        SELECT a.id FROM actions a
        WHERE a.created_at < p_before AND a.reverses_action_id IS NULL AND a.overturn_id IS NULL
            AND EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id)
            AND NOT EXISTS (SELECT 1 FROM appeals ap WHERE ap.action_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM overturns o WHERE o.action_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id OR r.reversal_action_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM actions x WHERE x.reverses_action_id = a.id)
        ORDER BY a.created_at LIMIT p_batch) a;

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
        SELECT k.event_id FROM before_send_keys k
        WHERE k.received_at < p_before AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = k.event_id)
        ORDER BY k.received_at LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
    table_name := 'before_send_links';
    DELETE FROM before_send_links WHERE message_event_id IN (
        SELECT l.message_event_id FROM before_send_links l
        WHERE l.linked_at < p_before AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = l.message_event_id)
        ORDER BY l.linked_at LIMIT p_batch);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
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
    DELETE FROM action_daily_counts WHERE day < (p_before AT TIME ZONE 'UTC')::date;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
END;
$$;

REVOKE EXECUTE ON FUNCTION moderator_prune_audit(timestamptz, integer) FROM PUBLIC;
