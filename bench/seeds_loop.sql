-- The seeds' batch loop (bench method 2), server side: a transaction per batch (COMMIT after
-- each UPDATE) until an UPDATE finds no row, or until max_seconds have passed.
CREATE PROCEDURE seeds_loop(max_seconds float8, OUT batches bigint, OUT updated bigint, OUT capped boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    deadline timestamptz := clock_timestamp() + make_interval(secs => max_seconds);
BEGIN
    batches := 0; updated := 0; capped := false;
    LOOP
        UPDATE t SET b = a WHERE id IN (SELECT id FROM t WHERE b IS NULL LIMIT 1000);
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        EXIT WHEN n = 0;
        batches := batches + 1;
        updated := updated + n;
        IF clock_timestamp() > deadline THEN
            capped := true;
            EXIT;
        END IF;
    END LOOP;
END
$$;
