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
//! (its arguments: see `call`), so that pg_dump and pg_upgrade keep it working, and a table owner
//! who points it at a table of theirs gets nothing they could not write themselves: the
//! arguments are SQL text, each checked to be one expression (as every expression pg_migrate
//! takes), analysed and run with the writer's rights. Each expression is analysed when a row
//! first needs it (a broken `down` does not stop the writes that only need `up`, nor the
//! backfill, whose writes the trigger leaves alone before looking at any expression), and again
//! after anything it may depend on changes (relcache, function, type and operator
//! invalidations), as PL/pgSQL replans. Expressions with subqueries or set-returning functions,
//! without an assignment cast, on types with no default equality, or on a table with virtual
//! generated columns keep the PL/pgSQL trigger (see `trigger::create`).
//!
//! What it does to a row is the PL/pgSQL trigger's table of cases, with one difference: "changed"
//! compares the values' bytes, not the type's `=`, so an update to an equal but different value
//! (another case of a citext, another scale of a numeric) is synced too, where the PL/pgSQL
//! trigger's IS DISTINCT FROM does not see it. So the compiled trigger on UPDATE has no WHEN
//! clause: the function decides.

use super::trigger::Sync;
use super::rewrite::quote;
use crate::ddl::session::GucScope;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};

/// `migrate.sync_row('…', …)` for CREATE TRIGGER … EXECUTE FUNCTION: the change, its backfill
/// job, the old and new columns, the schemas `search_path` the expressions resolve in, `up`,
/// `down`, and the old column's default if it has one (the order `tree` and `running` read).
pub fn call(s: &Sync, search_path: &str) -> String {
    let mut args = vec![s.change.to_string(), s.backfill_job.to_string(), s.old.to_string(), s.new.to_string(), search_path.to_string(), s.up.to_string(), s.down.to_string()];
    args.extend(s.old_default.map(str::to_string));
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "''"))).collect();
    format!("migrate.sync_row({})", quoted.join(", "))
}

/// Whether the compiled trigger can run these expressions on `table`: each one analyses as the
/// right-hand side of an assignment to its column, with no subquery and no set-returning
/// function; both columns' types have a default equality (IS DISTINCT FROM's `=`, for the
/// differential promise); the table has no virtual generated column (PostgreSQL 18 computes
/// those after BEFORE triggers). Checked when the change is made, under the caller's search_path.
pub fn can_compile(s: &Sync) -> bool {
    let table = s.table;
    let plain_table = Spi::get_one_with_args::<bool>(
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attgenerated = 'v' AND NOT attisdropped)",
        &[table.oid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    let comparable = [s.old, s.new].iter().all(|column| {
        let Ok(name) = CString::new(*column) else { return false };
        unsafe {
            let attnum = pg_sys::get_attnum(table.oid, name.as_ptr());
            attnum > 0 && !equality(attribute_type(table.oid, attnum).0).is_null()
        }
    });
    let checks = [(s.new, Some(s.up)), (s.old, Some(s.down)), (s.old, s.old_default)];
    plain_table
        && comparable
        && checks.iter().all(|(column, expr)| match expr {
            None => true,
            Some(expr) => crate::ddl::subxact::run_and_roll_back(|| unsafe { !analyse(&table.name, column, expr).is_null() }).unwrap_or(false),
        })
}

/// `expr` as the right-hand side of `UPDATE ONLY table SET column = (expr)`, analysed, coerced
/// and planned by PostgreSQL, in the current memory context; null when it is not one plain
/// expression (it does not parse alone as one, or has a subquery or a set-returning function).
/// Errors are raised (a function that no longer exists, say).
unsafe fn analyse(table: &str, column: &str, expr: &str) -> *mut pg_sys::Expr {
    unsafe {
        // One expression on its own first: the text is spliced into a statement below.
        if super::rewrite::referenced(expr, "expression").is_err() {
            return std::ptr::null_mut();
        }
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
            && !q.jointree.is_null()
            && (*q.jointree).quals.is_null()
            && (*q.rtable).length == 1
            && !q.targetList.is_null()
            && (*q.targetList).length == 1;
        if !plain {
            return std::ptr::null_mut();
        }
        let tle = pg_sys::list_nth(q.targetList, 0) as *mut pg_sys::TargetEntry;
        pg_sys::expression_planner((*tle).expr)
    }
}

/// Which of the trigger's expressions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Up = 0,
    Down = 1,
    OldDefault = 2,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Up => "up",
            Which::Down => "down",
            Which::OldDefault => "the old column's default",
        }
    }
}

/// A trigger's analysed trees on its table, each made when first needed, in a memory context of
/// the entry (deleted when an invalidation drops it: each statement runs copies of its own).
struct Cached {
    relid: Oid,
    context: pg_sys::MemoryContext,
    trees: [*mut pg_sys::Expr; 3],
}

thread_local! {
    /// By trigger OID. CREATE OR REPLACE TRIGGER keeps the OID but changes the arguments: it
    /// sends a relcache invalidation of the table, which drops the entry.
    static CACHED: RefCell<HashMap<Oid, Cached>> = RefCell::new(HashMap::new());
    static CALLBACKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Drops the entries of `relid` (all of them for InvalidOid).
fn forget(relid: Oid) {
    CACHED.with(|l| {
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
/// keeps it for the statement): expression states (made when first needed), an expression
/// context, the columns' type facts. Plain data: it lives in palloc'd memory.
#[repr(C)]
struct Running {
    tgoid: Oid,
    old: i16,
    new: i16,
    backfill_job: i64,
    states: [*mut pg_sys::ExprState; 3],
    econtext: *mut pg_sys::ExprContext,
    old_type: (i16, bool),
    new_type: (i16, bool),
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
        let r = &mut *run;
        let (row, slot) = if inserting { (td.tg_trigtuple, td.tg_trigslot) } else { (td.tg_newtuple, td.tg_newslot) };
        let unchanged = Datum::from(row as *mut std::ffi::c_void);
        if crate::backfill::marker::writing() == r.backfill_job {
            return unchanged;
        }
        let (old, new) = (r.old as i32, r.new as i32);
        let now_old = attribute(slot, old);
        let now_new = attribute(slot, new);
        let desc = (*td.tg_relation).rd_att;
        // (column to set, expression, the slot it reads)
        let assign = if inserting {
            match (now_old.is_none(), now_new.is_none()) {
                (true, true) if td_nargs(td) == 8 => {
                    // NEW.old := default; NEW.new := up (which reads the default)
                    let value = evaluate(state(r, td, Which::OldDefault), r.econtext, slot);
                    let with_default = replace(r, row, desc, old, value);
                    pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
                    // A slot of its own for `up` to read the row with the default (a rare
                    // path: made and dropped here, so that no tuple descriptor stays pinned).
                    let scratch = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsHeapTuple);
                    pg_sys::ExecStoreHeapTuple(with_default, scratch, false);
                    let up = evaluate(state(r, td, Which::Up), r.econtext, scratch);
                    let done = replace(r, with_default, desc, new, up);
                    pg_sys::ExecDropSingleTupleTableSlot(scratch);
                    pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
                    return Datum::from(done as *mut std::ffi::c_void);
                }
                (_, true) => Some((new, Which::Up)),
                (true, false) => Some((old, Which::Down)),
                (false, false) => None,
            }
        } else {
            let before = td.tg_trigslot;
            if changed(r.old_type, now_old, attribute(before, old)) {
                (!changed(r.new_type, now_new, attribute(before, new))).then_some((new, Which::Up))
            } else if changed(r.new_type, now_new, attribute(before, new)) {
                Some((old, Which::Down))
            } else if now_new.is_none() {
                Some((new, Which::Up))
            } else {
                None
            }
        };
        let Some((column, which)) = assign else { return unchanged };
        let value = evaluate(state(r, td, which), r.econtext, slot);
        let done = replace(r, row, desc, column, value);
        pg_sys::MemoryContextReset((*r.econtext).ecxt_per_tuple_memory);
        Datum::from(done as *mut std::ffi::c_void)
    }
}

fn td_nargs(td: &pg_sys::TriggerData) -> i16 {
    unsafe { (*td.tg_trigger).tgnargs }
}

/// The trigger's argument `i`.
unsafe fn arg(td: &pg_sys::TriggerData, i: usize) -> String {
    unsafe { CStr::from_ptr(*(*td.tg_trigger).tgargs.add(i)).to_string_lossy().into_owned() }
}

/// The statement's state of this trigger, made on its first row: the arguments checked, the
/// columns found, no expression analysed yet.
unsafe fn running(fcinfo: pg_sys::FunctionCallInfo, td: &pg_sys::TriggerData) -> *mut Running {
    unsafe {
        let flinfo = &mut *(*fcinfo).flinfo;
        let trigger = &*td.tg_trigger;
        let existing = flinfo.fn_extra as *mut Running;
        if !existing.is_null() && (*existing).tgoid == trigger.tgoid {
            return existing;
        }
        let name = CStr::from_ptr(trigger.tgname).to_string_lossy();
        if !(7..=8).contains(&trigger.tgnargs) {
            refuse(format!("trigger \"{name}\" calls migrate.sync_row() with {} arguments", trigger.tgnargs));
        }
        let Some(backfill_job) = arg(td, 1).parse::<i64>().ok().filter(|j| *j > 0) else {
            refuse(format!("trigger \"{name}\" calls migrate.sync_row() with backfill job {:?}, not a job number", arg(td, 1)));
        };
        let relid = (*td.tg_relation).rd_id;
        let (old, new) = (column_number(relid, &arg(td, 2)), column_number(relid, &arg(td, 3)));
        let desc = (*td.tg_relation).rd_att;
        let previous = pg_sys::MemoryContextSwitchTo(flinfo.fn_mcxt);
        let run = pg_sys::palloc0(std::mem::size_of::<Running>()) as *mut Running;
        run.write(Running {
            tgoid: trigger.tgoid,
            old,
            new,
            backfill_job,
            states: [std::ptr::null_mut(); 3],
            econtext: pg_sys::CreateStandaloneExprContext(),
            old_type: length_and_byval(attribute_type(relid, old).0),
            new_type: length_and_byval(attribute_type(relid, new).0),
            values: pg_sys::palloc0(std::mem::size_of::<Datum>() * (*desc).natts as usize) as *mut Datum,
            nulls: pg_sys::palloc0((*desc).natts as usize) as *mut bool,
            replace: pg_sys::palloc0((*desc).natts as usize) as *mut bool,
        });
        pg_sys::MemoryContextSwitchTo(previous);
        flinfo.fn_extra = run as *mut std::ffi::c_void;
        run
    }
}

/// The statement's state of expression `which`: the cached tree (analysed now if there is none),
/// copied into the statement's memory at once (whatever ExecInitExpr looks up may process an
/// invalidation that deletes the cached tree), then made ready to run.
unsafe fn state(r: &mut Running, td: &pg_sys::TriggerData, which: Which) -> *mut pg_sys::ExprState {
    unsafe {
        let i = which as usize;
        if r.states[i].is_null() {
            let tree = tree(td, which);
            let fn_mcxt = pg_sys::GetMemoryChunkContext(r as *mut Running as *mut std::ffi::c_void);
            let previous = pg_sys::MemoryContextSwitchTo(fn_mcxt);
            let copy = pg_sys::copyObjectImpl(tree as *const std::ffi::c_void) as *mut pg_sys::Expr;
            r.states[i] = pg_sys::ExecInitExpr(copy, std::ptr::null_mut());
            pg_sys::MemoryContextSwitchTo(previous);
        }
        r.states[i]
    }
}

/// The trigger's tree for `which`, from the cache or analysed now (the analysis' garbage stays in
/// the caller's short-lived memory; only the finished tree is kept). An expression that does not
/// analyse is an error that names the trigger, the table and the expression.
unsafe fn tree(td: &pg_sys::TriggerData, which: Which) -> *mut pg_sys::Expr {
    unsafe {
        let trigger = &*td.tg_trigger;
        let cached = CACHED.with(|c| c.borrow().get(&trigger.tgoid).map(|e| e.trees[which as usize]));
        if let Some(tree) = cached.filter(|t| !t.is_null()) {
            return tree;
        }
        if !CALLBACKS.with(|c| c.replace(true)) {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), Datum::from(0usize));
            for cache in [pg_sys::SysCacheIdentifier::PROCOID, pg_sys::SysCacheIdentifier::TYPEOID, pg_sys::SysCacheIdentifier::OPEROID] {
                pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(syscache_changed), Datum::from(0usize));
            }
        }
        let rel = td.tg_relation;
        let relid = (*rel).rd_id;
        let table = format!(
            "{}.{}",
            quote(&CStr::from_ptr(pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace)).to_string_lossy()),
            quote(&CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy())
        );
        let (column, expr) = match which {
            Which::Up => (arg(td, 3), arg(td, 5)),
            Which::Down => (arg(td, 2), arg(td, 6)),
            Which::OldDefault => (arg(td, 2), arg(td, 7)),
        };
        let guc = GucScope::new();
        guc.set("search_path", &arg(td, 4));
        let name = CStr::from_ptr(trigger.tgname).to_string_lossy().into_owned();
        let analysed = PgTryBuilder::new(|| analyse(&table, &column, &expr))
            .catch_others(|caught| {
                let (code, message) = match &caught {
                    pgrx::pg_sys::panic::CaughtError::PostgresError(e)
                    | pgrx::pg_sys::panic::CaughtError::ErrorReport(e)
                    | pgrx::pg_sys::panic::CaughtError::RustPanic { ereport: e, .. } => (e.sql_error_code(), e.message().to_string()),
                };
                crate::error::Failure::new(code, format!("sync trigger \"{name}\" of {table} cannot run its {} expression: {message}", which.name()))
                    .detail(format!("The expression: {expr}"))
                    .hint("Make the expression work again (create what it uses), or abort the change with SELECT migrate.abort(change).")
                    .raise()
            })
            .execute();
        drop(guc);
        if analysed.is_null() {
            refuse(format!("sync trigger \"{name}\" of {table}: its {} expression is not one plain expression: {expr}", which.name()));
        }
        let kept = CACHED.with(|c| {
            let mut c = c.borrow_mut();
            let entry = c.entry(trigger.tgoid).or_insert_with(|| Cached {
                relid,
                context: pg_sys::AllocSetContextCreateExtended(
                    pg_sys::CacheMemoryContext,
                    c"pg_migrate sync trigger".as_ptr(),
                    pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
                ),
                trees: [std::ptr::null_mut(); 3],
            });
            let previous = pg_sys::MemoryContextSwitchTo(entry.context);
            let kept = pg_sys::copyObjectImpl(analysed as *const std::ffi::c_void) as *mut pg_sys::Expr;
            pg_sys::MemoryContextSwitchTo(previous);
            entry.trees[which as usize] = kept;
            kept
        });
        kept
    }
}

unsafe fn column_number(relid: Oid, name: &str) -> i16 {
    let text = CString::new(name).expect("column names have no NUL");
    let n = unsafe { pg_sys::get_attnum(relid, text.as_ptr()) };
    if n <= 0 {
        let table = unsafe { CStr::from_ptr(pg_sys::get_rel_name(relid)).to_string_lossy().into_owned() };
        refuse(format!("column {} of the sync trigger's table {} does not exist", quote(name), quote(&table)));
    }
    n
}

/// The column's type and collation.
unsafe fn attribute_type(relid: Oid, attnum: i16) -> (Oid, Oid) {
    let (mut type_oid, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    unsafe { pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_oid, &mut typmod, &mut collation) };
    (type_oid, collation)
}

/// The type's default `=` function (null when it has none: box, point, json…).
unsafe fn equality(type_oid: Oid) -> *mut pg_sys::FmgrInfo {
    unsafe {
        let entry = pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_EQ_OPR_FINFO as i32);
        if (*entry).eq_opr_finfo.fn_oid == pg_sys::InvalidOid {
            return std::ptr::null_mut();
        }
        &mut (*entry).eq_opr_finfo
    }
}

fn length_and_byval(type_oid: Oid) -> (i16, bool) {
    let (mut len, mut byval) = (0i16, false);
    unsafe { pg_sys::get_typlenbyval(type_oid, &mut len, &mut byval) };
    (len, byval)
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

/// Whether a column's value changed: NULL against a value, or other bytes (what
/// datum_image_eq compares: a citext in another case is a change, though `=` says equal).
unsafe fn changed((len, byval): (i16, bool), a: Option<Datum>, b: Option<Datum>) -> bool {
    let (a, b) = match (a, b) {
        (None, None) => return false,
        (Some(a), Some(b)) => (a, b),
        _ => return true,
    };
    unsafe {
        if byval {
            a != b
        } else if len == -1 {
            let x = pg_sys::pg_detoast_datum_packed(a.cast_mut_ptr());
            let y = pg_sys::pg_detoast_datum_packed(b.cast_mut_ptr());
            let (n, m) = (pgrx::varlena::varsize_any_exhdr(x), pgrx::varlena::varsize_any_exhdr(y));
            n != m || std::slice::from_raw_parts(pgrx::varlena::vardata_any(x) as *const u8, n) != std::slice::from_raw_parts(pgrx::varlena::vardata_any(y) as *const u8, m)
        } else if len == -2 {
            CStr::from_ptr(a.cast_mut_ptr()) != CStr::from_ptr(b.cast_mut_ptr())
        } else {
            let n = len as usize;
            std::slice::from_raw_parts(a.cast_mut_ptr::<u8>(), n) != std::slice::from_raw_parts(b.cast_mut_ptr::<u8>(), n)
        }
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
