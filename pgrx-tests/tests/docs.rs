//! The manual is checked: the README's five-minute tour runs as written, and no relative link in
//! README.md or docs/*.md points to a missing file or heading.

use pg_migrate_integration::{one, Cluster};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```sql blocks between `<!-- tour:start -->` and `<!-- tour:end -->`, in order.
fn tour_sql(readme: &str) -> String {
    let start = readme.find("<!-- tour:start -->").expect("README.md has no <!-- tour:start --> marker");
    let end = readme.find("<!-- tour:end -->").expect("README.md has no <!-- tour:end --> marker");
    assert!(start < end, "the tour markers are in the wrong order");
    let mut sql = String::new();
    let mut in_sql = false;
    let mut blocks = 0;
    for line in readme[start..end].lines() {
        let fence = line.trim_start();
        if in_sql {
            if fence.starts_with("```") {
                in_sql = false;
                sql.push('\n');
            } else {
                sql.push_str(line);
                sql.push('\n');
            }
        } else if fence.starts_with("```sql") {
            in_sql = true;
            blocks += 1;
        }
    }
    assert!(!in_sql, "a ```sql block of the tour is not closed before <!-- tour:end -->");
    assert!(blocks >= 4, "the tour has {blocks} ```sql blocks; expected its four steps");
    sql
}

/// Runs `file` with psql in its default autocommit mode, as a reader pasting the tour would (each
/// statement its own transaction, so the CALLs of the waits run outside any transaction block).
/// Waits up to `secs` (generous: the machine may be busy) and kills psql after that.
fn psql_file(pg: &Cluster, db: &str, file: &Path, secs: u64) -> (bool, String) {
    let mut child = pg
        .client_program("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn the_readme_tour_runs_as_written() {
    let sql = tour_sql(&read(&repo().join("README.md")));
    let pg = Cluster::start();
    // A database without the extension: the tour creates it.
    pg.connect("postgres").batch_execute("CREATE DATABASE tour").unwrap();
    let file = pg.dir.join("tour.sql");
    std::fs::write(&file, &sql).unwrap();
    let (ok, out) = psql_file(&pg, "tour", &file, 300);
    assert!(ok, "the README's tour failed (or ran over 300 s) in psql:\n{out}\n--- the tour ---\n{sql}");
    assert!(out.contains("applying"), "the concurrent index's apply did not return 'applying':\n{out}");

    let mut c = pg.connect("tour");
    let versions: String = one(
        &mut c,
        "SELECT string_agg(version || ' ' || state, ', ' ORDER BY version) FROM migrate.status()",
    );
    assert_eq!(
        versions,
        "20260105090000_create_orders applied, 20260106090000_orders_customer_idx applied, \
         20260107090000_orders_amount_cents applied"
    );
    // Contracted: amount is gone, amount_cents is bigint NOT NULL with the CHECK, no trigger.
    let columns: String = one(
        &mut c,
        "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum)
           FROM pg_catalog.pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped",
    );
    assert_eq!(columns, "id bigint not null, customer text not null, created_at timestamp with time zone not null, amount_cents bigint not null");
    let checks: String = one(
        &mut c,
        "SELECT string_agg(pg_catalog.pg_get_constraintdef(oid), ', ') FROM pg_catalog.pg_constraint
          WHERE conrelid = 'orders'::regclass AND contype = 'c'",
    );
    assert!(checks.contains("amount_cents") && !checks.contains("NOT VALID"), "the CHECK did not move to amount_cents: {checks}");
    let triggers: i64 = one(&mut c, "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal");
    assert_eq!(triggers, 0);
    let open_changes: i64 = one(&mut c, "SELECT count(*) FROM migrate.changes");
    assert_eq!(open_changes, 0);
    let index_valid: bool = one(&mut c, "SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = 'orders_customer_idx'::regclass");
    assert!(index_valid);
    // Every row was backfilled, and both applications' rows carry their amount in cents.
    let rows: i64 = one(&mut c, "SELECT count(*) FROM orders");
    assert_eq!(rows, 100_002);
    let cents: String = one(&mut c, "SELECT string_agg(customer || '=' || amount_cents, ', ' ORDER BY id) FROM orders WHERE id > 100000");
    assert_eq!(cents, "old application=250, new application=399");
    let wrong: i64 = one(&mut c, "SELECT count(*) FROM orders WHERE id <= 100000 AND amount_cents <> id % 50000");
    assert_eq!(wrong, 0, "rows the backfill did not fill with round(amount * 100)");
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped except '-' and '_', each space a
/// '-'; links in the heading count by their text.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading.trim();
    // [text](url) → text
    while let Some(open) = rest.find('[') {
        match (rest[open..].find("]("), rest[open..].find(')')) {
            (Some(close), Some(end)) if close < end => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..open + close]);
                let after = &rest[open + close..];
                rest = &after[after.find(')').unwrap() + 1..];
            }
            _ => break,
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// (anchors of the headings, link targets) of a Markdown text, outside fenced code blocks and
/// inline code spans.
fn scan(markdown: &str) -> (HashSet<String>, Vec<String>) {
    let mut anchors = HashSet::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut links = Vec::new();
    let mut fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let a = anchor(&line[hashes + 1..]);
            let n = seen.entry(a.clone()).or_insert(0);
            anchors.insert(if *n == 0 { a.clone() } else { format!("{a}-{n}") });
            *n += 1;
        }
        // Inline code may hold "](" that is no link.
        let mut prose = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                prose.push_str(part);
            }
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let target = &rest[at + 2..];
            let end = target.find(|c: char| c == ')' || c.is_whitespace()).unwrap_or(target.len());
            links.push(target[..end].to_string());
            rest = &target[end..];
        }
    }
    (anchors, links)
}

/// Broken relative links of `file` (in the repository at `root`), each as "file: target (why)".
fn broken_links(root: &Path, file: &Path) -> Vec<String> {
    let (_, links) = scan(&read(file));
    let mut broken = Vec::new();
    for target in links {
        let scheme = target.split(':').next().unwrap_or("");
        if target.contains(':') && !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
            continue; // https:, mailto:
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let resolved = if path.is_empty() { file.to_path_buf() } else { file.parent().unwrap().join(path) };
        let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
        if !resolved.exists() {
            broken.push(format!("{name}: {target} (no such file)"));
        } else if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") && !scan(&read(&resolved)).0.contains(anchor) {
            broken.push(format!("{name}: {target} (no such heading)"));
        }
    }
    broken
}

fn manual_pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md"), root.join("bench/README.md")];
    for dir in ["docs", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            } else if path.join("README.md").is_file() {
                pages.push(path.join("README.md"));
            }
        }
    }
    pages.sort();
    pages
}

#[test]
fn every_relative_link_of_the_manual_resolves() {
    let root = repo();
    let pages = manual_pages(&root);
    assert!(pages.iter().any(|p| p.ends_with("docs/versions.md")), "docs/ was not read: {pages:?}");
    let broken: Vec<String> = pages.iter().flat_map(|p| broken_links(&root, p)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The checker itself: it must see a missing file, a missing heading, GitHub's anchors, and skip
/// code.
#[test]
fn the_link_check_reports_what_is_broken() {
    assert_eq!(
        anchor("migrate.expand_column(tbl regclass, backfill jsonb DEFAULT '{}') → bigint"),
        "migrateexpand_columntbl-regclass-backfill-jsonb-default---bigint"
    );
    assert_eq!(anchor("Crash recovery: two set-ups"), "crash-recovery-two-set-ups");
    assert_eq!(anchor("Workers run as the job's owner"), "workers-run-as-the-jobs-owner");
    let dir = std::env::temp_dir().join(format!("pg_migrate_docs_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/a.md"), "# A page\n\n## Same\n\n## Same\n").unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# Title\n\n[ok](docs/a.md#a-page) [ok](docs/a.md#same-1) [ok](#title) [ok](https://x.org/#y)\n\
         [gone](docs/b.md) [no heading](docs/a.md#same-2) [self](#nope) `[code](docs/c.md)`\n\
         ```\n[fenced](docs/d.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&dir, &dir.join("README.md"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        broken,
        vec![
            "README.md: docs/b.md (no such file)",
            "README.md: docs/a.md#same-2 (no such heading)",
            "README.md: #nope (no such heading)",
        ]
    );
}
