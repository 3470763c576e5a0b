-- Erasure of a user's content (POST /api/v1/users/{id}/erase, and Stream's
-- user.deleted with hard_delete): the one sanctioned change of audit rows (retention, 0018, only deletes them).
--
-- moderator_erase_user, below, runs as the owner (SECURITY DEFINER, its
-- search_path pinned) and replaces the user's text with the marker
-- '[redacted]' wherever it is stored, keeping the skeleton of the trail:
-- ids, types, times, rule ids and versions, modes, action types and
-- outcomes. It takes nothing but the user's id and who asks, so the service
-- role, which may call it, can redact through it and do nothing else.
--
-- The append-only trigger lets an UPDATE through only while that function
-- runs: it sets moderator.sanctioned_change = 'erasure' for its duration,
-- and the trigger also wants the table's owner as the current user (inside
-- the function it is; a service role that sets the variable itself is
-- still refused). Retention's DELETE (0018) passes as before; an erasure
-- never deletes.
CREATE OR REPLACE FUNCTION forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('moderator.sanctioned_change', true) = 'retention'
        AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('moderator.sanctioned_change', true) = 'erasure'
        AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit table % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- moderator_redact returns v with every string replaced by the marker,
-- except the values of the keys in keep (identifiers, types, times), and
-- except empty strings. Numbers, booleans and nulls stay (counts and
-- flags); the values of an "evidence" object (what a rule's expression
-- read, keyed by the expression) are replaced whole, whatever their type.
-- policy.RedactPayload does the same in Go, for the spool; a test holds
-- the two equal.
CREATE FUNCTION moderator_redact(v jsonb, keep text[], k text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'object' THEN
        IF k = 'evidence' THEN
            RETURN (SELECT coalesce(jsonb_object_agg(e.key, to_jsonb('[redacted]'::text)), '{}'::jsonb)
                FROM jsonb_each(v) e);
        END IF;
        RETURN (SELECT coalesce(jsonb_object_agg(e.key, moderator_redact(e.value, keep, e.key)), '{}'::jsonb)
            FROM jsonb_each(v) e);
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(moderator_redact(e.value, keep, k) ORDER BY e.n), '[]'::jsonb)
            FROM jsonb_array_elements(v) WITH ORDINALITY e(value, n));
    WHEN 'string' THEN
        IF v = '""'::jsonb OR k = ANY (keep) THEN
            RETURN v;
        END IF;
        RETURN to_jsonb('[redacted]'::text);
    ELSE
        RETURN v;
    END CASE;
END;
$$;

-- The keys whose string values an erasure keeps: in Stream's payloads
-- (policy.RedactedKeep lists the same), and in the service's own
-- decisions and actions.
CREATE FUNCTION moderator_payload_keep() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['id', 'type', 'cid', 'channel_id', 'channel_type', 'parent_id', 'quoted_message_id',
        'message_id', 'user_id', 'target_user_id', 'role', 'channel_role', 'created_at', 'updated_at',
        'deleted_at', 'last_active', 'deactivated_at', 'expiration']
$$;
CREATE FUNCTION moderator_decision_keep() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['rule_id', 'rule_ids', 'mode', 'when', 'source', 'type', 'target', 'mask', 'delete_messages']
$$;

-- moderator_redact_samples redacts the backtest samples (backtest.Sample)
-- of one user in a report: their text and evidence.
CREATE FUNCTION moderator_redact_samples(v jsonb, p_user_id text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'object' THEN
        IF v ->> 'user_id' = p_user_id THEN
            IF v ? 'text' THEN
                v := jsonb_set(v, '{text}', to_jsonb('[redacted]'::text));
            END IF;
            IF v ? 'evidence' THEN
                v := jsonb_set(v, '{evidence}', to_jsonb('[redacted]'::text));
            END IF;
        END IF;
        RETURN (SELECT coalesce(jsonb_object_agg(e.key, moderator_redact_samples(e.value, p_user_id)), '{}'::jsonb)
            FROM jsonb_each(v) e);
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(moderator_redact_samples(e.value, p_user_id) ORDER BY e.n), '[]'::jsonb)
            FROM jsonb_array_elements(v) WITH ORDINALITY e(value, n));
    ELSE
        RETURN v;
    END CASE;
END;
$$;

-- moderator_body_concerns reports whether a quarantined body (bytes that
-- Postgres refused, maybe not even JSON) is about the user: as its subject,
-- actor, author or target when it parses, else when it holds the user's id
-- as a JSON string anywhere (erring towards erasing).
CREATE FUNCTION moderator_body_concerns(body bytea, p_user_id text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    j jsonb;
BEGIN
    BEGIN
        j := convert_from(body, 'UTF8')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN position(convert_to(to_jsonb(p_user_id)::text, 'UTF8') IN body) > 0;
    END;
    RETURN p_user_id IN (j #>> '{user,id}', j #>> '{message,user,id}', j #>> '{target_user,id}',
        j #>> '{created_by,id}', j #>> '{message,quoted_message,user,id}');
END;
$$;

-- The events an erasure looks for besides the user's own (events_user_idx):
-- those the user caused about someone else (a flag, a reaction, a mute),
-- and the messages of others that quote one of the user's. Both are a
-- small share of events; partial indexes keep the intake's cost small.
CREATE INDEX events_actor_idx ON events (actor_id)
    WHERE actor_id IS NOT NULL AND actor_id IS DISTINCT FROM user_id;
CREATE INDEX events_quoted_user_idx ON events ((payload #>> '{message,quoted_message,user,id}'))
    WHERE payload #> '{message,quoted_message}' IS NOT NULL;

-- moderator_erase_user redacts the content of one user everywhere the
-- database keeps it, records the act in staff_audit (p_actor: the admin,
-- or 'system' for Stream's user.deleted), and returns how many rows of each
-- kind it changed. Rows already redacted are not counted: a second erasure
-- changes nothing and answers zeros (and is recorded too). p_spooled is
-- the number of spool records the caller redacted on disk, for the record.
--
-- What is the user's: every event whose subject (events.user_id: the
-- author of a message, the target of a flag or ban) or actor is the user,
-- whole, with the decisions, actions, raw bodies, before-send keys and
-- search words of those events; in other users' messages that quote one of
-- the user's, the quoted message (their own text stays); quarantined
-- deliveries about the user; the user's samples in backtest reports; the
-- statements of the user's appeals.
CREATE FUNCTION moderator_erase_user(p_user_id text, p_actor text, p_role text, p_reason text, p_spooled integer)
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

REVOKE EXECUTE ON FUNCTION moderator_erase_user(text, text, text, text, integer) FROM PUBLIC;
