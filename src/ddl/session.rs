//! Scoped changes to the backend's session state, undone when the scope ends (also on error):
//! GUC values (how a function's SET clause works) and the current user (how SECURITY DEFINER
//! works). pg_migrate reads and writes its catalog as the extension owner with a pinned
//! search_path, while the user's migration SQL runs as the caller with the caller's search_path.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// GUC values set through this scope are restored when it is dropped. Values the user's own SQL
/// sets inside the scope (SET search_path in a migration) are kept, as after a function call.
pub struct GucScope {
    level: i32,
}

impl GucScope {
    pub fn new() -> Self {
        GucScope { level: unsafe { pg_sys::NewGUCNestLevel() } }
    }

    pub fn set(&self, name: &str, value: &str) {
        set_guc(name, value, pg_sys::GucAction::GUC_ACTION_SAVE);
    }

    /// Sets one of pg_migrate's PGC_INTERNAL settings, which no user SQL can set.
    pub fn set_internal(&self, name: &str, value: &str) {
        set_with_context(name, value, pg_sys::GucContext::PGC_INTERNAL, pg_sys::GucAction::GUC_ACTION_SAVE);
    }
}

impl Drop for GucScope {
    fn drop(&mut self) {
        unsafe { pg_sys::AtEOXact_GUC(true, self.level) }
    }
}

/// Sets a GUC for the rest of the session (a job worker adopting its creator's settings).
pub fn set_session(name: &str, value: &str) {
    set_guc(name, value, pg_sys::GucAction::GUC_ACTION_SET);
}

/// SET with the caller's rights: SAVE undoes it at the end of a nest level, SET keeps it for the
/// session, LOCAL until the end of the transaction.
pub fn set_guc(name: &str, value: &str, action: pg_sys::GucAction::Type) {
    set_with_context(name, value, pg_sys::GucContext::PGC_USERSET, action);
}

fn set_with_context(name: &str, value: &str, context: pg_sys::GucContext::Type, action: pg_sys::GucAction::Type) {
    let name = CString::new(name).expect("GUC names have no NUL");
    let value = CString::new(value).expect("GUC values have no NUL");
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// Runs `f` with `search_path = pg_catalog, pg_temp`, as the caller. For pg_migrate's own catalog
/// queries inside functions that otherwise run or resolve user SQL with the caller's search_path
/// (lint, plan, verify): names the user wrote resolve as the user expects, pg_migrate's queries
/// cannot be redirected by objects on that path.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    let guc = GucScope::new();
    guc.set("search_path", "pg_catalog, pg_temp");
    let result = f();
    drop(guc);
    result
}

/// Runs `f` as the owner of the pg_migrate extension with `search_path = pg_catalog, pg_temp`.
/// This is how catalog rows get written by roles that may not write the catalog tables
/// themselves: there is no SQL-callable back door, only this Rust path.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    with_pinned_search_path(|| {
        let owner = extension_owner();
        switch_user(owner, pg_sys::SECURITY_RESTRICTED_OPERATION as i32, f)
    })
}

/// The role that owns the pg_migrate extension in this database. Qualified throughout: callers
/// may run with the user's search_path.
pub fn extension_owner() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_migrate'",
    )
    .ok()
    .flatten()
    .expect("pg_migrate is installed in this database")
}

/// Runs another role's SQL the way PostgreSQL runs a table owner's expressions during
/// maintenance (`ExecRefreshMatView`, index builds): as `role`, under
/// `SECURITY_RESTRICTED_OPERATION` (no SET ROLE, no temporary objects, no cursors WITH HOLD),
/// and with every GUC change made inside undone at the end, `set_config(…, false)` included.
/// Whoever calls pg_migrate (a superuser, a member of `role`, a pg_cron session), nothing of
/// `role`'s code runs with the caller's rights or survives into the caller's session. Settings
/// the caller of this function needs inside (the job's search_path, lock_timeout) are made in
/// `f`, on the nest level this opens.
pub fn as_role_restricted<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    switch_user(role, pg_sys::SECURITY_RESTRICTED_OPERATION as i32, || {
        let _revert = RevertGucs { level: unsafe { pg_sys::NewGUCNestLevel() } };
        f()
    })
}

/// Undoes every GUC change made since its nest level began, kept or not (AtEOXact_GUC(false)).
struct RevertGucs {
    level: i32,
}

impl Drop for RevertGucs {
    fn drop(&mut self) {
        unsafe { pg_sys::AtEOXact_GUC(false, self.level) }
    }
}

fn switch_user<R>(role: pg_sys::Oid, extra_context: i32, f: impl FnOnce() -> R) -> R {
    let mut caller = pg_sys::InvalidOid;
    let mut sec_context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut caller, &mut sec_context) };
    let _restore = RestoreUser { user: caller, sec_context };
    unsafe {
        pg_sys::SetUserIdAndSecContext(role, sec_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | extra_context)
    };
    f()
}

struct RestoreUser {
    user: pg_sys::Oid,
    sec_context: i32,
}

impl Drop for RestoreUser {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.sec_context) }
    }
}

/// The role calling pg_migrate (current_user) and the session's login role.
pub fn caller_names() -> (String, String) {
    unsafe {
        let name = |oid: pg_sys::Oid| {
            let p = pg_sys::GetUserNameFromId(oid, false);
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        (name(pg_sys::GetUserId()), name(pg_sys::GetSessionUserId()))
    }
}
