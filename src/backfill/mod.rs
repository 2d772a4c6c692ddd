//! Backfills: `UPDATE t SET … WHERE …` over every row that existed when the job started, in
//! batches that each commit and save the cursor, sized to a target duration and slowed down when
//! replicas lag or application sessions queue behind the batch's row locks.
//!
//! - `spec`: reads the SET list, the filter and the options, and checks that the user's SQL is
//!   only expressions (it is placed inside pg_migrate's UPDATE).
//! - `walk`: the table's primary-key keyset or page ranges, and the SQL of a batch.
//! - `batch`: one batch, wherever it runs (worker, pg_cron, client loop).
//! - `throttle`: replica lag, lock waiters, other sessions at work.
//! - `load`: the CPU time the rest of the machine uses (Linux's /proc).
//! - `marker`: which backfill is writing, for the sync triggers.
//! - `worker`: the loop a job worker runs; `api`: the SQL functions.
//!
//! Data flows one way: `api` / `worker` → `batch` → `walk` → `catalog::backfills`.

pub mod api;
mod batch;
mod load;
pub mod marker;
mod spec;
mod throttle;
mod walk;
pub mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod tests;
