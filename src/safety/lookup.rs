//! What lint asks the catalog: does a relation exist, what type a column has now, whether a
//! validated NOT NULL check exists, whether a function is volatile. Names the user wrote resolve
//! with the caller's search_path (as the migration itself would resolve them); pg_migrate's own
//! queries run with a pinned one. A lookup that fails for any reason answers "unknown", never
//! aborts the lint: lookups that can raise errors (type names with bad modifiers) run in a
//! subtransaction.

use super::nodes::Name;
use crate::ddl::session::with_pinned_search_path;
use crate::ddl::subxact;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use std::ffi::CString;

/// The relation `name` resolves to now, if it exists.
pub fn relation(name: &Name) -> Option<Oid> {
    let relname = CString::new(name.name.as_str()).ok()?;
    let schema = match &name.schema {
        Some(s) => Some(CString::new(s.as_str()).ok()?),
        None => None,
    };
    let oid = unsafe {
        let rv = pg_sys::makeRangeVar(
            schema.as_ref().map_or(std::ptr::null_mut(), |s| s.as_ptr() as *mut _),
            relname.as_ptr() as *mut _,
            -1,
        );
        pg_sys::RangeVarGetRelidExtended(rv, pg_sys::NoLock as i32, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut())
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Type and type modifier of a live column.
pub fn column_type(relid: Oid, column: &str) -> Option<(Oid, i32)> {
    let column = CString::new(column).ok()?;
    unsafe {
        let attnum = pg_sys::get_attnum(relid, column.as_ptr());
        if attnum <= 0 {
            return None;
        }
        let (mut typid, mut typmod, mut coll) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
        pg_sys::get_atttypetypmodcoll(relid, attnum, &mut typid, &mut typmod, &mut coll);
        Some((typid, typmod))
    }
}

/// The type and type modifier a `TypeName` from the script means, if it exists.
pub fn resolve_type(tn: *mut pg_sys::TypeName) -> Option<(Oid, i32)> {
    if tn.is_null() {
        return None;
    }
    subxact::run(|| unsafe {
        let (mut typid, mut typmod) = (pg_sys::InvalidOid, -1);
        pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), tn, &mut typid, &mut typmod);
        (typid, typmod)
    })
    .ok()
}

/// Whether `tn` names an existing enum type.
pub fn is_enum(tn: *mut pg_sys::TypeName) -> bool {
    resolve_oid(tn).is_some_and(|oid| unsafe { pg_sys::type_is_enum(oid) })
}

fn resolve_oid(tn: *mut pg_sys::TypeName) -> Option<Oid> {
    if tn.is_null() {
        return None;
    }
    subxact::run(|| unsafe { pg_sys::LookupTypeNameOid(std::ptr::null_mut(), tn, true) })
        .ok()
        .filter(|oid| *oid != pg_sys::InvalidOid)
}

/// Whether the table has a validated `CHECK (column IS NOT NULL)`, which lets SET NOT NULL skip
/// its full-table scan (Postgres 12 and later).
pub fn has_validated_not_null_check(relid: Oid, column: &str) -> bool {
    let expected = format!("CHECK (({} IS NOT NULL))", quote_ident(column));
    with_pinned_search_path(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint
                             WHERE conrelid = $1 AND contype = 'c' AND convalidated
                               AND pg_catalog.pg_get_constraintdef(oid) = $2)",
            &[relid.into(), expected.into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Volatility {
    /// Every function of that name is immutable or stable.
    NotVolatile,
    /// Some function of that name is volatile.
    Volatile,
    /// No function of that name exists yet (perhaps created earlier in the same script).
    Unknown,
}

/// Whether a function called `parts` (optionally schema-qualified) may be volatile. Overloads are
/// not resolved: if any function with that name is volatile the call is taken as volatile.
pub fn volatility(parts: &[String]) -> Volatility {
    let Some(name) = Name::from_parts(parts) else { return Volatility::Unknown };
    let answer = with_pinned_search_path(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT bool_or(p.provolatile = 'v')
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE p.proname = $1 AND ($2::text IS NULL OR n.nspname = $2)",
            &[name.name.as_str().into(), name.schema.as_deref().into()],
        )
    });
    match answer {
        Ok(Some(true)) => Volatility::Volatile,
        Ok(Some(false)) => Volatility::NotVolatile,
        _ => Volatility::Unknown,
    }
}

/// An identifier quoted the way Postgres quotes it in its own output.
pub fn quote_ident(ident: &str) -> String {
    let Ok(c) = CString::new(ident) else { return format!("\"{}\"", ident.replace('"', "\"\"")) };
    unsafe {
        let quoted = pg_sys::quote_identifier(c.as_ptr());
        std::ffi::CStr::from_ptr(quoted).to_string_lossy().into_owned()
    }
}

/// The publications that include table `relid` (FOR ALL TABLES and schema publications too),
/// sorted; empty when there are none.
pub fn publications(relid: Oid) -> Vec<String> {
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT DISTINCT t.pubname::text FROM pg_catalog.pg_publication_tables t
                       JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname
                       JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
                      WHERE c.oid = $1 ORDER BY 1",
                    None,
                    &[relid.into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    })
}
