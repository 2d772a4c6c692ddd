//! Rewriting the column names in one SQL expression, on the server's own parse tree: the sync
//! trigger evaluates the user's `up`/`down` over `NEW."col"`, and contract moves CHECKs and index
//! expressions from the old column to the new one. Text search-and-replace would also hit string
//! literals, type names and function names that happen to equal a column's name.

use crate::ddl::script;
use crate::error::{Failure, Result};
use crate::safety::nodes;
use pgrx::pg_sys::{self, NodeTag};
use pgrx::PgSqlErrorCode;

const PREFIX: &str = "SELECT (\n";

/// A column reference in an expression: where its text is and the name it refers to.
struct Reference {
    start: usize,
    end: usize,
    column: String,
}

/// What a walk over one expression found.
#[derive(Default)]
struct Found {
    references: Vec<Reference>,
    /// Qualified names (`t.col`), `*`, subqueries: the expression cannot be moved to another
    /// row source by renaming columns alone.
    not_plain: bool,
}

/// The expression with every column reference replaced by `to(column)`, or None when it has
/// references that cannot be rewritten this way (qualified names, subqueries).
pub fn columns(expr: &str, label: &str, to: impl Fn(&str) -> String) -> Result<Option<String>> {
    let text = format!("{PREFIX}{expr}\n)");
    let found = walk(&text, label, expr)?;
    if found.not_plain {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = PREFIX.len();
    for r in &found.references {
        out.push_str(&text[at..r.start]);
        out.push_str(&to(&r.column));
        at = r.end;
    }
    out.push_str(&text[at..text.len() - 2]);
    Ok(Some(out))
}

/// Replaces references to column `from` with `to` (quoted), leaving every other name alone.
pub fn rename(expr: &str, from: &str, to: &str) -> Result<Option<String>> {
    columns(expr, "expression", |c| if c == from { quote(to) } else { quote(c) })
}

/// The columns an expression refers to by plain name.
pub fn referenced(expr: &str, label: &str) -> Result<Vec<String>> {
    let text = format!("{PREFIX}{expr}\n)");
    Ok(walk(&text, label, expr)?.references.into_iter().map(|r| r.column).collect())
}

/// The longest identifier Postgres keeps (NAMEDATALEN - 1 bytes); longer ones are cut.
pub const MAX_IDENTIFIER: usize = 63;

/// `name` cut to at most `bytes` bytes, at a character boundary: the name Postgres would keep,
/// so that the name pg_migrate reports is the real one.
pub fn shorten(name: &str, bytes: usize) -> &str {
    let mut end = name.len().min(bytes);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Refuses a name Postgres would cut (42622), before anything is recorded: a cut name would not
/// be the one pg_migrate records and later looks for.
pub fn check_identifier(what: &str, name: &str) -> Result<()> {
    if name.len() <= MAX_IDENTIFIER {
        return Ok(());
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_NAME_TOO_LONG, format!("{what} {} is too long", quote(shorten(name, 20)) + "…"))
        .detail(format!("It is {} bytes; PostgreSQL keeps at most {MAX_IDENTIFIER} bytes of a name.", name.len()))
        .hint(format!("Nothing was changed. Choose a {what} of at most {MAX_IDENTIFIER} bytes.")))
}

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn walk(text: &str, label: &str, expr: &str) -> Result<Found> {
    crate::safety::expression::check_single(label, expr)?;
    let parsed = script::split_after(label, PREFIX, &format!("{expr}\n)"))?;
    let target = match parsed.as_slice() {
        [one] => unsafe { single_target(one.node) },
        _ => None,
    };
    let Some(target) = target else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, format!("{label} must be one SQL expression"))
            .detail(format!("Got: {}", crate::ddl::retry::fragment(expr)))
            .hint("Pass an expression such as round(amount)::int, without SELECT, FROM or a semicolon."));
    };
    let mut found = Found::default();
    unsafe {
        visit(target, &mut found as *mut Found as *mut std::ffi::c_void);
    }
    for r in &mut found.references {
        r.end = identifier_end(text, r.start);
    }
    found.references.sort_by_key(|r| r.start);
    Ok(found)
}

/// The value of `SELECT (<expr>)` when that is all the statement is.
unsafe fn single_target(stmt: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    unsafe {
        let select = nodes::cast::<pg_sys::SelectStmt>(stmt, NodeTag::T_SelectStmt)?;
        if !select.fromClause.is_null() || !select.whereClause.is_null() || !select.groupClause.is_null() {
            return None;
        }
        match nodes::nodes(select.targetList).as_slice() {
            [t] => nodes::cast::<pg_sys::ResTarget>(*t, NodeTag::T_ResTarget).map(|rt| rt.val),
            _ => None,
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn visit(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    unsafe {
        if node.is_null() {
            return false;
        }
        let found = &mut *(context as *mut Found);
        match nodes::tag(node) {
            NodeTag::T_ColumnRef => {
                let cref = &*(node as *const pg_sys::ColumnRef);
                let fields = nodes::nodes(cref.fields);
                match fields.as_slice() {
                    [one] if nodes::tag(*one) == NodeTag::T_String => {
                        let name = nodes::names(cref.fields).pop().unwrap_or_default();
                        found.references.push(Reference { start: cref.location.max(0) as usize, end: 0, column: name });
                    }
                    _ => found.not_plain = true,
                }
                false
            }
            NodeTag::T_SubLink => {
                found.not_plain = true;
                false
            }
            _ => pg_sys::raw_expression_tree_walker(node, Some(visit), context),
        }
    }
}

/// Where the identifier starting at `start` ends: a quoted one at its closing quote, a plain
/// one at the first character that cannot be part of it.
fn identifier_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    if b.get(start) == Some(&b'"') {
        let mut i = start + 1;
        while i < b.len() {
            if b[i] == b'"' {
                if b.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        return b.len();
    }
    let mut i = start;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
        i += 1;
    }
    i
}
