//! The checksum that identifies a migration's up text: sha256 of the text normalised so that
//! line endings (CRLF, CR) and trailing whitespace on lines or at the end do not count. An editor
//! or a git checkout on Windows must not turn an applied migration into a "changed" one.

use pgrx::prelude::*;
use sha2::{Digest, Sha256};

pub fn normalise(sql: &str) -> String {
    let unix = sql.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = unix.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

pub fn checksum_of(sql: &str) -> String {
    let digest = Sha256::digest(normalise(sql).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `migrate.checksum(sql)`: the checksum migrate.apply() records for this up text.
#[pg_extern(immutable, strict, parallel_safe, name = "checksum")]
#[search_path(pg_catalog, pg_temp)]
fn checksum(sql: &str) -> String {
    checksum_of(sql)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn ignores_line_endings_and_trailing_whitespace() {
        let a = checksum_of("CREATE TABLE t (id int);\nSELECT 1;\n");
        assert_eq!(a, checksum_of("CREATE TABLE t (id int);  \r\nSELECT 1;\r\n\r\n"));
        assert_eq!(a, checksum_of("CREATE TABLE t (id int);\rSELECT 1;\t"));
        assert_ne!(a, checksum_of("CREATE TABLE t (id  int);\nSELECT 1;"));
        assert_ne!(a, checksum_of("  CREATE TABLE t (id int);\nSELECT 1;"));
        assert_eq!(a.len(), 64);
    }

    #[pg_test]
    fn sql_function_matches() {
        let sql = Spi::get_one::<String>("SELECT migrate.checksum(E'SELECT 1;\\r\\n')").unwrap();
        assert_eq!(sql.as_deref(), Some(checksum_of("SELECT 1;").as_str()));
    }
}
