-- The word indexer's frontier (store.IndexEventWords): every event with an
-- id at or below it that was ever committed has its row in event_words.
--
-- Event ids are taken when an event is inserted, but transactions commit
-- in their own order, so an event may become visible after later ones were
-- indexed. Until now the indexer looked back a fixed 10,000 ids below the
-- newest indexed event for such late events: at 5,000 events a second, a
-- recording transaction that committed two seconds late fell below that
-- window and its message was never found by the reviewers' search. The
-- indexer now moves this frontier only past ids whose transactions it
-- knows have ended (from Postgres's snapshots), and indexes every event
-- above it that has no words yet: exact at any rate.
--
-- One row. To rebuild the search's table from events, empty both:
-- TRUNCATE event_words, event_words_frontier; the indexer starts again
-- from the first event.
CREATE TABLE event_words_frontier (
    id   bigint  NOT NULL,
    one  boolean PRIMARY KEY DEFAULT true CHECK (one)
);

-- Where the old look-back left every event indexed.
INSERT INTO event_words_frontier (id)
    SELECT greatest(coalesce(max(event_id), 0) - 10000, 0) FROM event_words;
