//! The catalog schema lives in `sql/catalog.sql` as readable SQL; this file places it in the
//! generated extension script and closes it off: EXECUTE on the functions that change history is
//! revoked from PUBLIC (grant it to the roles that deploy migrations).

pgrx::extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);

pgrx::extension_sql!(
    r#"
REVOKE EXECUTE ON FUNCTION
    migrate.apply(text, text, text, text),
    migrate.rollback(text),
    migrate.rollback_to(text),
    migrate.baseline(text, text),
    migrate.repair(text, text)
FROM PUBLIC;
"#,
    name = "privileges",
    finalize
);
