//! Every error pg_migrate raises is a Postgres error: SQLSTATE, a message naming the object,
//! DETAIL with the facts, HINT with the next step. `Failure` carries those four pieces so that
//! deciding code can describe a problem and one place raises it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone)]
pub struct Failure {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The statement number and line a migration failed at, when it failed at one.
    pub statement: Option<(usize, usize)>,
}

impl Failure {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), detail: None, hint: None, statement: None }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at(mut self, number: usize, line: usize) -> Self {
        self.statement = Some((number, line));
        self
    }

    /// Raise as an ERROR. Never returns.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_migrate");
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Shorthand for functions that either succeed or describe why not.
pub type Result<T> = std::result::Result<T, Failure>;

/// Unwrap or raise.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|f| f.raise())
    }
}

pub fn notice(message: impl AsRef<str>) {
    pgrx::notice!("{}", message.as_ref());
}

/// The five-character SQLSTATE of an error code (Postgres packs it six bits a character).
pub fn sqlstate(code: PgSqlErrorCode) -> String {
    let packed = code as i32;
    (0..5).map(|i| (((packed >> (6 * i)) & 0x3f) as u8 + b'0') as char).collect()
}
