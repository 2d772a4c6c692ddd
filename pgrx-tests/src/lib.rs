//! Harness for pg_migrate's integration tests: each test starts its own PostgreSQL cluster
//! (as the postgres user when run as root, on a free port, data in a temporary directory) with
//! the installed extension, and stops and removes it when the test ends, also on failure.
//!
//! The PostgreSQL is the one in PG_BIN (scripts/test.sh points it at the project-owned
//! installation of each major in turn); the tests are built once and ask the server's major at
//! run time (`pg_major`) where an expectation differs by major.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use postgres::{Client, Error, NoTls};

/// Where the PostgreSQL programs are: PG_BIN (scripts/test.sh sets it to a project-owned
/// installation), else Debian's 15.
pub fn pg_bin() -> String {
    std::env::var("PG_BIN").unwrap_or_else(|_| {
        // Said once: a run by hand without PG_BIN tests whatever pg_migrate the system has, not
        // this checkout, and its failures mislead.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "note: PG_BIN is not set: testing Debian's PostgreSQL 15 and the pg_migrate installed there; to test this checkout: source scripts/lib.sh && use_dev_postgres 15 && install_extension"
            )
        });
        "/usr/lib/postgresql/15/bin".to_string()
    })
}

fn pg_config(arg: &str) -> String {
    let out = Command::new(Path::new(&pg_bin()).join("pg_config")).arg(arg).output().expect("pg_config");
    assert!(out.status.success(), "pg_config {arg} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The major version of the PostgreSQL in `pg_bin()`: 15, 16, 17 or 18.
pub fn pg_major() -> u32 {
    static MAJOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAJOR.get_or_init(|| {
        let version = pg_config("--version"); // "PostgreSQL 18.1"
        version
            .trim_start_matches("PostgreSQL ")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the major from {version:?}"))
    })
}

/// Whether pg_cron is installed in the PostgreSQL under test. Debian packages it for 15 only
/// (postgresql-15-cron; the PyPI builds of 16-18 have no extensions besides contrib), so a test
/// that needs it runs on 15, where its absence is an error, and is skipped, saying so, on the
/// others.
pub fn pg_cron_available(test: &str) -> bool {
    let found = Path::new(&pg_config("--pkglibdir")).join("pg_cron.so").exists();
    assert!(found || pg_major() != 15, "pg_cron is not installed in PostgreSQL 15 ({}): scripts/setup.sh installs it", pg_bin());
    if !found {
        eprintln!("{test}: skipped on PostgreSQL {}: no pg_cron for it here", pg_major());
    }
    found
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the postgres user when we are root (Postgres refuses to run as root).
pub fn pg_command(program: &str) -> Command {
    let path = if program.contains('/') { program.to_string() } else { format!("{}/{program}", pg_bin()) };
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    };
    cmd.env("RUST_BACKTRACE", "0");
    cmd
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Makes the data directory a standby of the server on 127.0.0.1:`port`: what `pg_basebackup -R`
/// or `pg_rewind --write-recovery-conf` write, without the options newer ones add to the
/// connection string (sslnegotiation, from 17) that the server's libpq may not know: 16, 17 and
/// 18 run here with the system's libpq of 15.
fn follow(data: &Path, port: u16) {
    let signal = data.join("standby.signal");
    std::fs::write(&signal, "").unwrap();
    if is_root() {
        run(Command::new("chown").args(["postgres:postgres", signal.to_str().unwrap()]), "chown");
    }
    let conf_path = data.join("postgresql.conf");
    let mut conf = std::fs::read_to_string(&conf_path).unwrap();
    conf.push_str(&format!("\nprimary_conninfo = 'host=127.0.0.1 port={port} user=postgres'\n"));
    std::fs::write(&conf_path, conf).unwrap();
}

/// A running scratch cluster. Dropping it stops the server and removes its files.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// Starts a cluster with extra `postgresql.conf` lines.
    pub fn start_with(settings: &[&str]) -> Cluster {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pg_migrate_it_{}_{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]), "chown");
        }
        let data = dir.join("data");
        run(
            pg_command("initdb").args(["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
            "initdb",
        );
        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 50\nlog_min_messages = warning\n",
            dir.display()
        );
        // Backfill workers pace themselves by the machine's load, and a test machine is often
        // saturated (tests run side by side): a backfill would crawl past the tests' time limits.
        // Tests that exercise the pacing turn it on again in `settings` (later lines win).
        conf.push_str("migrate.backfill_pace_by_load = off\n");
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        // Written as root is fine: the file keeps its owner and mode.
        std::fs::write(&conf_path, existing).unwrap();
        let cluster = Cluster { dir, port };
        run(
            pg_command("pg_ctl").args([
                "-D",
                data.to_str().unwrap(),
                "-l",
                cluster.log_path().to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ]),
            "pg_ctl start",
        );
        cluster
    }

    /// A streaming standby of this cluster (`pg_basebackup -R`: it replays what this one writes),
    /// started on its own port with its own socket directory, plus `settings`. Dropping it stops
    /// it and removes its files, like any cluster.
    pub fn standby(&self, settings: &[&str]) -> Cluster {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pg_migrate_it_{}_{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]), "chown");
        }
        let data = dir.join("data");
        let port = self.port.to_string();
        run(
            pg_command("pg_basebackup").args([
                "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", data.to_str().unwrap(), "-X", "stream", "--no-sync", "-c", "fast",
            ]),
            "pg_basebackup",
        );
        follow(&data, self.port);
        let port = free_port();
        // Later lines win over the primary's, which the base backup copied.
        let mut conf = format!("\nport = {port}\nunix_socket_directories = '{}'\n", dir.display());
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        let cluster = Cluster { dir, port };
        run(
            pg_command("pg_ctl").args(["-D", data.to_str().unwrap(), "-l", cluster.log_path().to_str().unwrap(), "-w", "-t", "60", "start"]),
            "pg_ctl start (standby)",
        );
        cluster
    }

    /// `pg_ctl start` of a stopped cluster, on its port.
    pub fn start_again(&self) {
        run(
            pg_command("pg_ctl").args(["-D", self.data_dir().to_str().unwrap(), "-l", self.log_path().to_str().unwrap(), "-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
    }

    /// Makes this stopped cluster a standby of `primary` (after pg_rewind, say).
    pub fn follow(&self, primary: &Cluster) {
        follow(&self.data_dir(), primary.port);
    }

    /// `pg_ctl promote`: a standby becomes a primary.
    pub fn promote(&self) {
        run(pg_command("pg_ctl").args(["-D", self.data_dir().to_str().unwrap(), "-w", "-t", "60", "promote"]), "pg_ctl promote");
    }

    /// `pg_ctl stop` with `mode` (fast, immediate); the cluster stays stopped.
    pub fn stop(&self, mode: &str) {
        run(pg_command("pg_ctl").args(["-D", self.data_dir().to_str().unwrap(), "-m", mode, "-w", "-t", "60", "stop"]), "pg_ctl stop");
    }

    /// `pg_ctl stop` with `mode` (fast, immediate), then start again on the same port.
    pub fn restart(&self, mode: &str) {
        let data = self.data_dir();
        run(pg_command("pg_ctl").args(["-D", data.to_str().unwrap(), "-m", mode, "-w", "-t", "60", "stop"]), "pg_ctl stop");
        run(
            pg_command("pg_ctl").args(["-D", data.to_str().unwrap(), "-l", self.log_path().to_str().unwrap(), "-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
    }

    /// Polls `sql` (one boolean) on `db` until it is true.
    pub fn wait_for(&self, db: &str, secs: u64, sql: &str) -> bool {
        let mut c = self.connect(db);
        wait_until(secs, || c.query_one(sql, &[]).map(|r| r.get::<_, bool>(0)).unwrap_or(false))
    }

    /// Runs psql with `args` against `db`; returns (success, stdout + stderr).
    pub fn psql(&self, db: &str, args: &[&str]) -> (bool, String) {
        let out = self
            .client_program("psql")
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", db])
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn conn_string(&self, db: &str, user: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={db} connect_timeout=10", self.port)
    }

    /// A session as `postgres` on `db`.
    pub fn connect(&self, db: &str) -> Client {
        self.connect_as(db, "postgres")
    }

    pub fn connect_as(&self, db: &str, user: &str) -> Client {
        Client::connect(&self.conn_string(db, user), NoTls).unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"))
    }

    /// A session whose NOTICE messages are collected in the returned vector.
    pub fn connect_with_notices(&self, db: &str, user: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        let mut config: postgres::Config = self.conn_string(db, user).parse().unwrap();
        config.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
        (config.connect(NoTls).unwrap(), notices)
    }

    /// Creates database `db` with pg_migrate installed.
    pub fn create_db(&self, db: &str) {
        let mut admin = self.connect("postgres");
        admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).unwrap();
        self.connect(db).batch_execute("CREATE EXTENSION pg_migrate").unwrap();
    }

    /// Runs a PostgreSQL client program (pg_dump, psql, …) against this cluster.
    pub fn client_program(&self, program: &str) -> Command {
        let mut cmd = Command::new(Path::new(&pg_bin()).join(program));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"]);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .args(["-D", self.data_dir().to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- server log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster with database "app" (pg_migrate installed) and a session on it: what most tests
/// start from.
pub fn app() -> (Cluster, Client) {
    let pg = Cluster::start();
    pg.create_db("app");
    let c = pg.connect("app");
    (pg, c)
}

/// The first column of the one row `sql` returns; a failing query panics with the server's
/// SQLSTATE, message and detail.
pub fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e} {:?}", e.as_db_error().map(|d| (d.code().code(), d.message(), d.detail()))))
        .get(0)
}

/// Runs `sql` (one or more statements); a failure panics with the server's SQLSTATE, message and
/// detail.
pub fn exec(c: &mut Client, sql: &str) {
    c.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e} {:?}", e.as_db_error().map(|d| (d.code().code(), d.message(), d.detail()))));
}

/// The error of `sql`, which must fail: (SQLSTATE, message, detail, hint).
pub fn fails(c: &mut Client, sql: &str) -> (String, String, String, String) {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => db_error(&e),
    }
}

/// The cast of the security tests, in database `db` of a new cluster: `deployer` (a
/// non-superuser LOGIN role that will own schema `dep`), `lead` (a member of deployer: a team
/// lead or an operator) and `stranger`, all with EXECUTE on pg_migrate's functions and
/// procedures. Returns the cluster and a superuser session on `db`.
pub fn attack_cluster(db: &str, settings: &[&str]) -> (Cluster, Client) {
    let pg = Cluster::start_with(settings);
    pg.create_db(db);
    let mut admin = pg.connect(db);
    exec(
        &mut admin,
        "CREATE ROLE deployer LOGIN;
         CREATE ROLE lead LOGIN;
         CREATE ROLE stranger LOGIN;
         GRANT deployer TO lead;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO deployer, lead, stranger;
         GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA migrate TO deployer, lead, stranger;",
    );
    (pg, admin)
}

/// What the deployer of `attack_cluster` brings (run it as a superuser: it creates schema `dep`
/// for the deployer, then works as the deployer): `dep.seen` records who ran the payload
/// (`who`, `via`); `dep.become_superuser()` tries `ALTER ROLE deployer SUPERUSER`, which only works
/// when a superuser runs it; `dep.pwn(v)` (for expressions) also leaves `search_path = dep,
/// pg_catalog, public` in the session that ran it, where `dep.lower()` waits for the next
/// unqualified `lower()`; `dep.pwn_as(via)` records and tries; `dep.t` has 100 rows.
pub const DEPLOYER_PAYLOAD: &str = r#"
CREATE SCHEMA dep AUTHORIZATION deployer;
SET ROLE deployer;
CREATE TABLE dep.seen (who text, via text);
GRANT INSERT, SELECT ON dep.seen TO PUBLIC;
GRANT USAGE ON SCHEMA dep TO PUBLIC;
CREATE FUNCTION dep.become_superuser() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE 'ALTER ROLE deployer SUPERUSER';
EXCEPTION WHEN OTHERS THEN NULL;
END $f$;
CREATE FUNCTION dep.pwn(v text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO dep.seen VALUES (current_user::text, 'pwn');
    PERFORM dep.become_superuser();
    PERFORM pg_catalog.set_config('search_path', 'dep, pg_catalog, public', false);
    RETURN v;
END $f$;
-- what the victim's next unqualified lower() runs once its search_path starts with dep
CREATE FUNCTION dep.lower(text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO dep.seen VALUES (current_user::text, 'lower');
    PERFORM dep.become_superuser();
    RETURN pg_catalog.lower($1);
END $f$;
-- records who ran it and through what, and tries the same
CREATE FUNCTION dep.pwn_as(via text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO dep.seen VALUES (current_user::text, via);
    PERFORM dep.become_superuser();
END $f$;
CREATE TABLE dep.t (id int PRIMARY KEY, a text, b text);
INSERT INTO dep.t SELECT g, 'A' || g, NULL FROM generate_series(1, 100) g;
RESET ROLE;
"#;

/// Whether `role` is a superuser: what most attacks in the security tests try to make true.
pub fn is_superuser(c: &mut Client, role: &str) -> bool {
    c.query_one("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0)
}

/// The SQLSTATE, message, detail and hint of a failed query, for assertions.
pub fn db_error(e: &Error) -> (String, String, String, String) {
    let db = e.as_db_error().unwrap_or_else(|| panic!("not a server error: {e}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        db.detail().unwrap_or("").to_string(),
        db.hint().unwrap_or("").to_string(),
    )
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Terminates the worker `pid` of `job` and checks that the job is left `running` with no live
/// worker: what a crash leaves and what resuming looks for.
pub fn kill_worker(c: &mut Client, job: i64, pid: i32) {
    let killed: bool = c.query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid]).unwrap().get(0);
    assert!(killed);
    let (state, alive): (String, bool) = c
        .query_one("SELECT state, worker_alive FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((state.as_str(), alive), ("running", false), "the dead worker is detectable");
}
