//! Doing things to the database: parsing scripts, running statements politely (lock_timeout,
//! retries, subtransactions), and scoped session state. Nothing here decides *what* to do.

pub mod blockers;
pub mod classify;
pub mod retry;
pub mod script;
pub mod session;
pub mod subxact;
pub mod watch;
