-- events and decisions, the tables that grow with every delivery, are
-- partitioned by month (of received_at and decided_at, which are equal for
-- an event and its decision: both default to the recording transaction's
-- now()). Retention drops whole months (store.DropExpiredPartitions);
-- partitions for the coming months are created ahead, at start and daily
-- (store.EnsurePartitions). The other audit tables grow only when rules
-- act or staff work, one or two orders of magnitude slower, and stay whole.
--
-- Postgres requires every unique index of a partitioned table to include
-- the partition key, so events can no longer deduplicate deliveries by a
-- unique index on webhook_id or body_sha256. event_keys does it instead: a
-- small plain table holding those two keys of every event recorded within
-- the deduplication horizon (store.DedupHorizon, 7 days: Stream retries
-- for minutes, the spool replays within its outage), pruned daily. The
-- recording statement inserts the keys first, ON CONFLICT DO NOTHING, and
-- only the events whose keys went in.
--
-- Foreign keys may only reference a partitioned table through a unique
-- index that includes the partition key, which event_id and decision_id
-- columns do not carry, and retention must be able to drop a month without
-- cascading into the tables that point at it. So the foreign keys into
-- events and decisions are dropped (event_words never had one): the rows
-- pointing at an event are written in the transaction that records it,
-- and nothing deletes events but retention.
ALTER TABLE decisions DROP CONSTRAINT decisions_event_id_fkey;
ALTER TABLE actions DROP CONSTRAINT actions_event_id_fkey;
ALTER TABLE before_send_keys DROP CONSTRAINT before_send_keys_event_id_fkey;
ALTER TABLE before_send_links DROP CONSTRAINT before_send_links_before_send_event_id_fkey;
ALTER TABLE before_send_links DROP CONSTRAINT before_send_links_message_event_id_fkey;
ALTER TABLE counter_marks DROP CONSTRAINT counter_marks_event_id_fkey;
ALTER TABLE appeals DROP CONSTRAINT appeals_decision_id_fkey;
ALTER TABLE overturns DROP CONSTRAINT overturns_decision_id_fkey;

CREATE TABLE event_keys (
    body_sha256  bytea       PRIMARY KEY,  -- events.body_sha256
    webhook_id   text        UNIQUE,       -- events.webhook_id (NULLs never conflict)
    event_id     bigint      NOT NULL,     -- the event these keys recorded
    received_at  timestamptz NOT NULL      -- events.received_at: pruned past the horizon
);

CREATE SEQUENCE event_ids;
CREATE TABLE events_partitioned (
    id               bigint      NOT NULL DEFAULT nextval('event_ids'),
    webhook_id       text,
    body_sha256      bytea       NOT NULL,
    attempt          integer     NOT NULL,
    api_key          text        NOT NULL,
    compressed       boolean     NOT NULL,
    body_bytes       integer     NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    type             text        NOT NULL,
    created_at       timestamptz,
    user_id          text,
    actor_id         text,
    channel_cid      text,
    message_id       text,
    own              boolean     NOT NULL,
    ignored          boolean     NOT NULL,
    payload          jsonb       NOT NULL,
    rule_set_version text
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE event_ids OWNED BY events_partitioned.id;

CREATE SEQUENCE decision_ids;
CREATE TABLE decisions_partitioned (
    id               bigint      NOT NULL DEFAULT nextval('decision_ids'),
    event_id         bigint      NOT NULL,
    decided_at       timestamptz NOT NULL DEFAULT now(),
    rule_set_version text        NOT NULL,
    matched_rules    text[]      NOT NULL,
    enforced_rules   text[]      NOT NULL,
    user_id          text,
    channel_cid      text,
    message_id       text,
    matches          jsonb       NOT NULL,
    actions          jsonb       NOT NULL,
    errors           jsonb       NOT NULL
) PARTITION BY RANGE (decided_at);
ALTER SEQUENCE decision_ids OWNED BY decisions_partitioned.id;

-- moderator_ensure_partitions creates the monthly partitions of events and
-- decisions from the month of p_from to p_ahead months after the current
-- one, and returns how many it created. It runs as the owner (the service
-- role may not create tables), under a lock, so replicas may call it at
-- once; months are UTC.
CREATE FUNCTION moderator_ensure_partitions(p_from timestamptz, p_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    parent  text;
    month   timestamptz;
    stop    timestamptz := date_trunc('month', now()) + make_interval(months => p_ahead + 1);
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1836016752); -- "modp"
    FOREACH parent IN ARRAY ARRAY['events', 'decisions'] LOOP
        month := date_trunc('month', least(p_from, now()));
        WHILE month < stop LOOP
            IF to_regclass(parent || '_' || to_char(month, 'YYYY_MM')) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        parent || '_' || to_char(month, 'YYYY_MM'), parent, month, month + interval '1 month');
                    created := created + 1;
                EXCEPTION WHEN check_violation THEN
                    -- Rows of that month already sit in the default
                    -- partition: the month stays there.
                    NULL;
                END;
            END IF;
            month := month + interval '1 month';
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

-- The default partitions take any row outside the months created: one
-- written with an explicit time in the past (an import, a test), or one
-- written if the months ahead were somehow not created. Recording never
-- fails for want of a partition. Retention does not drop them.
CREATE TABLE events_default PARTITION OF events_partitioned DEFAULT;
CREATE TABLE decisions_default PARTITION OF decisions_partitioned DEFAULT;

-- Every partition the copy below needs, and three months ahead.
ALTER TABLE events_partitioned RENAME TO events_new;
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_new RENAME TO events;
ALTER TABLE decisions_partitioned RENAME TO decisions_new;
ALTER TABLE decisions RENAME TO decisions_unpartitioned;
ALTER TABLE decisions_new RENAME TO decisions;
SELECT moderator_ensure_partitions(
    least((SELECT min(received_at) FROM events_unpartitioned), (SELECT min(decided_at) FROM decisions_unpartitioned), now()),
    3);

INSERT INTO events (id, webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, received_at, type,
        created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload, rule_set_version)
    SELECT id, webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, received_at, type,
        created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload, rule_set_version
    FROM events_unpartitioned;
INSERT INTO event_keys (body_sha256, webhook_id, event_id, received_at)
    SELECT body_sha256, webhook_id, id, received_at FROM events_unpartitioned;
SELECT setval('event_ids', coalesce((SELECT max(id) FROM events_unpartitioned), 0) + 1, false);

INSERT INTO decisions (id, event_id, decided_at, rule_set_version, matched_rules, enforced_rules, user_id,
        channel_cid, message_id, matches, actions, errors)
    SELECT id, event_id, decided_at, rule_set_version, matched_rules, enforced_rules, user_id,
        channel_cid, message_id, matches, actions, errors
    FROM decisions_unpartitioned;
SELECT setval('decision_ids', coalesce((SELECT max(id) FROM decisions_unpartitioned), 0) + 1, false);

DROP TABLE decisions_unpartitioned;
DROP TABLE events_unpartitioned;

-- The indexes of 0001, 0002 and 0008 under their names, less the two
-- dedup keys (now event_keys) and the decision's unique event (one
-- decision per new event is the writer's: it writes it with the event).
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id, received_at);
CREATE INDEX events_received_at_idx ON events (received_at DESC);
CREATE INDEX events_user_idx ON events (user_id, received_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX events_channel_idx ON events (channel_cid, received_at DESC) WHERE channel_cid IS NOT NULL;
CREATE INDEX events_message_idx ON events (message_id, received_at DESC) WHERE message_id IS NOT NULL;
CREATE INDEX events_type_idx ON events (type, received_at DESC);
CREATE INDEX events_thread_idx ON events ((payload #>> '{message,parent_id}'), received_at DESC)
    WHERE type = 'message.new' AND payload #>> '{message,parent_id}' IS NOT NULL;

ALTER TABLE decisions ADD CONSTRAINT decisions_pkey PRIMARY KEY (id, decided_at);
CREATE INDEX decisions_event_idx ON decisions (event_id);
CREATE INDEX decisions_decided_at_idx ON decisions (decided_at DESC);
CREATE INDEX decisions_matched_rules_idx ON decisions USING gin (matched_rules);
CREATE INDEX decisions_user_idx ON decisions (user_id, decided_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX decisions_channel_idx ON decisions (channel_cid, decided_at DESC) WHERE channel_cid IS NOT NULL;
CREATE INDEX decisions_message_idx ON decisions (message_id) WHERE message_id IS NOT NULL;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();
CREATE TRIGGER decisions_append_only
    BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_change();

-- moderator_drop_partitions drops the monthly partitions of events and
-- decisions that end at or before p_before, and the derived rows of those
-- months (event_words), except a month holding the event of an open
-- appeal (one without a decision): it stays, whole, until the appeal is
-- decided, and a later run drops it. It returns each partition it
-- considered and whether it was kept.
CREATE FUNCTION moderator_drop_partitions(p_before timestamptz)
RETURNS TABLE (partition_name text, month_start timestamptz, kept boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(1836016752); -- "modp", as moderator_ensure_partitions
    FOR part IN
        SELECT c.relname::text AS name, p.relname::text AS parent,
            to_timestamp(right(c.relname, 7), 'YYYY_MM') AS lo
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('events', 'decisions') AND c.relname ~ '_\d{4}_\d{2}$'
        ORDER BY lo, name
    LOOP
        CONTINUE WHEN part.lo + interval '1 month' > p_before;
        partition_name := part.name;
        month_start := part.lo;
        kept := EXISTS (
            SELECT 1 FROM appeals a
            LEFT JOIN decisions d ON d.id = a.decision_id
            LEFT JOIN actions x ON x.id = a.action_id
            JOIN events e ON e.id = coalesce(d.event_id, x.event_id)
            WHERE NOT EXISTS (SELECT 1 FROM appeal_decisions ad WHERE ad.appeal_id = a.id)
                AND e.received_at >= part.lo AND e.received_at < part.lo + interval '1 month');
        IF NOT kept THEN
            EXECUTE format('DROP TABLE %I', part.name);
            IF part.parent = 'events' THEN
                DELETE FROM event_words WHERE received_at >= part.lo AND received_at < part.lo + interval '1 month';
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

REVOKE EXECUTE ON FUNCTION moderator_ensure_partitions(timestamptz, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION moderator_drop_partitions(timestamptz) FROM PUBLIC;
