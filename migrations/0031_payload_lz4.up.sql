-- Events' payloads are compressed with lz4 instead of pglz. A delivery's
-- jsonb is about 2 KB, past the size at which Postgres compresses a row,
-- so every recorded webhook was compressed with pglz, which took 7 % of
-- Postgres's CPU in recording (perf, 2026-12-06: the closed loop of the
-- bench's bare subject); lz4 does the same work several times faster and
-- decompresses faster when the staff read events. Rows already written
-- stay as they are: a value carries its method, and both are read.
--
-- A partitioned table's setting is taken by the partitions created after
-- it, not by those that exist, so each is set here. A server built
-- without lz4 keeps pglz: compression is no part of what is recorded.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT 'events'::regclass UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN payload SET COMPRESSION lz4', t);
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server was built without lz4: events'' payloads stay compressed with pglz';
END;
$$;
