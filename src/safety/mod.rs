//! Safety analysis, before and without running a migration for real:
//!
//! - `lint`: the server's raw parser turns the script into parse trees, and the rules in
//!   `rules` / `checks` look for what takes production down (no regexes, no guessing at syntax).
//!   `gate` puts lint in front of `migrate.apply()`; `allow` reads `-- migrate:allow` comments.
//! - `plan`: runs the script in a subtransaction that is always rolled back and measures which
//!   locks each statement takes and which relations it rewrites.
//! - `verify`: runs up → down → up the same way and compares schema fingerprints.
//!
//! Lint resolves the names in the script with the caller's search_path (as the migration will),
//! and pins search_path only around its own catalog queries; plan and verify run the user's SQL
//! as the caller, like `migrate.apply()` does.

mod allow;
mod checks;
mod context;
mod exec;
pub mod expression;
mod facts;
mod fingerprint;
pub mod gate;
mod lint;
pub mod lookup;
pub(crate) mod nodes;
mod plan;
mod rules;
mod types;
mod verify;

#[cfg(any(test, feature = "pg_test"))]
mod tests;
