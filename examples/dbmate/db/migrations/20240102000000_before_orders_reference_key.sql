-- The wait for the rollback of the next migration (20240102000001, whose rollback is a job).
-- dbmate sends a section as one query string, which PostgreSQL runs as one implicit transaction,
-- and CALL migrate.wait_version() cannot run in a transaction (25001). So each wait is a section
-- of its own, with transaction:false and nothing else. dbmate rolls back newest first: this
-- migration's down runs right after 20240102000001's down, before 20240101000000's.
-- migrate:up

-- migrate:down transaction:false
CALL migrate.wait_version('20240102000001');
