//! The sync trigger as compiled code: `migrate.sync_row(...)`, one C-language trigger function
//! for every change, in place of a generated PL/pgSQL function per change.
//!
//! Why: a PL/pgSQL trigger costs a bulk UPDATE about half its speed (bench/README.md, "Sync
//! trigger cost"): the interpreter, and the `SET search_path` clause PostgreSQL applies and undoes
//! on every call. This one analyses `up`, `down` and the old column's default once per backend
//! and trigger, as PostgreSQL analyses `UPDATE ONLY t SET col = (expr)` (names resolved under the
//! search_path the change was made with, the value coerced to the column's type as an assignment
//! is: what PL/pgSQL's `NEW.col := expr` under `SET search_path FROM CURRENT` does), and then runs
//! the analysed trees on each row with no name lookup and no search_path switch.
//!
//! Like the PL/pgSQL function it replaces, the trigger carries everything in its own definition
//! (its arguments: see `Args`), so that pg_dump and pg_upgrade keep it working, and a table owner
//! who points it at a table of theirs gets nothing they could not write themselves: the
//! arguments are SQL text, analysed and run with the writer's rights. A tree is analysed again
//! after anything it may depend on changes (relcache, function, type and operator
//! invalidations), as PL/pgSQL replans. Expressions with subqueries or set-returning functions,
//! or without an assignment cast, keep the PL/pgSQL trigger (see `trigger::create`).
//!
//! What it does to a row is the PL/pgSQL trigger's table of cases, unchanged (trigger.rs).

use super::facts::Table;
use super::rewrite::quote;
use crate::ddl::session::GucScope;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};

/// The trigger's arguments, in order.
pub struct Args<'a> {
    pub change: i64,
    pub backfill_job: i64,
    pub old: &'a str,
    pub new: &'a str,
    /// The search_path the change was made with: names in the expressions resolve under it.
    pub search_path: &'a str,
    pub up: &'a str,
    pub down: &'a str,
    pub old_default: Option<&'a str>,
}

impl Args<'_> {
    /// `migrate.sync_row('…', …)` for CREATE TRIGGER … EXECUTE FUNCTION.
    pub fn call(&self) -> String {
        let mut args = vec![
            self.change.to_string(),
            self.backfill_job.to_string(),
            self.old.to_string(),
            self.new.to_string(),
            self.search_path.to_string(),
            self.up.to_string(),
            self.down.to_string(),
        ];
        args.extend(self.old_default.map(str::to_string));
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "''"))).collect();
        format!("migrate.sync_row({})", quoted.join(", "))
    }
}

/// Whether the compiled trigger can run these expressions on `table`: each one analyses as the
/// right-hand side of an assignment to its column, with no subquery and no set-returning
/// function. Checked when the change is made, under the caller's search_path.
pub fn can_compile(table: &Table, args: &Args) -> bool {
    let checks = [(args.new, Some(args.up)), (args.old, Some(args.down)), (args.old, args.old_default)];
    checks.iter().all(|(column, expr)| match expr {
        None => true,
        Some(expr) => crate::ddl::subxact::run_and_roll_back(|| unsafe { !analyse(&table.name, column, expr).is_null() }).unwrap_or(false),
    })
}

/// `expr` as the right-hand side of `UPDATE ONLY table SET column = (expr)`, analysed, coerced
/// and planned by PostgreSQL, in the current memory context; null when it is not one plain
/// expression (a subquery, a set-returning function). Errors are raised (a function that no
/// longer exists, say).
unsafe fn analyse(table: &str, column: &str, expr: &str) -> *mut pg_sys::Expr {
    unsafe {
        let sql = format!("UPDATE ONLY {table} SET {} = (\n{expr}\n)", quote(column));
        let Ok(text) = CString::new(sql) else { return std::ptr::null_mut() };
        let raws = pg_sys::pg_parse_query(text.as_ptr());
        if raws.is_null() || (*raws).length != 1 {
            return std::ptr::null_mut();
        }
        let raw = pg_sys::list_nth(raws, 0) as *mut pg_sys::RawStmt;
        if (*(*raw).stmt).type_ != pg_sys::NodeTag::T_UpdateStmt {
            return std::ptr::null_mut();
        }
        let query = pg_sys::parse_analyze_fixedparams(raw, text.as_ptr(), std::ptr::null(), 0, std::ptr::null_mut());
        let q = &*query;
        let plain = !(q.hasSubLinks || q.hasTargetSRFs || q.hasAggs || q.hasWindowFuncs || q.hasModifyingCTE)
            && q.cteList.is_null()
            && q.returningList.is_null()
            && !q.targetList.is_null()
            && (*q.targetList).length == 1;
        if !plain {
            return std::ptr::null_mut();
        }
        let tle = pg_sys::list_nth(q.targetList, 0) as *mut pg_sys::TargetEntry;
        pg_sys::expression_planner((*tle).expr)
    }
}

/// A trigger's analysed trees on its table, in their own memory context (deleted when an
/// invalidation drops the entry: each statement runs copies of its own).
#[derive(Clone, Copy)]
struct Loaded {
    relid: Oid,
    context: pg_sys::MemoryContext,
    old: i16,
    new: i16,
    up: *mut pg_sys::Expr,
    down: *mut pg_sys::Expr,
    old_default: *mut pg_sys::Expr,
    backfill_job: i64,
}

thread_local! {
    /// By trigger OID: a trigger is never changed in place, and a new one has a new OID.
    static LOADED: RefCell<HashMap<Oid, Loaded>> = RefCell::new(HashMap::new());
    static CALLBACKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Drops the entries of `relid` (all of them for InvalidOid).
fn forget(relid: Oid) {
    LOADED.with(|l| {
        l.borrow_mut().retain(|_, e| {
            let keep = relid != pg_sys::InvalidOid && e.relid != relid;
            if !keep {
                unsafe { pg_sys::MemoryContextDelete(e.context) };
            }
            keep
        })
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: Datum, relid: Oid) {
    forget(relid);
}

#[pg_guard]
unsafe extern "C-unwind" fn syscache_changed(_arg: Datum, _cache: i32, _hash: u32) {
    forget(pg_sys::InvalidOid);
}

/// What one statement's calls of one trigger share, in the trigger's `fn_extra` (the executor
/// keeps it for the statement): expression states, an expression context, the equality
/// functions. Plain data: it lives in palloc'd memory.
#[repr(C)]
struct Running {
    tgoid: Oid,
    old: i16,
    new: i16,
    backfill_job: i64,
    up: *mut pg_sys::ExprState,
    down: *mut pg_sys::ExprState,
    old_default: *mut pg_sys::ExprState,
    econtext: *mut pg_sys::ExprContext,
    old_eq: *mut pg_sys::FmgrInfo,
    old_collation: Oid,
    new_eq: *mut pg_sys::FmgrInfo,
    new_collation: Oid,
    /// heap_modify_tuple's arrays, one entry per column of the table; `replace` is all false
    /// between rows.
    values: *mut Datum,
    nulls: *mut bool,
    replace: *mut bool,
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_pg_migrate_sync_row() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[no_mangle]
#[doc(hidden)]
#[pg_guard]
pub extern "C-unwind" fn pg_migrate_sync_row(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    unsafe { sync_row(fcinfo) }
}

fn refuse(message: String) -> ! {
    crate::error::Failure::new(pgrx::PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION, message)
        .hint("migrate.sync_row() is the sync trigger pg_migrate's expand_column creates; it is not meant to be used by hand.")
        .raise()
}

unsafe fn sync_row(fcinfo: pg_sys::FunctionCallInfo) -> Datum {
    unsafe {
        if !pgrx::trigger_support::called_as_trigger(fcinfo) {
            refuse("migrate.sync_row() was not called as a trigger".to_string());
        }
        let td = &*((*fcinfo).context as *mut pg_sys::TriggerData);
        let event = td.tg_event;
        let inserting = event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_INSERT;
        let updating = event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_UPDATE;
        if event & pg_sys::TRIGGER_EVENT_ROW == 0 || event & pg_sys::TRIGGER_EVENT_TIMINGMASK != pg_sys::TRIGGER_EVENT_BEFORE || !(inserting || updating) {
            refuse("migrate.sync_row() must be a BEFORE INSERT or UPDATE row trigger".to_string());
        }
        let run = running(fcinfo, td);
        let r = &*run;
        let (row, slot) = if inserting { (td.tg_trigtuple, td.tg_trigslot) } else { (td.tg_newtuple, td.tg_newslot) };
        if crate::backfill::marker::writing() == r.backfill_job {
            return Datum::from(row as *mut std::ffi::c_void);
        }
        let (old, new) = (r.old as i32, r.new as i32);
        let now_old = attribute(slot, old);
        let now_new = attribute(slot, new);
        // (column to set, expression, the slot it reads)
        let assign: Option<(i32, *mut pg_sys::ExprState, *mut pg_sys::TupleTableSlot)> = if inserting {
            match (now_old.is_none(), now_new.is_none()) {
                (true, true) if !r.old_default.is_null() => {
                    // NEW.old := default; NEW.new := up (which reads the default)
                    let value = evaluate(r.old_default, r.econtext, slot);
                    let with_default = replace(r, row, (*td.tg_relation).rd_att, old, value);
                    pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
                    // A slot of its own for `up` to read the row with the default (a rare
                    // path: made and dropped here, so that no tuple descriptor stays pinned).
                    let scratch = pg_sys::MakeSingleTupleTableSlot((*td.tg_relation).rd_att, &pg_sys::TTSOpsHeapTuple);
                    pg_sys::ExecStoreHeapTuple(with_default, scratch, false);
                    let up = evaluate(r.up, r.econtext, scratch);
                    let done = replace(r, with_default, (*td.tg_relation).rd_att, new, up);
                    pg_sys::ExecDropSingleTupleTableSlot(scratch);
                    pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
                    return Datum::from(done as *mut std::ffi::c_void);
                }
                (_, true) => Some((new, r.up, slot)),
                (true, false) => Some((old, r.down, slot)),
                (false, false) => None,
            }
        } else {
            let before = td.tg_trigslot;
            if distinct(r.old_eq, r.old_collation, now_old, attribute(before, old)) {
                (!distinct(r.new_eq, r.new_collation, now_new, attribute(before, new))).then_some((new, r.up, slot))
            } else if distinct(r.new_eq, r.new_collation, now_new, attribute(before, new)) {
                Some((old, r.down, slot))
            } else if now_new.is_none() {
                Some((new, r.up, slot))
            } else {
                None
            }
        };
        let Some((column, expr, reads)) = assign else { return Datum::from(row as *mut std::ffi::c_void) };
        let value = evaluate(expr, r.econtext, reads);
        let done = replace(r, row, (*td.tg_relation).rd_att, column, value);
        pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
        Datum::from(done as *mut std::ffi::c_void)
    }
}

/// The statement's state of this trigger, made on its first row.
unsafe fn running(fcinfo: pg_sys::FunctionCallInfo, td: &pg_sys::TriggerData) -> *mut Running {
    unsafe {
        let flinfo = &mut *(*fcinfo).flinfo;
        let tgoid = (*td.tg_trigger).tgoid;
        let existing = flinfo.fn_extra as *mut Running;
        if !existing.is_null() && (*existing).tgoid == tgoid {
            return existing;
        }
        let loaded = load(td);
        let previous = pg_sys::MemoryContextSwitchTo(flinfo.fn_mcxt);
        let run = pg_sys::palloc0(std::mem::size_of::<Running>()) as *mut Running;
        let desc = (*td.tg_relation).rd_att;
        let (old_type, old_collation) = attribute_type(loaded.relid, loaded.old);
        let (new_type, new_collation) = attribute_type(loaded.relid, loaded.new);
        run.write(Running {
            tgoid,
            old: loaded.old,
            new: loaded.new,
            backfill_job: loaded.backfill_job,
            up: prepared(loaded.up),
            down: prepared(loaded.down),
            old_default: prepared(loaded.old_default),
            econtext: pg_sys::CreateStandaloneExprContext(),
            old_eq: equality(old_type),
            old_collation,
            new_eq: equality(new_type),
            new_collation,
            values: pg_sys::palloc0(std::mem::size_of::<Datum>() * (*desc).natts as usize) as *mut Datum,
            nulls: pg_sys::palloc0((*desc).natts as usize) as *mut bool,
            replace: pg_sys::palloc0((*desc).natts as usize) as *mut bool,
        });
        pg_sys::MemoryContextSwitchTo(previous);
        flinfo.fn_extra = run as *mut std::ffi::c_void;
        run
    }
}

/// A statement's own copy of a cached tree, ready to run (an invalidation may delete the cached
/// one while the statement runs); null stays null.
unsafe fn prepared(tree: *mut pg_sys::Expr) -> *mut pg_sys::ExprState {
    if tree.is_null() {
        return std::ptr::null_mut();
    }
    unsafe { pg_sys::ExecInitExpr(pg_sys::copyObjectImpl(tree as *const std::ffi::c_void) as *mut pg_sys::Expr, std::ptr::null_mut()) }
}

/// This trigger's trees, from the cache or analysed now.
unsafe fn load(td: &pg_sys::TriggerData) -> Loaded {
    unsafe {
        let trigger = &*td.tg_trigger;
        if let Some(loaded) = LOADED.with(|l| l.borrow().get(&trigger.tgoid).copied()) {
            return loaded;
        }
        if !CALLBACKS.with(|c| c.replace(true)) {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), Datum::from(0usize));
            for cache in [pg_sys::SysCacheIdentifier::PROCOID, pg_sys::SysCacheIdentifier::TYPEOID, pg_sys::SysCacheIdentifier::OPEROID] {
                pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(syscache_changed), Datum::from(0usize));
            }
        }
        let n = trigger.tgnargs as usize;
        if !(7..=8).contains(&n) {
            refuse(format!("trigger \"{}\" calls migrate.sync_row() with {n} arguments", CStr::from_ptr(trigger.tgname).to_string_lossy()));
        }
        let arg = |i: usize| -> Option<String> { (i < n).then(|| CStr::from_ptr(*trigger.tgargs.add(i)).to_string_lossy().into_owned()) };
        let backfill_job: i64 = arg(1).and_then(|j| j.parse().ok()).unwrap_or(0);
        let (old, new, path) = (arg(2).unwrap_or_default(), arg(3).unwrap_or_default(), arg(4).unwrap_or_default());
        let rel = td.tg_relation;
        let relid = (*rel).rd_id;
        let table = format!(
            "{}.{}",
            quote(&CStr::from_ptr(pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace)).to_string_lossy()),
            quote(&CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy())
        );
        let (old_number, new_number) = (column_number(relid, &old), column_number(relid, &new));
        let context = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CacheMemoryContext,
            c"pg_migrate sync trigger".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let previous = pg_sys::MemoryContextSwitchTo(context);
        let guc = GucScope::new();
        guc.set("search_path", &path);
        let tree = |column: &str, expr: Option<String>| -> *mut pg_sys::Expr {
            let Some(expr) = expr else { return std::ptr::null_mut() };
            let analysed = analyse(&table, column, &expr);
            if analysed.is_null() {
                refuse(format!("the sync trigger of {table} cannot run ({expr}): it is not one plain expression"));
            }
            analysed
        };
        let (up, down, old_default) = (tree(&new, arg(5)), tree(&old, arg(6)), tree(&old, arg(7)));
        drop(guc);
        pg_sys::MemoryContextSwitchTo(previous);
        let loaded = Loaded { relid, context, old: old_number, new: new_number, up, down, old_default, backfill_job };
        LOADED.with(|l| l.borrow_mut().insert(trigger.tgoid, loaded));
        loaded
    }
}

unsafe fn column_number(relid: Oid, name: &str) -> i16 {
    let text = CString::new(name).expect("column names have no NUL");
    let n = unsafe { pg_sys::get_attnum(relid, text.as_ptr()) };
    if n <= 0 {
        refuse(format!("column {} of the sync trigger's table {} does not exist", quote(name), relid.to_u32()));
    }
    n
}

/// The column's type and collation.
unsafe fn attribute_type(relid: Oid, attnum: i16) -> (Oid, Oid) {
    let (mut type_oid, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    unsafe { pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_oid, &mut typmod, &mut collation) };
    (type_oid, collation)
}

/// The type's `=`, as IS DISTINCT FROM uses it.
unsafe fn equality(type_oid: Oid) -> *mut pg_sys::FmgrInfo {
    unsafe {
        let entry = pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_EQ_OPR_FINFO as i32);
        if (*entry).eq_opr_finfo.fn_oid == pg_sys::InvalidOid {
            refuse(format!("type {} has no equality operator for the sync trigger", type_oid.to_u32()));
        }
        &mut (*entry).eq_opr_finfo
    }
}

unsafe fn attribute(slot: *mut pg_sys::TupleTableSlot, attnum: i32) -> Option<Datum> {
    unsafe {
        if ((*slot).tts_nvalid as i32) < attnum {
            pg_sys::slot_getsomeattrs_int(slot, attnum);
        }
        let i = attnum as usize - 1;
        if *(*slot).tts_isnull.add(i) {
            None
        } else {
            Some(*(*slot).tts_values.add(i))
        }
    }
}

/// `a IS DISTINCT FROM b`.
unsafe fn distinct(eq: *mut pg_sys::FmgrInfo, collation: Oid, a: Option<Datum>, b: Option<Datum>) -> bool {
    match (a, b) {
        (None, None) => false,
        (Some(a), Some(b)) => unsafe { pg_sys::FunctionCall2Coll(eq, collation, a, b) }.value() == 0,
        _ => true,
    }
}

/// The expression's value on the row in `slot`, in the context's per-row memory.
unsafe fn evaluate(state: *mut pg_sys::ExprState, econtext: *mut pg_sys::ExprContext, slot: *mut pg_sys::TupleTableSlot) -> Option<Datum> {
    unsafe {
        (*econtext).ecxt_scantuple = slot;
        let previous = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
        let mut is_null = false;
        let value = ((*state).evalfunc.expect("an initialised expression"))(state, econtext, &mut is_null);
        pg_sys::MemoryContextSwitchTo(previous);
        (!is_null).then_some(value)
    }
}

/// `row` with column `attnum` set to `value`: a new tuple in the caller's memory.
unsafe fn replace(r: &Running, row: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, attnum: i32, value: Option<Datum>) -> pg_sys::HeapTuple {
    unsafe {
        let i = attnum as usize - 1;
        *r.values.add(i) = value.unwrap_or(Datum::from(0usize));
        *r.nulls.add(i) = value.is_none();
        *r.replace.add(i) = true;
        let done = pg_sys::heap_modify_tuple(row, desc, r.values, r.nulls, r.replace);
        *r.replace.add(i) = false;
        done
    }
}
