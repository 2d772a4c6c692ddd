//! `ALTER EXTENSION pg_migrate UPDATE` from every released version (the full scripts kept in
//! sql/versions/) keeps the history, an open expand/contract change and the backfill job that is
//! running through the update, and leaves exactly the schema a fresh `CREATE EXTENSION` makes.
//! The old version's SQL runs against the current library, as it does on a real server after the
//! new package is installed: the test also proves the library still has every C symbol an older
//! script names.

use pg_migrate_integration::{one, Cluster};

/// Every object of the extension, described without oids or owners, one per line, sorted:
/// functions and procedures with their whole definition, ACL and comment; tables, views and
/// sequences with kind, ACL, comment and columns; constraints, indexes and triggers of its
/// tables; other member objects by name; its pg_dump configuration; the schema's ACL.
/// Table columns are compared by name, not position: an update can only append a column, and
/// pg_dump's column lists make the position harmless for the catalog tables.
const SCHEMA: &str = r#"
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'pg_migrate'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.* FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid)
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
    SELECT format('function %s %s acl=%s comment=%s', p.oid::regprocedure, pg_get_functiondef(p.oid),
                  p.proacl, obj_description(p.oid, 'pg_proc')) AS line
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    SELECT format('relation %s kind=%s acl=%s comment=%s view=%s columns=%s', c.oid::regclass, c.relkind,
                  c.relacl, obj_description(c.oid, 'pg_class'),
                  CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END,
                  (SELECT string_agg(format('%s %s notnull=%s default=%s comment=%s', a.attname,
                                            format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                            pg_get_expr(ad.adbin, ad.adrelid), col_description(c.oid, a.attnum)),
                                     ', ' ORDER BY a.attname)
                     FROM pg_attribute a
                     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
      FROM rels c
    UNION ALL
    SELECT format('constraint %s %s %s', con.conrelid::regclass, con.conname, pg_get_constraintdef(con.oid))
      FROM pg_constraint con JOIN rels c ON con.conrelid = c.oid
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN rels c ON i.indrelid = c.oid
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN rels c ON t.tgrelid = c.oid WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('member %s', pg_describe_object(m.classid, m.objid, 0))
      FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass)
    UNION ALL
    SELECT format('dumped %s where %s', cfg::regclass, cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(cfg, cond)
    UNION ALL
    SELECT format('schema migrate acl=%s', nspacl) FROM pg_namespace WHERE nspname = 'migrate'
) objects"#;

/// What the update must keep: versions with their state and checksum, the audit log, the
/// changes and the jobs.
const STATE: &str = r#"
SELECT concat_ws(E'\n',
    (SELECT string_agg(format('%s %s %s %s', version, state, checksum, job_ids), ' ' ORDER BY version) FROM migrate.migrations),
    (SELECT string_agg(format('%s %s %s', id, version, action), ' ' ORDER BY id) FROM migrate.events),
    (SELECT string_agg(format('%s %s %s %s %s', change, kind, phase, job, spec), ' ' ORDER BY change) FROM migrate.all_changes),
    (SELECT string_agg(format('%s %s', id, kind), ' ' ORDER BY id) FROM migrate.all_jobs))"#;

/// The objects only one of two SCHEMA descriptions has (a whole description is too long to read).
fn difference(got: &str, want: &str) -> String {
    // one object per "\n<kind> " line start; function bodies span several lines
    let split = |s: &str| -> Vec<String> {
        let mut objects: Vec<String> = Vec::new();
        for line in s.lines() {
            let starts = ["function ", "relation ", "constraint ", "index ", "trigger ", "member ", "dumped ", "schema "];
            match objects.last_mut() {
                Some(last) if !starts.iter().any(|k| line.starts_with(k)) => {
                    last.push('\n');
                    last.push_str(line);
                }
                _ => objects.push(line.to_string()),
            }
        }
        objects
    };
    let (got, want) = (split(got), split(want));
    let only = |a: &[String], b: &[String]| a.iter().filter(|o| !b.contains(o)).cloned().collect::<Vec<_>>().join("\n");
    format!("after the update:\n{}\n\nafter CREATE EXTENSION:\n{}", only(&got, &want), only(&want, &got))
}

/// The versions with a full script in sql/versions/ (pg_migrate--X.Y.Z.sql), oldest first.
fn released_versions() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/versions");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|f| f.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let v = name.strip_prefix("pg_migrate--")?.strip_suffix(".sql")?;
            (!v.contains("--")).then(|| v.to_string())
        })
        .collect();
    versions.sort();
    assert!(!versions.is_empty(), "no released version in {}", dir.display());
    versions
}

#[test]
fn update_from_every_release_keeps_history_changes_and_running_jobs() {
    let pg = Cluster::start();
    pg.create_db("fresh");
    let mut fresh = pg.connect("fresh");
    let current = one::<String>(&mut fresh, "SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate'");
    let want = one::<String>(&mut fresh, SCHEMA);

    for old in released_versions() {
        let db = format!("from_{}", old.replace('.', "_"));
        pg.connect("postgres").batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        let mut c = pg.connect(&db);
        c.batch_execute(&format!("CREATE EXTENSION pg_migrate VERSION '{old}'")).unwrap();
        if old != current {
            assert_ne!(one::<String>(&mut c, SCHEMA), want, "{old} and {current} have the same schema: no update to test");
        }

        // History: an applied version, a rolled-back one, a baseline before them.
        c.batch_execute(
            "SELECT migrate.baseline('0_legacy');
             SELECT migrate.apply('1_users', 'CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);',
                                  'DROP TABLE users;');
             SELECT migrate.apply('2_note', 'ALTER TABLE users ADD COLUMN note text;', 'ALTER TABLE users DROP COLUMN note;');
             SELECT migrate.rollback();
             INSERT INTO users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 20000) g;",
        )
        .unwrap();
        // An open change whose backfill is still running when the update happens: small batches
        // with pauses keep it going for several seconds.
        let change: i64 = c
            .query_one(
                "SELECT migrate.expand_column('users', 'email', new_type => 'varchar(320)',
                                              backfill => '{\"batch_size\": 500, \"sleep_ms\": 200}')",
                &[],
            )
            .unwrap()
            .get(0);
        let job: i64 = c.query_one("SELECT job FROM migrate.changes WHERE change = $1", &[&change]).unwrap().get(0);
        assert!(
            pg.wait_for(&db, 60, &format!("SELECT rows_done > 0 FROM migrate.progress WHERE job = {job}")),
            "the backfill started"
        );
        let before = one::<String>(&mut c, STATE);

        c.batch_execute("ALTER EXTENSION pg_migrate UPDATE").unwrap();

        assert_eq!(one::<String>(&mut c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate'"), current);
        let running: String = c.query_one("SELECT state FROM migrate.jobs WHERE job = $1", &[&job]).unwrap().get(0);
        assert_eq!(running, "running", "the update did not wait for the backfill, nor stop it");
        assert_eq!(one::<String>(&mut c, STATE), before, "the update from {old} kept history, changes and jobs");
        let got = one::<String>(&mut c, SCHEMA);
        assert!(got == want, "the update from {old} does not leave what CREATE EXTENSION makes:\n{}", difference(&got, &want));

        // Everything carries on: the backfill ends, the change contracts, the history grows and
        // the rolled-back version applies again.
        c.batch_execute(&format!("CALL migrate.wait_change({change})")).unwrap();
        let contract: i64 = c.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
        c.batch_execute(&format!("CALL migrate.wait({contract})")).unwrap();
        let column = one::<String>(&mut c, "SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull FROM pg_attribute
                                   WHERE attrelid = 'users'::regclass AND attname = 'email'");
        assert_eq!(column, "character varying(320) true");
        let copied: i64 = c
            .query_one("SELECT count(*) FROM users WHERE email = 'user' || id || '@example.com'", &[])
            .unwrap()
            .get(0);
        assert_eq!(copied, 20000, "every row's value reached the new column");
        c.batch_execute(
            "SELECT migrate.apply('2_note', 'ALTER TABLE users ADD COLUMN note text;', 'ALTER TABLE users DROP COLUMN note;');",
        )
        .unwrap();
        let applying: String = c
            .query_one(
                "SELECT migrate.apply('3_note_idx', 'CREATE INDEX CONCURRENTLY users_note_idx ON users (note);',
                                      'DROP INDEX CONCURRENTLY users_note_idx;')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(applying, "applying");
        c.batch_execute("CALL migrate.wait_version('3_note_idx')").unwrap();
        let states = one::<String>(&mut c, "SELECT string_agg(version || '=' || state, ' ' ORDER BY version) FROM migrate.status()");
        assert_eq!(states, "0_legacy=baseline 1_users=applied 2_note=applied 3_note_idx=applied");
    }
}
