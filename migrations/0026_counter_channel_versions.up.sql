-- Channel versions: as counter_versions (0025) for users, a number per
-- channel that grows with every statement writing a mark of a young
-- account (m.young: younger than the longest age a rules folder may set)
-- in the channel, so that a replica can count the channel's young
-- accounts' messages (counts.channel_young_messages) from its copy of
-- those marks (store/userread.go).
--
-- Only young marks bump it: they are few, and a bump locks the channel's
-- row until the commit, so that other young accounts' messages in the
-- channel wait for each other; the rest of the channel's messages do not.
CREATE TABLE counter_channel_versions (
    channel_cid text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE OR REPLACE FUNCTION counter_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so that two statements lock the rows in one order. The
    -- writers of a user's marks hold its advisory lock (store.judgeLocks),
    -- so they do not wait here for each other.
    INSERT INTO counter_versions (user_id, version)
    SELECT DISTINCT user_id, 1 FROM new_marks ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET version = counter_versions.version + 1;
    INSERT INTO counter_channel_versions (channel_cid, version)
    SELECT DISTINCT channel_cid, 1 FROM new_marks WHERE young AND channel_cid IS NOT NULL ORDER BY channel_cid
    ON CONFLICT (channel_cid) DO UPDATE SET version = counter_channel_versions.version + 1;
    RETURN NULL;
END;
$$;
