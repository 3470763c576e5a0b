-- Counters of mentions (counts.user_mentions), of distinct users per channel
-- (counts.channel_users) and a young-account age set by the rules folder
-- (settings: young_account).
--
-- mentions: the users the message mentions (Stream's mentioned_users).
-- account_created: when the author's account was created (NULL: unknown, or
-- the event's time is unknown), so that young is decided when a counter is
-- read, with the folder's age at that time, and a changed age applies to the
-- messages already counted. young now says the account was younger than the
-- longest young-account age (30 days) when it posted: the rows of the partial
-- index counter_marks_channel_young_idx, among which the read compares
-- account_created with the age. Rows written before this migration have no
-- account_created and keep their young (younger than a day): they expire
-- within 31 days, and read as young under any age meanwhile.
ALTER TABLE counter_marks
    ADD COLUMN mentions        integer NOT NULL DEFAULT 0,
    ADD COLUMN account_created timestamptz;

-- counts.channel_users reads every message of a channel in a time range.
CREATE INDEX counter_marks_channel_idx ON counter_marks (channel_cid, at);
