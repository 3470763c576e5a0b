-- Erasure, second part (issue 13): the copies of an erased user's
-- message that other users' events carry. A reaction.updated or
-- reaction.deleted on the user's message has the reactor as its subject
-- and actor (policy.Event.SubjectUserID), yet it holds the message with
-- its text; moderator_erase_user now redacts that message (only it, as
-- it does the quoted message of a quoting event), its raw body, search
-- words and decisions, counted as 'message_copies'.
--
-- The events whose message's author differs from their subject are a
-- small share (reactions other than new, and the like): a partial index
-- finds them without a scan and costs the intake little (store
-- BenchmarkBatcherErasureIndexes).
CREATE INDEX events_message_author_idx ON events ((payload #>> '{message,user,id}'))
    WHERE payload #>> '{message,user,id}' IS DISTINCT FROM user_id;

-- The users erased lately, which every replica loads at start and every
-- few seconds (erasure.Recent) to redact their late events before they
-- are recorded.
CREATE INDEX staff_audit_erase_idx ON staff_audit (at) WHERE act = 'erase';

CREATE OR REPLACE FUNCTION moderator_erase_user(p_user_id text, p_actor text, p_role text, p_reason text, p_spooled integer)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET moderator.sanctioned_change = 'erasure' AS $$
DECLARE
    marker  constant text := '[redacted]';
    pk      constant text[] := moderator_payload_keep();
    dk      constant text[] := moderator_decision_keep();
    ids     bigint[];
    action_ids bigint[];
    counts  jsonb := '{}';
    n       bigint;
BEGIN
    IF p_user_id IS NULL OR btrim(p_user_id) = '' THEN
        RAISE EXCEPTION 'erase: the user id is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT coalesce(array_agg(DISTINCT id), '{}') INTO ids FROM (
        SELECT id FROM events WHERE user_id = p_user_id
        UNION ALL
        SELECT id FROM events WHERE actor_id = p_user_id
            AND actor_id IS NOT NULL AND actor_id IS DISTINCT FROM user_id) x;

    WITH r AS (SELECT id, received_at, moderator_redact(payload, pk) AS redacted
               FROM events WHERE id = ANY (ids))
    UPDATE events e SET payload = r.redacted FROM r
    WHERE e.id = r.id AND e.received_at = r.received_at AND e.payload <> r.redacted;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('events', n);

    WITH r AS (SELECT id, received_at,
                   jsonb_set(payload, '{message,quoted_message}', moderator_redact(payload #> '{message,quoted_message}', pk)) AS redacted
               FROM events
               WHERE payload #>> '{message,quoted_message,user,id}' = p_user_id
                   AND payload #> '{message,quoted_message}' IS NOT NULL AND NOT id = ANY (ids))
    UPDATE events e SET payload = r.redacted FROM r
    WHERE e.id = r.id AND e.received_at = r.received_at AND e.payload <> r.redacted;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('quoting_events', n);
    -- Their signed bytes hold the quoted text too: redacted with the rest.
    ids := ids || ARRAY(SELECT id FROM events WHERE payload #>> '{message,quoted_message,user,id}' = p_user_id
        AND payload #> '{message,quoted_message}' IS NOT NULL);

    -- Events about the user's message caused by someone else (a reaction
    -- updated or deleted: its subject and actor are the reactor) carry the
    -- message, with its text: the message goes, the rest stays.
    WITH r AS (SELECT id, received_at, jsonb_set(payload, '{message}', moderator_redact(payload -> 'message', pk)) AS redacted
               FROM events
               WHERE payload #>> '{message,user,id}' = p_user_id
                   AND payload #>> '{message,user,id}' IS DISTINCT FROM user_id AND NOT id = ANY (ids))
    UPDATE events e SET payload = r.redacted FROM r
    WHERE e.id = r.id AND e.received_at = r.received_at AND e.payload <> r.redacted;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('message_copies', n);
    ids := ids || ARRAY(SELECT id FROM events WHERE payload #>> '{message,user,id}' = p_user_id
        AND payload #>> '{message,user,id}' IS DISTINCT FROM user_id);

    UPDATE event_raw_bodies SET body = convert_to(marker, 'UTF8')
    WHERE event_id = ANY (ids) AND body <> convert_to(marker, 'UTF8');
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('raw_bodies', n);

    UPDATE event_words SET words = to_tsvector('simple', marker)
    WHERE event_id = ANY (ids) AND words <> to_tsvector('simple', marker)
        AND event_id IN (SELECT id FROM events WHERE id = ANY (ids) AND payload #>> '{message,text}' = marker);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('search_words', n);

    WITH r AS (SELECT id, decided_at, moderator_redact(matches, dk) AS m, moderator_redact(actions, dk) AS a,
                   moderator_redact(errors, dk) AS err
               FROM decisions WHERE event_id = ANY (ids))
    UPDATE decisions d SET matches = r.m, actions = r.a, errors = r.err FROM r
    WHERE d.id = r.id AND d.decided_at = r.decided_at
        AND (d.matches, d.actions, d.errors) IS DISTINCT FROM (r.m, r.a, r.err);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('decisions', n);

    action_ids := ARRAY(SELECT id FROM actions WHERE event_id = ANY (ids));
    UPDATE actions SET params = moderator_redact(params, dk)
    WHERE id = ANY (action_ids) AND params <> moderator_redact(params, dk);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('actions', n);

    UPDATE action_outcomes SET request = moderator_redact(request, pk)
    WHERE action_id = ANY (action_ids) AND request IS NOT NULL AND request <> moderator_redact(request, pk);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('action_outcomes', n);

    UPDATE before_send_keys SET link_key = sha256(convert_to(marker, 'UTF8'))
    WHERE event_id = ANY (ids) AND link_key <> sha256(convert_to(marker, 'UTF8'));
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('before_send_keys', n);

    UPDATE quarantine SET body = convert_to(marker, 'UTF8'), error = marker
    WHERE moderator_body_concerns(body, p_user_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('quarantine', n);

    UPDATE appeals SET statement = marker WHERE user_id = p_user_id AND statement <> marker;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('appeals', n);

    UPDATE backtests SET report = moderator_redact_samples(report, p_user_id)
    WHERE report IS NOT NULL AND report <> moderator_redact_samples(report, p_user_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('backtests', n, 'spool', coalesce(p_spooled, 0));

    INSERT INTO staff_audit (actor, role, act, target_user_id, reason, params)
    VALUES (p_actor, p_role, 'erase', p_user_id, p_reason, counts);
    RETURN counts;
END;
$$;

