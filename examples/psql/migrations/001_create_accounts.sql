-- A table and 100,000 rows of seed data, in one atomic migrate.apply() (with down SQL, so
-- migrate.rollback() can undo it). Creating and filling a table in the same migration is fine
-- for pg_migrate's lint: nobody else can be using a table that does not exist yet.
SELECT migrate.apply('001_create_accounts',
    $up$
    CREATE TABLE accounts (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email      text NOT NULL,
        balance    numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO accounts (email, balance)
    SELECT 'user' || g || '@example.com', (g % 1000) / 10.0
      FROM generate_series(1, 100000) g;
    $up$,
    $down$DROP TABLE accounts;$down$);
