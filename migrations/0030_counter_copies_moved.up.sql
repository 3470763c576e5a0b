-- A batch whose records a replica judged from its copies of their counter
-- marks before inserting them (store/prejudge.go) sends its insert, a
-- check of the copies' versions and its COMMIT in one round trip. The
-- check calls this function when a copy turned out stale (another replica
-- wrote marks of the key) or a record was a duplicate: the error aborts
-- the transaction, so its COMMIT rolls it back, and the replica records
-- the batch again the usual way, reading the history in the transaction.
--
-- Its SQLSTATE is the replica's signal (store.errCopiesMoved); it is of a
-- class Postgres does not use.
CREATE FUNCTION counter_copies_moved() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'a replica''s copy of counter marks is out of date; the batch is recorded again'
        USING ERRCODE = 'MDC01';
END;
$$;
