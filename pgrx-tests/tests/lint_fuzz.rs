//! Lint never crashes the backend, whatever it is given: thousands of mutations of the lint
//! corpus (truncations, byte flips, deletions, duplications, token shuffles, splices) and random
//! text, from a fixed seed, against a real server. Errors are fine (most mutants are syntax
//! errors); a lost connection, an internal error (XX000, what a Rust panic becomes) or a server
//! log line about a crashed backend is not.

use pg_migrate_integration::Cluster;
use std::path::Path;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces that steer mutants into the parser's and lint's corners.
const TOKENS: &[&str] = &[
    "'", "\"", "$$", "$a$", "--", "/*", "*/", ";", "(", ")", ",", "::", "E'\\'", "CONCURRENTLY", "NOT VALID",
    "NOT NULL", "DEFAULT random()", "USING", "TYPE", "ALTER TABLE", "ADD COLUMN", "DROP", "INDEX", "ON",
    "BEGIN;", "COMMIT;", "SET lock_timeout = 0;", "-- migrate:allow drop-column\n", "json", "serial",
    "GENERATED ALWAYS AS (1) STORED", "REFERENCES users", "CHECK (x IS NOT NULL)", "WHERE", "RENAME",
    "VACUUM (FULL)", "REINDEX", "CLUSTER", "TRUNCATE", "pg_enum", "varchar(", "numeric(1000,", "é", "\u{1F600}",
    "\n", "\t", " ", "a.b.c.d", "ONLY", "WITH x AS (UPDATE t SET a = 1)", "PARTITION", "DETACH", "IDENTITY",
];

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lint-corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out: Vec<String> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(out.len() > 60, "the corpus is in docs/lint-corpus");
    out.push("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN RETURN NEW; END $body$;".into());
    out.push("ALTER TABLE users ADD COLUMN a int NOT NULL DEFAULT 0 CHECK (a > 0) REFERENCES orders, ALTER COLUMN email TYPE text USING email || 'x';".into());
    out
}

fn cut(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(rng: &mut Rng, corpus: &[String], input: &str) -> String {
    let s = input.to_string();
    let a = cut(&s, rng.below(s.len() + 1));
    let b = cut(&s, a + rng.below(s.len() - a + 1));
    match rng.below(8) {
        0 => s[..a].to_string(),
        1 => format!("{}{}{}", &s[..a], rng.pick(TOKENS), &s[a..]),
        2 => format!("{}{}", &s[..a], &s[b..]),
        3 => format!("{}{}{}", &s[..b], &s[a..b], &s[b..]),
        4 => {
            // Replace one character with a random printable ASCII one.
            let c = (b' ' + rng.below(95) as u8) as char;
            let end = cut(&s, a + s[a..].chars().next().map_or(0, char::len_utf8));
            format!("{}{}{}", &s[..a], c, &s[end..])
        }
        5 => {
            let mut tokens: Vec<&str> = s.split_whitespace().collect();
            if tokens.len() > 1 {
                let (i, j) = (rng.below(tokens.len()), rng.below(tokens.len()));
                tokens.swap(i, j);
            }
            tokens.join(" ")
        }
        6 => {
            let other = rng.pick(corpus);
            let o = cut(other, rng.below(other.len() + 1));
            format!("{}{}", &s[..a], &other[o..])
        }
        _ => (0..1 + rng.below(40)).map(|_| *rng.pick(TOKENS)).collect::<Vec<_>>().join(" "),
    }
}

#[test]
fn lint_survives_random_and_mutated_sql() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute(include_str!("../../docs/lint-corpus/_schema.sql")).unwrap();
    let corpus = corpus();
    let mut rng = Rng(0x5eed_0f_1_a_7e57);
    let (mut ok, mut refused, mut findings) = (0, 0, 0i64);
    let rounds = 4000;
    for round in 0..rounds {
        let mut input = rng.pick(&corpus).clone();
        for _ in 0..1 + rng.below(4) {
            input = mutate(&mut rng, &corpus, &input);
        }
        if round % 10 == 0 {
            // Random printable text and control characters, no NUL (text cannot hold it).
            input = (0..rng.below(200)).map(|_| (1 + rng.below(126)) as u8 as char).collect();
        }
        match c.query_one("SELECT count(*) FROM migrate.lint($1)", &[&input]) {
            Ok(row) => {
                ok += 1;
                findings += row.get::<_, i64>(0);
            }
            Err(e) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("round {round}: connection lost ({e}) on input {input:?}"));
                assert_ne!(db.code().code(), "XX000", "round {round}: internal error {:?} on input {input:?}", db.message());
                refused += 1;
            }
        }
    }
    let alive: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(alive, 1);
    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(!log.contains("terminated by signal") && !log.contains("PANIC"), "a backend crashed:\n{log}");
    eprintln!("lint fuzz: {rounds} inputs, {ok} linted ({findings} findings), {refused} refused with an error");
    assert!(ok > rounds / 10 && refused > rounds / 10, "mutants should both parse and fail: {ok} ok, {refused} refused");
}

/// Inputs built to exhaust stacks and patience: very long and very deep expressions, many
/// statements, a very long line. Each must end quickly, with findings or a clean error.
#[test]
fn lint_survives_huge_and_deeply_nested_input() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    let add = |default: String| format!("ALTER TABLE users ADD COLUMN c int DEFAULT {default};");
    let inputs = [
        add(vec!["random()"; 200_000].join("+")),
        add(format!("{}random(){}", "(".repeat(3000), ")".repeat(3000))),
        add(format!("{}1{}", "abs(".repeat(5000), ")".repeat(5000))),
        add(format!("{}1{}", "abs(".repeat(1000), ")".repeat(1000))),
        "CREATE INDEX i ON users (email);\n".repeat(20_000),
        format!("SELECT {} FROM users WHERE;", "x, ".repeat(100_000)),
    ];
    for input in inputs {
        let started = std::time::Instant::now();
        match c.query_one("SELECT count(*) FROM migrate.lint($1)", &[&input]) {
            Ok(row) => assert!(row.get::<_, i64>(0) > 0),
            Err(e) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("connection lost: {e}"));
                assert_ne!(db.code().code(), "XX000", "{}", db.message());
                assert!(db.detail().unwrap_or("").chars().count() < 200, "DETAIL is cut: {:?}", db.detail());
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?} for {} bytes", started.elapsed(), input.len());
    }
    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(!log.contains("terminated by signal"), "a backend crashed:\n{log}");
}
