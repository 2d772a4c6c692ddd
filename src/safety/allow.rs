//! `-- migrate:allow <rule>[, <rule>]` comments: how a migration states that it breaks a lint
//! rule on purpose. The raw parser drops comments, so this module finds `--` comments itself,
//! skipping string literals, quoted identifiers, dollar-quoted bodies and block comments the way
//! the Postgres scanner does, so that text inside a function body or a string never counts.

use super::rules::{self, Rule};
use crate::error::{Failure, Result};
use pgrx::PgSqlErrorCode;

const MARKER: &str = "migrate:allow";

/// The rules a script allows, each with the line of its comment. Unknown rule names are an
/// error: a typo must not silently allow nothing.
pub fn allowed(label: &str, sql: &str) -> Result<Vec<(&'static Rule, usize)>> {
    let mut out = Vec::new();
    for (line, text) in line_comments(sql) {
        let Some(rest) = text.trim_start().strip_prefix(MARKER) else { continue };
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            continue; // e.g. "migrate:allowance"
        }
        let names: Vec<&str> = rest.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("the -- migrate:allow comment at line {line} of {label} names no rule"),
            )
            .hint("Write the rule names after it, for example -- migrate:allow drop-column, rename-table."));
        }
        for name in names {
            let rule = rules::find(name).ok_or_else(|| {
                Failure::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("unknown lint rule \"{name}\" in the -- migrate:allow comment at line {line} of {label}"),
                )
                .hint("SELECT rule FROM migrate.lint_rules() lists the rule names.")
            })?;
            out.push((rule, line));
        }
    }
    Ok(out)
}

/// Every `--` comment of the script: its 1-based line and its text after the dashes.
fn line_comments(sql: &str) -> Vec<(usize, &str)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Counts the newlines in b[from..to] into `line`.
    let newlines = |from: usize, to: usize| b[from..to.min(b.len())].iter().filter(|&&c| c == b'\n').count();
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
            out.push((line, &sql[i + 2..end]));
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = crate::ddl::script::end_of_block_comment(b, i);
        } else if c == b'\'' {
            // E'...' strings take backslash escapes; standard strings only double the quote.
            let escapes = i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident(b[i - 2]));
            i = end_of_quoted(b, i, b'\'', escapes);
        } else if c == b'"' {
            i = end_of_quoted(b, i, b'"', false);
        } else if c == b'$' && (i == 0 || !is_ident(b[i - 1])) {
            match dollar_tag(&b[i..]) {
                Some(tag_len) => {
                    let tag = &b[i..i + tag_len];
                    let body = i + tag_len;
                    i = find(&b[body..], tag).map_or(b.len(), |p| body + p + tag_len);
                }
                None => i += 1,
            }
        } else if is_ident(c) {
            // Identifiers and keywords may contain '$' (not at their start): skip them whole.
            while i < b.len() && (is_ident(b[i]) || b[i] == b'$') {
                i += 1;
            }
        } else {
            i += 1;
        }
        line += newlines(start, i);
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Length of a dollar-quote opening tag (`$$`, `$body$`) at the start of `b`.
fn dollar_tag(b: &[u8]) -> Option<usize> {
    let mut j = 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None; // $1 is a parameter
    }
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The offset just after the quoted string or identifier opening at `i`: the quote doubled
/// stands for itself, and with `escapes` (E'' strings) a backslash escapes the next byte.
fn end_of_quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    i
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn finds_comments_outside_strings_and_bodies() {
        let sql = "-- migrate:allow drop-column\nSELECT '-- migrate:allow truncate', $$ -- migrate:allow cluster $$;\n\
                   SELECT E'it\\'s -- no', \"a--b\";\n/* -- migrate:allow vacuum-full */ SELECT 1; -- migrate:allow rename-table, drop-table\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1 -- migrate:allow cluster\n $fn$;";
        let rules: Vec<(&str, usize)> = allowed("test SQL", sql).unwrap().into_iter().map(|(r, l)| (r.name, l)).collect();
        assert_eq!(rules, vec![("drop-column", 1), ("rename-table", 4), ("drop-table", 4)]);
    }

    #[pg_test]
    fn unknown_and_empty_rule_lists_are_errors() {
        let err = allowed("up SQL of version \"1\"", "SELECT 1;\n-- migrate:allow drop-colum").unwrap_err();
        assert_eq!(err.message, "unknown lint rule \"drop-colum\" in the -- migrate:allow comment at line 2 of up SQL of version \"1\"");
        assert!(allowed("x", "-- migrate:allow").unwrap_err().message.contains("names no rule"));
        assert!(allowed("x", "-- migrate:allowance is not a marker").unwrap().is_empty());
    }
}
