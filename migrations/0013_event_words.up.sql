-- Full-text search over message text, for the reviewers' search (the
-- console's, and the staff API's /events?text=).
--
-- The words of each event's message live in a table of their own, filled
-- by the service shortly after the event is recorded (store.IndexEventWords,
-- run every second), not in the recording transaction: a generated column
-- with its GIN index on events cost the intake 30-60 % of its throughput
-- (BenchmarkBatcher), and intake comes first. The search sees an event a
-- second or so after it is recorded. The table is derived, not audit: it
-- can be rebuilt from events at any time (empty it and the indexer refills
-- it), and retention and erasure must treat it as they treat events.
--
-- The 'simple' configuration lower-cases and splits words without stemming
-- or stop words: chat is written in every language, and a reviewer
-- searching for a slur or a scam phrase wants the word as typed.
CREATE TABLE event_words (
    event_id     bigint      PRIMARY KEY,  -- events.id (no foreign key: events is to be partitioned)
    received_at  timestamptz NOT NULL,     -- events.received_at, the search's order
    words        tsvector    NOT NULL      -- to_tsvector('simple', the message's text); empty without one
);
CREATE INDEX event_words_words_idx ON event_words USING gin (words);
CREATE INDEX event_words_received_idx ON event_words (received_at DESC, event_id DESC);
