//! pg_migrate from Rust with tokio-postgres.
//!
//! Connects with `DATABASE_URL`, applies two migrations (the second builds an index concurrently
//! in a pg_migrate background job and is waited for with `CALL migrate.wait_version`), then
//! triggers three of pg_migrate's errors on purpose and shows what a Rust program gets for each:
//! the SQLSTATE, message, DETAIL and HINT of `Error::as_db_error()`.
//!
//! Exits non-zero when a migration does not end `applied`, when an error has another SQLSTATE
//! than expected, or when its DETAIL or HINT did not arrive. Running it twice is fine: the
//! second run's `migrate.apply()` calls find their versions applied and do nothing.

use std::future::poll_fn;
use std::process::ExitCode;

use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::{AsyncMessage, Client, Connection, Error, NoTls, Socket};

const ORDERS: &str = "20240601090000_orders";
const ORDERS_UP: &str = "
    CREATE TABLE orders (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer    text NOT NULL,
        total_cents bigint NOT NULL CHECK (total_cents >= 0),
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO orders (customer, total_cents)
    SELECT 'customer ' || (g % 500), g % 10000 FROM generate_series(1, 20000) g;";
const ORDERS_DOWN: &str = "DROP TABLE orders;";

const CREATED_AT_IDX: &str = "20240601090100_orders_created_at_idx";
const CREATED_AT_IDX_UP: &str =
    "CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);";
const CREATED_AT_IDX_DOWN: &str = "DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;";

fn main() -> ExitCode {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            eprintln!("set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/app");
            return ExitCode::from(2);
        }
    };
    // A plain main() with a current-thread runtime: no #[tokio::main], so no tokio macros.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&url)) {
        Ok(0) => {
            println!("\nall checks passed");
            ExitCode::SUCCESS
        }
        Ok(failed) => {
            eprintln!("\n{failed} check(s) failed");
            ExitCode::FAILURE
        }
        Err(err) => {
            // An error nobody expected: print everything the server sent.
            eprintln!("\nunexpected error: {err}");
            if let Some(db) = err.as_db_error() {
                print_db_error(db);
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<usize, Error> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(drive(connection));
    let mut failed = 0;

    println!("== 1. a migration: one call, atomic, recorded with its checksum");
    let state = apply(&client, ORDERS, ORDERS_UP, ORDERS_DOWN).await?;
    println!("migrate.apply -> {state}");

    println!(
        "\n== 2. a CREATE INDEX CONCURRENTLY: a background job, then CALL migrate.wait_version"
    );
    let state = apply(
        &client,
        CREATED_AT_IDX,
        CREATED_AT_IDX_UP,
        CREATED_AT_IDX_DOWN,
    )
    .await?;
    println!("migrate.apply -> {state}");
    // Outside a transaction (tokio-postgres autocommits each statement run on the Client):
    // the procedure commits between its polls. Another migrate.apply() before this job has
    // ended would be refused with 55006 (one version in flight).
    client
        .execute("CALL migrate.wait_version($1)", &[&CREATED_AT_IDX])
        .await?;

    for row in client
        .query("SELECT version, state FROM migrate.status()", &[])
        .await?
    {
        let (version, state): (&str, &str) = (row.get(0), row.get(1));
        println!("status: {version} {state}");
        failed += check(state == "applied", &format!("{version} is applied"));
    }
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass",
            &[],
        )
        .await?
        .get(0);
    failed += check(valid, "orders_created_at_idx is valid");

    println!("\n== 3. errors: what the application gets from err.as_db_error()");

    println!("\n-- an applied migration whose SQL was edited afterwards");
    let edited = ORDERS_UP.replace("generate_series(1, 20000)", "generate_series(1, 30000)");
    let res = apply(&client, ORDERS, &edited, ORDERS_DOWN).await;
    failed += expect_db_error(res, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);

    println!("\n-- CALL migrate.wait() inside a transaction block");
    let job: i64 = client
        .query_one(
            "SELECT job_ids[cardinality(job_ids)] FROM migrate.migrations WHERE version = $1",
            &[&CREATED_AT_IDX],
        )
        .await?
        .get(0);
    let tx = client.transaction().await?;
    let res = tx.execute("CALL migrate.wait($1)", &[&job]).await;
    tx.rollback().await?;
    failed += expect_db_error(res, SqlState::ACTIVE_SQL_TRANSACTION);
    // The right way: on its own, outside the transaction.
    client.execute("CALL migrate.wait($1)", &[&job]).await?;
    println!("CALL migrate.wait({job}) outside the transaction: ok");

    println!(
        "\n-- a migration that lint refuses (CREATE INDEX without CONCURRENTLY on a live table)"
    );
    let version = "20240601090200_orders_customer_idx";
    let res = apply(
        &client,
        version,
        "CREATE INDEX orders_customer_idx ON orders (customer);",
        "",
    )
    .await;
    failed += expect_db_error(res, SqlState::INVALID_OBJECT_DEFINITION);
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM migrate.migrations WHERE version = $1",
            &[&version],
        )
        .await?
        .get(0);
    failed += check(recorded == 0, "the refused version was not recorded");

    Ok(failed)
}

/// `migrate.apply(version, up, down)`: 'applied', or 'applying' when part of the up SQL runs in a
/// background job. A blank down counts as none.
async fn apply(client: &Client, version: &str, up: &str, down: &str) -> Result<String, Error> {
    let row = client
        .query_one("SELECT migrate.apply($1, $2, $3)", &[&version, &up, &down])
        .await?;
    Ok(row.get(0))
}

/// Runs the connection and prints the server's NOTICEs (pg_migrate reports what it did in them).
async fn drive(mut connection: Connection<Socket, tokio_postgres::tls::NoTlsStream>) {
    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(AsyncMessage::Notice(notice)) => {
                println!("  {}: {}", notice.severity(), notice.message())
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("connection error: {err}");
                break;
            }
        }
    }
}

fn print_db_error(db: &DbError) {
    println!("  code:    {}", db.code().code());
    println!("  message: {}", db.message());
    println!("  detail:  {}", db.detail().unwrap_or("(none)"));
    println!("  hint:    {}", db.hint().unwrap_or("(none)"));
}

/// Prints the error's fields; 0 when it is a server error with the expected SQLSTATE and both a
/// DETAIL and a HINT arrived, 1 otherwise.
fn expect_db_error<T: std::fmt::Debug>(res: Result<T, Error>, want: SqlState) -> usize {
    let err = match res {
        Ok(value) => {
            println!(
                "FAILED: expected SQLSTATE {}, the call succeeded: {value:?}",
                want.code()
            );
            return 1;
        }
        Err(err) => err,
    };
    let Some(db) = err.as_db_error() else {
        println!(
            "FAILED: expected a server error {}, got: {err}",
            want.code()
        );
        return 1;
    };
    print_db_error(db);
    let mut failed = 0;
    failed += check(*db.code() == want, &format!("SQLSTATE {}", want.code()));
    failed += check(
        db.detail().is_some_and(|d| !d.is_empty()),
        "a DETAIL arrived",
    );
    failed += check(db.hint().is_some_and(|h| !h.is_empty()), "a HINT arrived");
    failed
}

fn check(ok: bool, what: &str) -> usize {
    println!("{}: {what}", if ok { "ok" } else { "FAILED" });
    usize::from(!ok)
}
