//! pg_migrate: safe, zero-downtime schema migrations from inside PostgreSQL.
//!
//! This file only wires modules together. Data flows one way (see DESIGN.md):
//! SQL call → `version` (decides what to do; `safety` lints it first) → `ddl` (does it) →
//! `version::history` (remembers it). `safety` also offers dry runs: plan and verify.

use pgrx::prelude::*;

mod backfill;
mod catalog;
mod ddl;
mod error;
mod expand;
mod gucs;
mod safety;
mod version;
mod worker;

pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx appends a Rust backtrace to an error's DETAIL when the server's environment asks for
    // backtraces (RUST_BACKTRACE=1 is common on hosts that build Rust): clients and
    // migrate.jobs.last_error would show it. RUST_LIB_BACKTRACE decides for captured backtraces
    // and wins over RUST_BACKTRACE; set before this process captures any.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    error::install_log_hook();
    gucs::register();
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        worker::launcher::register();
    }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
