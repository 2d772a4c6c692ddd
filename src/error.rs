//! Every error pg_migrate raises is a Postgres error: SQLSTATE, a message naming the object,
//! DETAIL with the facts, HINT with the next step. `Failure` carries those four pieces so that
//! deciding code can describe a problem and one place raises it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};

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

/// Installs `emit_log`, once per process (from `_PG_init`).
pub fn install_log_hook() {
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(emit_log);
    }
}

static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

/// What pgrx raises, as XX000, when an argument's text is not valid UTF-8 (a SQL_ASCII database
/// holding other bytes): it happens before any of pg_migrate's code runs, so it is renamed here,
/// on its way to the client and the log, into the error Postgres itself gives for bad bytes.
const PGRX_NOT_UTF8: &[u8] = b"datums converted to &str should be valid UTF-8";

/// emit_log_hook: only rewrites that one error. Runs inside error reporting, so it must not
/// raise or panic: plain pointer reads and strdups into ErrorContext.
unsafe extern "C-unwind" fn emit_log(edata: *mut pg_sys::ErrorData) {
    unsafe {
        let e = &mut *edata;
        if e.sqlerrcode == PgSqlErrorCode::ERRCODE_INTERNAL_ERROR as i32
            && !e.message.is_null()
            && std::ffi::CStr::from_ptr(e.message).to_bytes().starts_with(PGRX_NOT_UTF8)
        {
            let copy = |s: &std::ffi::CStr| pg_sys::MemoryContextStrdup(pg_sys::ErrorContext, s.as_ptr());
            e.sqlerrcode = PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE as i32;
            e.message = copy(c"pg_migrate: an argument is not valid UTF-8 text");
            e.detail = copy(c"pg_migrate reads its text arguments as UTF-8; in a SQL_ASCII database only ASCII text is that.");
            e.hint = copy(c"Nothing was run. Use ASCII text in this database, or a UTF8 database.");
        }
        if let Some(previous) = PREVIOUS_EMIT_LOG_HOOK {
            previous(edata);
        }
    }
}
