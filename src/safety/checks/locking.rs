//! concurrently-in-transaction, statement-after-access-exclusive, missing-lock-timeout: rules
//! about the transaction a migration runs in and how long its locks are held.
//!
//! A migration is taken to run as one transaction (as pg_migrate and most migration tools run
//! it) unless it contains its own BEGIN / COMMIT.

use crate::ddl::script::Statement;
use crate::safety::context::Script;
use crate::safety::facts::{lock_name, Facts, Kind, ACCESS_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE};
use crate::safety::rules;

pub fn concurrently_in_transaction(script: &mut Script, statements: &[(&Statement, Facts)]) {
    let mut in_block = false;
    // SET / SHOW before a CONCURRENTLY statement are fine for tools that run statements one by one.
    let others = statements.iter().filter(|(_, f)| f.kind != Kind::Session).count().saturating_sub(1);
    for (stmt, facts) in statements {
        match facts.kind {
            Kind::Begin => in_block = true,
            Kind::End => in_block = false,
            _ => {}
        }
        let Some(form) = facts.concurrent else { continue };
        let subject = if in_block {
            format!("{form} inside BEGIN ... COMMIT")
        } else if others > 0 {
            format!("{form} in a migration with {others} other statement(s), which migration tools run as one transaction or one multi-statement query")
        } else {
            continue;
        };
        script.report_at(stmt.number, stmt.line, &rules::CONCURRENTLY_IN_TRANSACTION, -1, subject);
    }
}

/// A statement taking ACCESS EXCLUSIVE on an existing relation, followed by more work before the
/// transaction ends.
pub fn statement_after_access_exclusive(script: &mut Script, statements: &[(&Statement, Facts)]) {
    // Walking backwards, `following` counts the statements after the current one up to the end
    // of its transaction.
    let mut following = 0;
    let mut found = Vec::new();
    for (stmt, facts) in statements.iter().rev() {
        if let (Some((relation, ACCESS_EXCLUSIVE)), true) = (facts.strongest_lock(), following > 0) {
            found.push((stmt, relation, following));
        }
        match facts.kind {
            Kind::End => following = 0,
            Kind::Session => {}
            _ => following += 1,
        }
    }
    for (stmt, relation, following) in found.into_iter().rev() {
        script.report_at(
            stmt.number,
            stmt.line,
            &rules::STATEMENT_AFTER_ACCESS_EXCLUSIVE,
            -1,
            format!("statement {} takes ACCESS EXCLUSIVE on {relation} and {following} more statement(s) run while it is held", stmt.number),
        );
    }
}

/// The first statement that waits for a lock stronger than ordinary reads and writes take, on an
/// existing relation, while no lock_timeout is set.
pub fn missing_lock_timeout(script: &mut Script, statements: &[(&Statement, Facts)]) {
    let mut timeout_set = false;
    for (stmt, facts) in statements {
        if let Some(set) = facts.lock_timeout {
            timeout_set = set;
        }
        let Some((relation, mode)) = facts.strongest_lock() else { continue };
        if *mode >= SHARE_UPDATE_EXCLUSIVE && !timeout_set {
            script.report_at(
                stmt.number,
                stmt.line,
                &rules::MISSING_LOCK_TIMEOUT,
                -1,
                format!("statement {} waits for {} on {relation} with no lock_timeout set", stmt.number, lock_name(*mode)),
            );
            return;
        }
    }
}
