//! pg_dump keeps pg_migrate's history: the catalog tables are extension config tables.

use pg_migrate_integration::Cluster;
use std::process::Command;

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const SNAPSHOT: &str = "SELECT string_agg(format('%s|%s|%s|%s|%s', version, name, state, checksum, has_down), E'\\n' ORDER BY version) FROM migrate.status()";
const EVENTS: &str = "SELECT string_agg(format('%s|%s|%s|%s|%s', id, version, action, actor, at), E'\\n' ORDER BY id) FROM migrate.events";

#[test]
fn pg_dump_and_restore_keep_the_history() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute(
        "SELECT migrate.baseline('0_existing');
         SELECT migrate.apply('1_users', 'CREATE TABLE users (id int PRIMARY KEY);', 'DROP TABLE users;');
         SELECT migrate.apply('2_email', 'ALTER TABLE users ADD COLUMN email text;', 'ALTER TABLE users DROP COLUMN email;');
         SELECT migrate.rollback();
         SELECT migrate.apply('3_orders', 'CREATE TABLE orders (id int);');",
    )
    .unwrap();
    let history: String = c.query_one(SNAPSHOT, &[]).unwrap().get(0);
    let events: String = c.query_one(EVENTS, &[]).unwrap().get(0);

    let dump = pg.dir.join("app.sql");
    output(pg.client_program("pg_dump").args(["-d", "app", "-f", dump.to_str().unwrap()]));
    pg.connect("postgres").batch_execute("CREATE DATABASE restored").unwrap();
    output(pg.client_program("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "restored", "-f", dump.to_str().unwrap()]));

    let mut r = pg.connect("restored");
    assert_eq!(r.query_one(SNAPSHOT, &[]).unwrap().get::<_, String>(0), history);
    assert_eq!(r.query_one(EVENTS, &[]).unwrap().get::<_, String>(0), events);

    // The restored database carries on: re-applying is a no-op, new events get new ids.
    r.execute("SELECT migrate.apply('3_orders', 'CREATE TABLE orders (id int);')", &[]).unwrap();
    r.execute("SELECT migrate.apply('4_more', 'CREATE TABLE more (id int);')", &[]).unwrap();
    let (n, max_before, new_id): (i64, i64, i64) = r
        .query_one(
            "SELECT count(*), (SELECT max(id) FROM migrate.events WHERE version <> '4_more'), (SELECT id FROM migrate.events WHERE version = '4_more')
               FROM migrate.events",
            &[],
        )
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .unwrap();
    assert_eq!(n, 6);
    assert!(new_id > max_before);
    let rolled_back: bool = r
        .query_one("SELECT to_regclass('users') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email')", &[])
        .unwrap()
        .get(0);
    assert!(rolled_back);
}
