-- Strike versions say what changed within a transaction (store/strikecopy.go):
-- a batch that strikes a user adds its own strikes to the replica's copy
-- of the user's strikes at its commit, instead of reading all of them
-- again, when the user's row shows that nothing but this transaction
-- changed them since the copy, and that it only added the strikes of
-- the batch's own events:
--
-- * base is the version before the transaction that last changed the
--   row (xact) first changed it, so that base = the copy's version says
--   no other transaction came between;
-- * id_sum is the sum of the ids of the user's strikes, beside their
--   count: strike ids only grow, so a transaction that took a strike back
--   (an outcome ending an older action) and added another cannot leave
--   both equal to the copy's plus what it added.
ALTER TABLE strike_versions
    ADD COLUMN id_sum bigint NOT NULL DEFAULT 0,
    ADD COLUMN base   bigint NOT NULL DEFAULT 0,
    ADD COLUMN xact   xid8;

UPDATE strike_versions v SET id_sum = s.id_sum
FROM (SELECT user_id, sum(id) AS id_sum FROM strikes GROUP BY user_id) s
WHERE s.user_id = v.user_id;

-- changed(user_id, n, ids): what one statement did to each user's strikes
-- (a count and a sum of ids, negative for deletions), applied in user
-- order so that two statements lock the rows in one order.
CREATE FUNCTION strike_versions_apply(changes jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO strike_versions AS v (user_id, version, strikes, id_sum, base, xact)
    SELECT c.user_id, 1, c.n, c.ids, 0, pg_current_xact_id()
    FROM jsonb_to_recordset(changes) AS c(user_id text, n bigint, ids bigint)
    ORDER BY c.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        version = v.version + 1,
        strikes = greatest(0, v.strikes + excluded.strikes),
        id_sum = v.id_sum + excluded.id_sum,
        base = CASE WHEN v.xact = pg_current_xact_id() THEN v.base ELSE v.version END,
        xact = pg_current_xact_id();
$$;

CREATE OR REPLACE FUNCTION strike_versions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM strike_versions_apply((SELECT jsonb_agg(c) FROM (
        SELECT user_id, count(*) AS n, sum(id) AS ids FROM new_strikes GROUP BY user_id) c));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION strike_versions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM strike_versions_apply((SELECT jsonb_agg(c) FROM (
        SELECT user_id, -count(*) AS n, -sum(id) AS ids FROM old_strikes GROUP BY user_id) c));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION strike_versions_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM strike_versions_apply((SELECT jsonb_agg(c) FROM (
        SELECT user_id, sum(n) AS n, sum(ids) AS ids FROM (
            SELECT user_id, 1 AS n, id AS ids FROM new_strikes
            UNION ALL SELECT user_id, -1, -id FROM old_strikes) u
        GROUP BY user_id) c));
    RETURN NULL;
END;
$$;
