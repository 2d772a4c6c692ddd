//! Versions belong to the role that applied them (`migrate.migrations.owner`). Rolling one back,
//! resuming its failed job or repairing its record acts for that role, so the caller must be a
//! member of it (superusers are members of every role); and the version's SQL then runs as that
//! role, never with the caller's rights (issue 13: a deployer can never act with anyone else's
//! rights). A baseline is the one record that affects every role: see `may_baseline`.

use crate::catalog::history::{self, Version};
use crate::ddl::session::{as_role_restricted, extension_owner};
use crate::error::{Failure, Result};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;

/// What the caller is about to do to a version, for the checks' messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Run its down SQL (or forget a baseline).
    RollBack,
    /// Queue its failed job again, which runs the rest of its up SQL.
    Resume,
    /// Replace its recorded up SQL and checksum.
    Repair,
}

impl Act {
    fn verb(self) -> &'static str {
        match self {
            Act::RollBack => "roll back",
            Act::Resume => "resume",
            Act::Repair => "repair",
        }
    }

    fn verb_it(self) -> &'static str {
        match self {
            Act::RollBack => "roll it back",
            Act::Resume => "resume it",
            Act::Repair => "repair it",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Act::RollBack => "rolling it back runs its down SQL with that role's rights",
            Act::Resume => "resuming it runs the rest of its up SQL with that role's rights",
            Act::Repair => "repairing it replaces the up SQL recorded for that role",
        }
    }
}

/// The role a version belongs to, once the caller may act for it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub oid: pg_sys::Oid,
    pub name: String,
    /// Whether the version's SQL must run restricted (see `run`).
    restricted: bool,
}

/// Checks that the caller may `act` on `v` and returns its owner.
pub fn check(v: &Version, act: Act) -> Result<Owner> {
    let (Some(oid), Some(name)) = (v.owner, v.owner_name.clone()) else {
        return Err(ownerless(v));
    };
    // The authenticated (login) role, not the session user: after SET SESSION AUTHORIZATION
    // the session user is whatever a superuser chose, and RESET SESSION AUTHORIZATION in the
    // owner's SQL would hand it the superuser back.
    let (caller, session) = unsafe { (pg_sys::GetUserId(), pg_sys::GetAuthenticatedUserId()) };
    if !crate::catalog::may_act_as(caller, oid) {
        let caller_name = role_name(caller).unwrap_or_default();
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {} version \"{}\" of role \"{name}\"", act.verb(), v.version),
        )
        .detail(format!(
            "Version \"{}\" belongs to role \"{name}\", which applied it; {}, so only \"{name}\" and its members may. Role \"{caller_name}\" is not a member of \"{name}\".",
            v.version,
            act.why()
        ))
        .hint(format!(
            "Ask role \"{name}\" or one of its members to {}. SELECT version, owner FROM migrate.status() shows whose each version is.",
            act.verb_it()
        )));
    }
    // Unrestricted only in the owner's own login session. Anywhere else (a superuser or another
    // member, SET ROLE, SET SESSION AUTHORIZATION or a SECURITY DEFINER function) the owner's SQL could otherwise SET ROLE
    // back to the session's role or leave settings behind in the caller's session.
    Ok(Owner { oid, name, restricted: caller != oid || session != oid })
}

/// A version whose owner role no longer exists: nobody can act for it until a superuser names a
/// new one, since its SQL has no role left to run as.
fn ownerless(v: &Version) -> Failure {
    let applier = v.applied_by.as_deref().unwrap_or("(unknown)");
    let detail = match v.owner {
        Some(oid) => format!(
            "It was applied by role \"{applier}\" (oid {}), which has been dropped since.",
            oid.to_u32()
        ),
        None => format!(
            "It was applied by role \"{applier}\" before pg_migrate 0.3.0 recorded owners, and no role of that name existed when the extension was updated."
        ),
    };
    Failure::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("the owner of version \"{}\" no longer exists", v.version),
    )
    .detail(detail)
    .hint(format!(
        "A superuser can give the version to an existing role, which then acts for it: UPDATE migrate.migrations SET owner = '<role>' WHERE version = '{}';",
        v.version
    ))
}

impl Owner {
    /// Runs `f`, which runs the version's SQL or queues its job, as the owner: in the owner's
    /// own session as it is; anywhere else through `as_role_restricted`, as PostgreSQL runs a
    /// table owner's code during maintenance. A job queued inside is the owner's (its worker
    /// connects as the owner, see worker::submit).
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.restricted {
            as_role_restricted(self.oid, f)
        } else {
            f()
        }
    }

    /// Says why a statement of `version` failed when the restriction is the cause: CREATE TEMP,
    /// DISCARD, … fail "within security-restricted operation", SET ROLE "within security-definer
    /// function" (PostgreSQL names the user switch that comes with the restriction).
    pub fn explain(&self, version: &str, failure: Failure) -> Failure {
        let restriction = ["within security-restricted operation", "within security-definer function"];
        if !self.restricted || !restriction.iter().any(|r| failure.message.contains(r)) {
            return failure;
        }
        let login = role_name(unsafe { pg_sys::GetAuthenticatedUserId() }).unwrap_or_default();
        let name = &self.name;
        let why = format!(
            "The SQL of version \"{version}\" runs as its owner \"{name}\" within a security-restricted operation, because this session logged in as role \"{login}\" (SET ROLE and SET SESSION AUTHORIZATION do not count): temporary objects, SET ROLE, SET SESSION AUTHORIZATION and DISCARD are not allowed there, and its settings are undone afterwards."
        );
        let next = format!(
            "Run it in a session that logs in as \"{name}\" itself, where its SQL runs unrestricted, or change that statement (a regular table instead of a temporary one)."
        );
        let (detail, hint) = (failure.detail.clone(), failure.hint.clone());
        let joined = |first: String, rest: Option<String>| match rest {
            Some(r) => format!("{first}\n{r}"),
            None => first,
        };
        failure.detail(joined(why, detail)).hint(joined(next, hint))
    }
}

/// `migrate.apply()` of a version already applied with the same SQL is a no-op, but only for a
/// member of its owner (or when its owner is a superuser, an administrator's migration): for
/// anyone else, "applied" would hide that another role ran it first, holds its down SQL and owns
/// what it created (a deployer applying another deployer's next migration from the shared
/// repository before it does).
pub fn check_reapply(v: &Version) -> Result<()> {
    let Some(owner) = v.owner else { return Ok(()) };
    let caller = unsafe { pg_sys::GetUserId() };
    if crate::catalog::may_act_as(caller, owner) || unsafe { pg_sys::superuser_arg(owner) } {
        return Ok(());
    }
    let name = v.owner_name.clone().or_else(|| role_name(owner)).unwrap_or_default();
    let caller = role_name(caller).unwrap_or_default();
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("version \"{}\" is already applied by role \"{name}\", not by role \"{caller}\"", v.version),
    )
    .detail(format!(
        "Role \"{name}\" applied the same up SQL first: what it created and the version's down SQL are \"{name}\"'s, and role \"{caller}\" is not a member of it. Nothing was run."
    ))
    .hint(format!(
        "If that is expected, apply it as \"{name}\" or a member of it. Otherwise ask \"{name}\" to roll it back (SELECT migrate.rollback('{}')) and apply it again.",
        v.version
    )))
}

/// The caller may record a baseline: in a database with no version recorded yet (it begins the
/// history), or as the extension owner or one of its members (superusers are). A later baseline
/// makes migrate.apply() skip every version at or below it for every role, which only whoever
/// administers pg_migrate may decide.
pub fn may_baseline(version: &str) -> Result<()> {
    let recorded = history::count();
    let admin = extension_owner();
    if recorded == 0 || crate::catalog::may_act_as(unsafe { pg_sys::GetUserId() }, admin) {
        return Ok(());
    }
    let admin = role_name(admin).unwrap_or_default();
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied to record baseline \"{version}\": versions are already recorded"),
    )
    .detail(format!(
        "{recorded} {} recorded. A baseline makes migrate.apply() skip every version at or below it, whoever applies it, so once the history has begun only the owner of the pg_migrate extension (role \"{admin}\"), its members and superusers may record one.",
        if recorded == 1 { "version is" } else { "versions are" }
    ))
    .hint(format!(
        "Apply the version with migrate.apply() instead, or ask role \"{admin}\" to record the baseline."
    )))
}

/// A role's name, or None when no role has that oid (any more).
pub fn role_name(oid: pg_sys::Oid) -> Option<String> {
    let p = unsafe { pg_sys::GetUserNameFromId(oid, true) };
    (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
}
