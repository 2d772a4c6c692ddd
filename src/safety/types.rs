//! Which column type changes Postgres makes without rewriting the table or rebuilding indexes:
//! those where the old and new types are binary compatible and every stored value is valid
//! under the new type modifier. Postgres decides this in ATColumnChangeRequiresRewrite (with the
//! length-coercion support functions of varchar, numeric, varbit and the time types); this is the
//! same list, for the common types, judged before anything runs.

use pgrx::pg_sys::{self, Oid};

/// A column type with its modifier (-1 when unconstrained), as pg_attribute stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnType {
    pub oid: Oid,
    pub typmod: i32,
}

/// Whether changing a column from `old` to `new` (without USING) is free: no rewrite, no index
/// rebuild.
pub fn change_is_free(old: ColumnType, new: ColumnType) -> bool {
    if old.oid == new.oid {
        return old.typmod == new.typmod || widens(old.oid, old.typmod, new.typmod);
    }
    // Different types that share a binary representation and index operator class.
    let unconstrained = new.typmod == -1;
    matches!(
        (old.oid, new.oid),
        (pg_sys::VARCHAROID, pg_sys::TEXTOID) | (pg_sys::CIDROID, pg_sys::INETOID)
    ) || (old.oid == pg_sys::TEXTOID && new.oid == pg_sys::VARCHAROID && unconstrained)
}

/// Whether a new type modifier of the same type admits every value the old one admitted, with
/// the same stored representation.
fn widens(oid: Oid, old: i32, new: i32) -> bool {
    if new == -1 {
        // Dropping the modifier: every value fits, nothing is converted. Not for char(n), whose
        // values are padded to n.
        return oid != pg_sys::BPCHAROID;
    }
    if old == -1 {
        return false;
    }
    match oid {
        pg_sys::VARCHAROID | pg_sys::VARBITOID => new >= old,
        pg_sys::NUMERICOID => {
            let (old_precision, old_scale) = numeric_typmod(old);
            let (new_precision, new_scale) = numeric_typmod(new);
            new_scale == old_scale && new_precision >= old_precision
        }
        // Fractional-second precision: more digits keep every value as is.
        pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID | pg_sys::TIMEOID | pg_sys::TIMETZOID => new >= old,
        _ => false,
    }
}

/// Precision and scale of a numeric type modifier ((precision << 16 | scale) + VARHDRSZ, the
/// scale an 11-bit signed number since Postgres 15).
fn numeric_typmod(typmod: i32) -> (i32, i32) {
    let t = typmod - 4;
    ((t >> 16) & 0xffff, ((t & 0x7ff) ^ 1024) - 1024)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    fn t(oid: Oid, typmod: i32) -> ColumnType {
        ColumnType { oid, typmod }
    }

    fn numeric_mod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[pg_test]
    fn free_and_rewriting_type_changes() {
        use pg_sys::{BPCHAROID, CIDROID, INETOID, INT4OID, INT8OID, NUMERICOID, TEXTOID, TIMESTAMPOID, TIMESTAMPTZOID, VARCHAROID};
        // varchar(20) is typmod 24.
        assert!(change_is_free(t(VARCHAROID, 24), t(VARCHAROID, 54)));
        assert!(!change_is_free(t(VARCHAROID, 54), t(VARCHAROID, 24)));
        assert!(change_is_free(t(VARCHAROID, 24), t(VARCHAROID, -1)));
        assert!(change_is_free(t(VARCHAROID, 24), t(TEXTOID, -1)));
        assert!(change_is_free(t(TEXTOID, -1), t(VARCHAROID, -1)));
        assert!(!change_is_free(t(TEXTOID, -1), t(VARCHAROID, 24)));
        assert!(change_is_free(t(NUMERICOID, numeric_mod(10, 2)), t(NUMERICOID, numeric_mod(12, 2))));
        assert!(!change_is_free(t(NUMERICOID, numeric_mod(10, 2)), t(NUMERICOID, numeric_mod(12, 3))));
        assert!(!change_is_free(t(NUMERICOID, numeric_mod(10, 2)), t(NUMERICOID, numeric_mod(8, 2))));
        assert!(change_is_free(t(NUMERICOID, numeric_mod(10, 2)), t(NUMERICOID, -1)));
        assert!(!change_is_free(t(NUMERICOID, -1), t(NUMERICOID, numeric_mod(10, 2))));
        assert!(!change_is_free(t(BPCHAROID, 14), t(BPCHAROID, -1)));
        assert!(change_is_free(t(TIMESTAMPTZOID, 3), t(TIMESTAMPTZOID, 6)));
        assert!(change_is_free(t(CIDROID, -1), t(INETOID, -1)));
        assert!(!change_is_free(t(INT4OID, -1), t(INT8OID, -1)));
        assert!(!change_is_free(t(INT4OID, -1), t(TEXTOID, -1)));
        assert!(!change_is_free(t(TIMESTAMPOID, -1), t(TIMESTAMPTZOID, -1)));
        // The same type with the same modifier is a no-op.
        assert!(change_is_free(t(INT8OID, -1), t(INT8OID, -1)));
    }
}
