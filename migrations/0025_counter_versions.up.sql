-- Counter versions: a number per user that grows with every statement
-- that writes counter marks of that user, so that a replica can keep the
-- user's recent marks in memory and count from them instead of scanning
-- them for every judged message (store/markcache.go). A replica's copy
-- is good while the version it was made at is still the user's version;
-- the history read compares the two in its own snapshot and loads the
-- marks again when they differ (another replica, or a hand, wrote some).
--
-- A trigger writes them, so that they follow counter_marks whichever code
-- (or hand, or an older replica during an upgrade) inserts marks. The
-- rows are derived, not audit. Users whose marks were written before this
-- migration have no row: a replica then loads their marks once.
CREATE TABLE counter_versions (
    user_id text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE FUNCTION counter_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so that two statements lock the rows in one order. The
    -- writers of a user's marks hold its advisory lock (store.judgeLocks),
    -- so they do not wait here for each other.
    INSERT INTO counter_versions (user_id, version)
    SELECT DISTINCT user_id, 1 FROM new_marks ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET version = counter_versions.version + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER counter_marks_version AFTER INSERT ON counter_marks
    REFERENCING NEW TABLE AS new_marks FOR EACH STATEMENT EXECUTE FUNCTION counter_versions_bump();

-- Deleting marks (expiry, past the longest window) changes no count a
-- replica computes, and needs no new version.
