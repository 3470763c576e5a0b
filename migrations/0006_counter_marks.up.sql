-- Counters over sliding windows (counts.* in rules): one compact row per new
-- message, written in the transaction that records the event, only while the
-- rule set in force reads a counter. Because it commits with the event, and
-- a duplicate delivery records no event, a retried or replayed webhook is
-- never counted twice, and a crash counts nothing it did not record. Rows are
-- not audit: they expire (serve deletes those received more than 31 days ago,
-- the longest window plus a margin), and the events table keeps the truth.
CREATE TABLE counter_marks (
    event_id     bigint      PRIMARY KEY REFERENCES events (id),
    user_id      text        NOT NULL,  -- the author
    channel_cid  text,
    at           timestamptz NOT NULL,  -- the event's own time (the rules' "now"), else when it was recorded
    links        integer     NOT NULL,  -- links in the text and previews
    fingerprint  bigint,                -- policy.Fingerprint of the text; NULL when it has no letters
    young        boolean     NOT NULL   -- the account was younger than a day
);

-- Every per-user counter reads the user's rows in a time range.
CREATE INDEX counter_marks_user_idx ON counter_marks (user_id, at);
-- Raids: young accounts' messages in one channel.
CREATE INDEX counter_marks_channel_young_idx ON counter_marks (channel_cid, at) WHERE young;
