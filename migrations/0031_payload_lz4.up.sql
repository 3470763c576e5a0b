-- Events' payloads are compressed with lz4 instead of pglz. A delivery's
-- jsonb is about 2 KB, past the size at which Postgres compresses a row,
-- so every recorded webhook was compressed with pglz, which took 7 % of
-- Postgres's CPU in recording (perf, 2026-12-06: the closed loop of the
-- bench's bare subject); lz4 does the same work several times faster and
-- decompresses faster when the staff read events. Rows already written
-- stay as they are: a value carries its method, and both are read.
--
-- A partitioned table's setting is taken by the partitions created after
-- it, not by those that exist, so each is set here. Setting it changes
-- the catalog only, but takes each table's exclusive lock: it waits for
-- the queries on events in flight, and recording waits behind it. So it
-- waits 2 s at most, and then, as on a server built without lz4, the
-- payloads stay compressed with pglz: compression is no part of what is
-- recorded. CHANGELOG.md says how to set it by hand.
DO $$
DECLARE
    t regclass;
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    FOR t IN SELECT 'events'::regclass UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN payload SET COMPRESSION lz4', t);
    END LOOP;
EXCEPTION
    WHEN feature_not_supported THEN
        RAISE NOTICE 'this server was built without lz4: events'' payloads stay compressed with pglz';
    WHEN lock_not_available THEN
        RAISE NOTICE 'events was busy for 2 s: its payloads stay compressed with pglz';
END;
$$;
