//! What a deployer is told when another version's background job has not ended. Versions are
//! applied one at a time (the next one may need what this one builds), so one role's slow or
//! stuck job holds up every role's deploys: the error names the job, its owner, what it waits
//! for, and who can end it.

use crate::catalog::workers;
use crate::error::Failure;
use pgrx::PgSqlErrorCode;

/// `version` is `state` (applying, rolling_back) in `job`; `waiting` is what has to wait, for
/// the DETAIL ("version \"8\"", "the rollback").
pub fn refusal(version: &str, state: &str, job: i64, waiting: &str) -> Failure {
    let facts = workers::holdup(job);
    let owner = facts.as_ref().map(|f| format!(" of role \"{}\"", f.owner)).unwrap_or_default();
    let mut detail = format!("{waiting} must wait until that job has ended: versions are applied one at a time.");
    if let Some(f) = &facts {
        let worker = match f.pid {
            Some(pid) => format!(" in worker pid {pid}"),
            None => String::new(),
        };
        let since = f.since.as_deref().map(|s| format!(" since {s}")).unwrap_or_default();
        let waits = f.waiting_for.as_deref().map(|w| format!(", waiting for {w}")).unwrap_or_default();
        detail.push_str(&format!(" Job {job} is {}{worker}{since}{waits}.", f.state));
    }
    let who = facts.as_ref().map(|f| format!("a member of role \"{}\" or a superuser", f.owner)).unwrap_or("its owner or a superuser".into());
    Failure::new(
        PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
        format!("version \"{version}\" is still {} in background job {job}{owner}", state.replace('_', " ")),
    )
    .detail(detail)
    .hint(format!(
        "COMMIT, then CALL migrate.wait({job}). To stop the job instead, {who} runs SELECT migrate.cancel({job}); SELECT * FROM migrate.workers shows what every job holds and waits for."
    ))
}
