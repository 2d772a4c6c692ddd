//! A migration script split into statements by the server's own raw parser, so that dollar
//! quotes, comments, `E''` strings and nested function bodies are handled exactly as Postgres
//! handles them. Each statement keeps its number and line for error messages.

use super::classify::{self, Class, TopLevel};
use super::subxact::Caught;
use crate::error::{Failure, Result};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgList, PgSqlErrorCode};
use std::ffi::CString;

/// Which script of a migration this is, for messages ("up SQL of version 42").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Statement {
    /// 1-based position in the script.
    pub number: usize,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// The statement's text, without the terminating semicolon.
    pub sql: String,
    /// Set when the statement cannot run inside a transaction block: it runs in a background
    /// worker as a top-level statement, with everything after it in the script.
    pub top_level: Option<TopLevel>,
}

impl Statement {
    pub fn is_top_level(&self) -> bool {
        self.top_level.is_some()
    }

    /// The first 200 characters of the statement on one line, for error messages.
    pub fn fragment(&self) -> String {
        super::retry::fragment(&self.sql)
    }
}

#[derive(Debug)]
pub struct Script {
    pub direction: Direction,
    pub statements: Vec<Statement>,
}

impl Script {
    /// The statements that run in the caller's transaction (everything before the first
    /// top-level statement) and the rest, which a background job runs in order after the caller
    /// commits. Keeping the rest together preserves the script's order: a statement that needs
    /// the concurrently built index runs after it.
    pub fn split(&self) -> (&[Statement], &[Statement]) {
        let at = self.statements.iter().position(Statement::is_top_level).unwrap_or(self.statements.len());
        self.statements.split_at(at)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).line_col(offset)
}

/// Where the lines of a text start, so that many offsets can be turned into lines and columns
/// without scanning the text from its start each time (a script may have thousands of
/// statements).
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0).chain(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1)).collect();
        Lines { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let line_start = self.starts[line - 1];
        let col = 1 + String::from_utf8_lossy(&self.text.as_bytes()[line_start..offset]).chars().count();
        (line, col)
    }
}

/// Offset of the first token at or after `from`: skips whitespace, `--` and `/* */` comments
/// (nested, as in Postgres).
pub fn first_token(text: &str, from: usize) -> usize {
    let b = text.as_bytes();
    let mut i = from;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i = end_of_block_comment(b, i);
        } else {
            return i.min(b.len());
        }
    }
}

/// The offset just after the `/* … */` comment that starts at `i`, nested comments included
/// (Postgres nests them); the end of the text when it is not closed.
pub fn end_of_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Position (1-based, in characters, as Postgres reports it) of the error being raised, read by
/// an error context callback while the error is built; the raw parser sets it on syntax errors.
static mut ERROR_POSITION: i32 = 0;

#[pg_guard]
unsafe extern "C-unwind" fn remember_error_position(_arg: *mut std::ffi::c_void) {
    unsafe {
        ERROR_POSITION = pg_sys::geterrposition();
    }
}

/// Byte offset of a 1-based character position.
fn char_pos_to_offset(text: &str, pos: i32) -> usize {
    if pos <= 1 {
        return 0;
    }
    text.char_indices().nth(pos as usize - 1).map_or(text.len(), |(o, _)| o)
}

/// A statement with its raw parse tree (`RawStmt.stmt`), for code that inspects what a
/// statement does without running it (lint, plan). The node lives in the memory context that was
/// current when the script was split, so it is valid for the rest of the SQL function call.
#[derive(Debug)]
pub struct Parsed {
    pub statement: Statement,
    pub node: *mut pg_sys::Node,
}

/// Split `sql` into statements with the raw parser, keeping every statement's parse tree and
/// refusing nothing. Syntax errors are reported with line and column within the script;
/// `label` names the script in messages (`up SQL of version "42"`). An empty script (only
/// comments) is an empty list.
pub fn split(label: &str, sql: &str) -> Result<Vec<Parsed>> {
    split_after(label, "", sql)
}

/// `split` of `prefix` followed by `sql`, with syntax errors located within `sql`: for fragments
/// such as a SET list that only parse inside a statement. Statement texts and node locations
/// refer to the whole text.
pub fn split_after(label: &str, prefix: &str, fragment: &str) -> Result<Vec<Parsed>> {
    let whole = format!("{prefix}{fragment}");
    let sql = whole.as_str();
    let c_sql = CString::new(sql).map_err(|_| {
        Failure::new(PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, format!("{label} contains a NUL byte"))
    })?;

    let parsed = unsafe {
        ERROR_POSITION = 0;
        let mut callback = pg_sys::ErrorContextCallback {
            previous: pg_sys::error_context_stack,
            callback: Some(remember_error_position),
            arg: std::ptr::null_mut(),
        };
        let saved = pg_sys::error_context_stack;
        pg_sys::error_context_stack = &mut callback;
        // In a subtransaction, so that a syntax error leaves the session exactly as it was.
        let result = super::subxact::run(|| {
            pg_sys::raw_parser(c_sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT)
        });
        pg_sys::error_context_stack = saved;
        result
    };

    let list = match parsed {
        Ok(list) => list,
        Err(caught) => {
            let Caught { message, code, .. } = caught;
            let offset = char_pos_to_offset(sql, unsafe { ERROR_POSITION }).saturating_sub(prefix.len());
            let (line, col) = line_col(fragment, offset);
            let line_text = excerpt(fragment.lines().nth(line - 1).unwrap_or("").trim_end(), col);
            return Err(Failure::new(code, format!("{message} in {label} at line {line}, column {col}"))
                .detail(format!("Line {line}: {line_text}"))
                .hint("Nothing was run. Fix the SQL and call the function again.")
                .at(0, line));
        }
    };

    let mut statements = Vec::new();
    let lines = Lines::new(sql);
    unsafe {
        let raw = PgList::<pg_sys::RawStmt>::from_pg(list);
        for stmt in raw.iter_ptr() {
            let loc = (*stmt).stmt_location.max(0) as usize;
            let len = (*stmt).stmt_len;
            let end = if len <= 0 { sql.len() } else { (loc + len as usize).min(sql.len()) };
            let start = first_token(sql, loc).min(end);
            let text = &sql[start..end];
            if text.trim().is_empty() {
                continue;
            }
            let (line, _) = lines.line_col(start);
            let top_level = match classify::classify((*stmt).stmt) {
                Class::TopLevel(t) => Some(t),
                _ => None,
            };
            statements.push(Parsed {
                statement: Statement { number: statements.len() + 1, line, sql: text.to_string(), top_level },
                node: (*stmt).stmt,
            });
        }
    }
    Ok(statements)
}

/// At most 160 characters of a line around 1-based column `col`, marked with … where cut, so
/// that a syntax error in a very long line does not produce a very long message.
fn excerpt(line: &str, col: usize) -> String {
    const WIDTH: usize = 160;
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= WIDTH {
        return line.to_string();
    }
    let start = col.saturating_sub(WIDTH / 2).min(chars.len() - WIDTH);
    let end = start + WIDTH;
    let mut out: String = chars[start..end].iter().collect();
    if start > 0 {
        out.insert(0, '…');
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Parse `sql` into statements. Syntax errors are reported with line and column within the
/// script, statements that have no place in a migration are refused, and nothing else happens.
pub fn parse(direction: Direction, version: &str, sql: &str) -> Result<Script> {
    parse_labeled(direction, &format!("{} SQL of version \"{version}\"", direction.as_str()), sql)
}

/// `parse` for a script that is not (yet) a version: `label` names it in messages ("up SQL").
pub fn parse_labeled(direction: Direction, label: &str, sql: &str) -> Result<Script> {
    let parsed = split(label, sql)?;
    let total = parsed.len();
    for p in &parsed {
        if let Class::Refused { what, hint } = unsafe { classify::classify(p.node) } {
            let s = &p.statement;
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                format!("statement {}/{total} (line {}) of {label} cannot run inside a migration: {what}", s.number, s.line),
            )
            .detail(format!("Statement: {}", s.fragment()))
            .hint(hint));
        }
    }
    if parsed.is_empty() {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{label} contains no statements"))
            .hint("Pass at least one SQL statement; comments alone do nothing."));
    }
    Ok(Script { direction, statements: parsed.into_iter().map(|p| p.statement).collect() })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn splits_statements_with_dollar_quotes_and_comments() {
        let sql = "-- header\nCREATE TABLE t (id int);\n\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n/* c */ INSERT INTO t VALUES (1)";
        let script = parse(Direction::Up, "v1", sql).unwrap();
        assert_eq!(script.statements.len(), 3);
        assert_eq!(script.statements[0].line, 2);
        assert_eq!(script.statements[0].sql, "CREATE TABLE t (id int)");
        assert_eq!(script.statements[1].line, 4);
        assert!(script.statements[1].sql.contains("SELECT 1; $$"));
        assert_eq!(script.statements[2].line, 5);
        assert_eq!(script.statements[2].sql, "INSERT INTO t VALUES (1)");
    }

    #[pg_test]
    fn syntax_error_has_line_and_column() {
        let err = parse(Direction::Up, "v1", "SELECT 1;\nSELEC 2;").unwrap_err();
        assert!(err.message.contains("at line 2, column 1"), "{}", err.message);
        assert!(err.message.contains("syntax error"), "{}", err.message);
        assert_eq!(err.code, PgSqlErrorCode::ERRCODE_SYNTAX_ERROR);
    }

    #[pg_test]
    fn splits_at_the_first_top_level_statement() {
        let script = parse(
            Direction::Up,
            "v1",
            "CREATE TABLE a(i int);\nCREATE INDEX CONCURRENTLY i ON a(i);\nALTER TABLE a ADD UNIQUE USING INDEX i;",
        )
        .unwrap();
        let (now, later) = script.split();
        assert_eq!(now.len(), 1);
        assert_eq!(later.len(), 2);
        assert_eq!(later[0].top_level.as_ref().unwrap().kind, "create_index");
        assert_eq!(later[0].top_level.as_ref().unwrap().relation.as_deref(), Some("a"));
        assert!(later[1].top_level.is_none());
    }

    #[pg_test]
    fn refuses_copy_from_stdin() {
        let err = parse(Direction::Up, "v1", "COPY t FROM STDIN;").unwrap_err();
        assert!(err.message.contains("COPY FROM STDIN"), "{}", err.message);
        assert!(parse(Direction::Up, "v1", "COPY t FROM '/tmp/x.csv';").is_ok());
    }

    #[pg_test]
    fn refuses_transaction_control() {
        let err = parse(Direction::Up, "v1", "CREATE TABLE a(i int);\nCREATE DATABASE x;").unwrap_err();
        assert!(err.message.contains("statement 2/2 (line 2)"), "{}", err.message);
        let err = parse(Direction::Down, "v1", "COMMIT;").unwrap_err();
        assert!(err.message.contains("transaction control"), "{}", err.message);
        assert!(parse(Direction::Up, "v1", "-- nothing\n;;").is_err());
    }

    #[pg_test]
    fn long_lines_are_cut_around_the_error() {
        let line = format!("SELECT {} FROM", "x, ".repeat(100));
        let err = split("SQL", &format!("{line} WHERE;")).unwrap_err();
        let detail = err.detail.unwrap();
        assert!(detail.starts_with("Line 1: …") && detail.ends_with("WHERE;"), "{detail}");
        assert!(detail.chars().count() < 180, "{detail}");
    }

    #[pg_test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
