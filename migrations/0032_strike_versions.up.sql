-- Strike versions: a number per user that grows with every statement
-- that writes or deletes strikes of that user, so that a replica can keep
-- the user's strikes in memory (store/strikecopy.go) and judge a batch
-- from them before its insert, as it does from its copies of counter
-- marks (migrations 0025, 0030). A copy is good while the version it was
-- read at is still the user's: the check that replaces the history read
-- of a batch judged ahead compares the two, in its own snapshot, and the
-- batch is recorded again the usual way when they differ.
--
-- Strikes change outside the recording transactions too: an outcome that
-- takes an action back (a failed Stream call), an overturn, a hand in the
-- console, expiry. Triggers on the strikes table itself follow them all.
-- The rows are derived, not audit, and never deleted: a version only
-- grows, so an equal version means no change. A user without a row is at
-- version 0 with no strikes.
--
-- strikes is how many strike rows the user has (real and shadow, of any
-- time kept): a replica copies only the strikes of users with few, so
-- that a spammer's thousands of deletes are never loaded (the history
-- read scans only the kinds its rules count, see migration 0027).
CREATE TABLE strike_versions (
    user_id text   PRIMARY KEY,
    version bigint NOT NULL,
    strikes bigint NOT NULL
);

INSERT INTO strike_versions (user_id, version, strikes)
SELECT user_id, 1, count(*) FROM strikes GROUP BY user_id;

-- Sorted, so that two statements lock the rows in one order. The
-- recording transactions that write a user's strikes hold the user's
-- advisory lock (store.judgeLocks); an outcome or an overturn waits here
-- at most for one recording transaction.
CREATE FUNCTION strike_versions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO strike_versions (user_id, version, strikes)
    SELECT user_id, 1, count(*) FROM new_strikes GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET version = strike_versions.version + 1, strikes = strike_versions.strikes + excluded.strikes;
    RETURN NULL;
END;
$$;
CREATE TRIGGER strikes_version_insert AFTER INSERT ON strikes
    REFERENCING NEW TABLE AS new_strikes FOR EACH STATEMENT EXECUTE FUNCTION strike_versions_inserted();

CREATE FUNCTION strike_versions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO strike_versions (user_id, version, strikes)
    SELECT user_id, 1, 0 FROM old_strikes GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET version = strike_versions.version + 1,
            strikes = greatest(0, strike_versions.strikes - (SELECT count(*) FROM old_strikes o WHERE o.user_id = excluded.user_id));
    RETURN NULL;
END;
$$;
CREATE TRIGGER strikes_version_delete AFTER DELETE ON strikes
    REFERENCING OLD TABLE AS old_strikes FOR EACH STATEMENT EXECUTE FUNCTION strike_versions_deleted();

-- No code updates strikes; a hand that does moves both users' versions
-- and counts.
CREATE FUNCTION strike_versions_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO strike_versions (user_id, version, strikes)
    SELECT user_id, 1, sum(n) FROM (
        SELECT user_id, 1 AS n FROM new_strikes UNION ALL SELECT user_id, -1 FROM old_strikes) u
    GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET version = strike_versions.version + 1, strikes = greatest(0, strike_versions.strikes + excluded.strikes);
    RETURN NULL;
END;
$$;
CREATE TRIGGER strikes_version_update AFTER UPDATE ON strikes
    REFERENCING OLD TABLE AS old_strikes NEW TABLE AS new_strikes FOR EACH STATEMENT EXECUTE FUNCTION strike_versions_updated();
