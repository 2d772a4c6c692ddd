//! Small readers for the server's raw parse trees (`pg_sys` nodes as `raw_parser` returns them):
//! node tags, lists, names. Every reader accepts NULL where Postgres allows it, so that the rules
//! can be written as plain matches without scattering null checks.

use pgrx::pg_sys::{self, NodeTag};
use pgrx::PgList;
use std::ffi::CStr;

/// The node's tag, or `T_Invalid` for NULL.
pub unsafe fn tag(node: *const pg_sys::Node) -> NodeTag {
    if node.is_null() {
        NodeTag::T_Invalid
    } else {
        unsafe { (*node).type_ }
    }
}

/// The node as `T` if its tag is `expected`.
pub unsafe fn cast<'a, T>(node: *mut pg_sys::Node, expected: NodeTag) -> Option<&'a T> {
    unsafe {
        if tag(node) == expected {
            Some(&*(node as *const T))
        } else {
            None
        }
    }
}

/// The members of a `List` of pointers.
pub unsafe fn list<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    unsafe { PgList::<T>::from_pg(list).iter_ptr().collect() }
}

/// The members of a `List` of nodes.
pub unsafe fn nodes(l: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    unsafe { list::<pg_sys::Node>(l) }
}

pub unsafe fn cstr(p: *const std::ffi::c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// A `List` of `String` nodes (qualified names), as Rust strings; other members are skipped.
pub unsafe fn names(l: *mut pg_sys::List) -> Vec<String> {
    unsafe {
        nodes(l)
            .into_iter()
            .filter_map(|n| cast::<pg_sys::String>(n, NodeTag::T_String).and_then(|s| cstr(s.sval)))
            .collect()
    }
}

/// A relation, table or type name as written in the script: optional schema and name, already
/// case-folded by the parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub schema: Option<String>,
    pub name: String,
}

impl Name {
    /// Two names written in one script mean the same object when the names agree and the schemas
    /// do not contradict each other (an unqualified name could be any schema on the path).
    pub fn same(&self, other: &Name) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// From the parts of a qualified name: the last is the name, the one before it the schema
    /// (a database part, which Postgres only accepts for the current database, is ignored).
    pub fn from_parts(parts: &[String]) -> Option<Name> {
        let (name, rest) = parts.split_last()?;
        Some(Name { schema: rest.last().cloned(), name: name.clone() })
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

pub unsafe fn range_var(rv: *const pg_sys::RangeVar) -> Option<Name> {
    if rv.is_null() {
        return None;
    }
    unsafe { Some(Name { schema: cstr((*rv).schemaname), name: cstr((*rv).relname)? }) }
}

/// The names in a DROP statement's object list when the objects are qualified names (tables,
/// indexes, views, sequences): each member is a `List` of `String`s.
pub unsafe fn object_names(objects: *mut pg_sys::List) -> Vec<Name> {
    unsafe {
        nodes(objects)
            .into_iter()
            .filter(|o| tag(*o) == NodeTag::T_List)
            .filter_map(|o| Name::from_parts(&names(o as *mut pg_sys::List)))
            .collect()
    }
}

/// The (last part of the) name of a type, e.g. `varchar` for `pg_catalog.varchar(20)`.
pub unsafe fn type_name(tn: *const pg_sys::TypeName) -> Option<String> {
    if tn.is_null() {
        return None;
    }
    unsafe { names((*tn).names).pop() }
}

/// The qualified name of a type, e.g. for DROP TYPE.
pub unsafe fn type_qualified_name(tn: *const pg_sys::TypeName) -> Option<Name> {
    if tn.is_null() {
        return None;
    }
    unsafe { Name::from_parts(&names((*tn).names)) }
}

/// The `DefElem` named `name` in an option list (`VACUUM (FULL)`, `REINDEX (CONCURRENTLY)`),
/// and whether it is on: `FULL`, `FULL true`, `FULL 1`, `FULL on` are on; `FULL false`, `0`,
/// `off` are off.
pub unsafe fn option_on(options: *mut pg_sys::List, name: &str) -> bool {
    unsafe {
        list::<pg_sys::DefElem>(options)
            .into_iter()
            .find(|d| cstr((**d).defname).as_deref() == Some(name))
            .is_some_and(|d| {
                let arg = (*d).arg;
                match tag(arg) {
                    NodeTag::T_Invalid => true,
                    NodeTag::T_Boolean => (*(arg as *const pg_sys::Boolean)).boolval,
                    NodeTag::T_Integer => (*(arg as *const pg_sys::Integer)).ival != 0,
                    NodeTag::T_String => !matches!(
                        cstr((*(arg as *const pg_sys::String)).sval).unwrap_or_default().to_ascii_lowercase().as_str(),
                        "false" | "off" | "no" | "0"
                    ),
                    _ => true,
                }
            })
    }
}

/// The commands of an `ALTER TABLE` statement.
pub unsafe fn alter_table_cmds(stmt: &pg_sys::AlterTableStmt) -> Vec<&pg_sys::AlterTableCmd> {
    unsafe {
        nodes(stmt.cmds)
            .into_iter()
            .filter_map(|n| cast::<pg_sys::AlterTableCmd>(n, NodeTag::T_AlterTableCmd))
            .collect()
    }
}

/// The constraints of a column definition (`NOT NULL`, `DEFAULT`, `REFERENCES`, …).
pub unsafe fn column_constraints(col: &pg_sys::ColumnDef) -> Vec<&pg_sys::Constraint> {
    unsafe {
        nodes(col.constraints)
            .into_iter()
            .filter_map(|n| cast::<pg_sys::Constraint>(n, NodeTag::T_Constraint))
            .collect()
    }
}

/// Whether an expression is `column IS NOT NULL` for a plain column reference, and which column.
pub unsafe fn is_not_null_test(expr: *mut pg_sys::Node) -> Option<String> {
    unsafe {
        let test = cast::<pg_sys::NullTest>(expr, NodeTag::T_NullTest)?;
        if test.nulltesttype != pg_sys::NullTestType::IS_NOT_NULL {
            return None;
        }
        let col = cast::<pg_sys::ColumnRef>(test.arg as *mut pg_sys::Node, NodeTag::T_ColumnRef)?;
        let fields = names(col.fields);
        if fields.len() == 1 {
            fields.into_iter().next()
        } else {
            None
        }
    }
}

/// The function names (qualified parts) called anywhere in a raw expression. The walk uses an
/// explicit stack, not recursion through `raw_expression_tree_walker`: a default expression with
/// hundreds of thousands of terms must not exhaust the stack (or bounce an error through every
/// level of Rust and C frames on the way out).
pub unsafe fn called_functions(expr: *mut pg_sys::Node) -> Vec<Vec<String>> {
    use pg_sys::Node as N;
    use NodeTag::*;
    // The sub-expressions of a node: its expression lists, then its single expressions.
    let parts = |lists: &[*mut pg_sys::List], single: &[*mut N]| -> Vec<*mut N> {
        let mut out: Vec<*mut N> = lists.iter().flat_map(|l| unsafe { nodes(*l) }).collect();
        out.extend_from_slice(single);
        out
    };
    let mut found = Vec::new();
    let mut stack = vec![expr];
    while let Some(node) = stack.pop() {
        let children = unsafe {
            match tag(node) {
                T_FuncCall => {
                    let f = &*(node as *const pg_sys::FuncCall);
                    found.push(names(f.funcname));
                    parts(&[f.args], &[f.agg_filter])
                }
                T_List => nodes(node as *mut pg_sys::List),
                T_A_Expr => {
                    let e = &*(node as *const pg_sys::A_Expr);
                    vec![e.lexpr, e.rexpr]
                }
                T_BoolExpr => nodes((*(node as *const pg_sys::BoolExpr)).args),
                T_TypeCast => vec![(*(node as *const pg_sys::TypeCast)).arg],
                T_CollateClause => vec![(*(node as *const pg_sys::CollateClause)).arg],
                T_NamedArgExpr => vec![(*(node as *const pg_sys::NamedArgExpr)).arg as *mut N],
                T_NullTest => vec![(*(node as *const pg_sys::NullTest)).arg as *mut N],
                T_BooleanTest => vec![(*(node as *const pg_sys::BooleanTest)).arg as *mut N],
                T_CaseExpr => {
                    let c = &*(node as *const pg_sys::CaseExpr);
                    parts(&[c.args], &[c.arg as *mut N, c.defresult as *mut N])
                }
                T_CaseWhen => {
                    let w = &*(node as *const pg_sys::CaseWhen);
                    vec![w.expr as *mut N, w.result as *mut N]
                }
                T_CoalesceExpr => nodes((*(node as *const pg_sys::CoalesceExpr)).args),
                T_MinMaxExpr => nodes((*(node as *const pg_sys::MinMaxExpr)).args),
                T_RowExpr => nodes((*(node as *const pg_sys::RowExpr)).args),
                T_A_ArrayExpr => nodes((*(node as *const pg_sys::A_ArrayExpr)).elements),
                T_A_Indirection => {
                    let i = &*(node as *const pg_sys::A_Indirection);
                    parts(&[i.indirection], &[i.arg])
                }
                T_A_Indices => {
                    let i = &*(node as *const pg_sys::A_Indices);
                    vec![i.lidx, i.uidx]
                }
                T_XmlExpr => {
                    let x = &*(node as *const pg_sys::XmlExpr);
                    parts(&[x.named_args, x.args], &[])
                }
                // Not allowed in a DEFAULT; its test expression is still an expression.
                T_SubLink => vec![(*(node as *const pg_sys::SubLink)).testexpr],
                // Constants, column and parameter references, SQL value functions: no calls.
                _ => Vec::new(),
            }
        };
        stack.extend(children.into_iter().filter(|c| !c.is_null()));
    }
    found
}
