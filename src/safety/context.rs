//! What lint knows while it walks a script: which statement it is at, what earlier statements of
//! the same script created (a table created by the script is new and empty, so locking it or
//! rewriting it harms nobody), which constraints they added, and the findings so far.

use super::nodes::{self, cast, cstr, Name};
use super::rules::Rule;
use crate::ddl::script::{Lines, Statement};
use pgrx::pg_sys::{self, NodeTag};

/// One lint finding: a rule broken at a place in the script.
#[derive(Debug, Clone)]
pub struct Finding {
    pub statement: usize,
    pub line: usize,
    pub rule: &'static Rule,
    pub message: String,
}

/// Names of objects the script created, looked up by name (a script may create thousands).
#[derive(Default)]
struct Names(std::collections::HashMap<String, Vec<Option<String>>>);

impl Names {
    fn add(&mut self, name: Option<Name>) {
        if let Some(n) = name {
            self.0.entry(n.name).or_default().push(n.schema);
        }
    }

    fn contains(&self, name: &Name) -> bool {
        self.0.get(&name.name).is_some_and(|schemas| {
            schemas.iter().any(|schema| Name { schema: schema.clone(), name: name.name.clone() }.same(name))
        })
    }
}

/// A `CHECK (column IS NOT NULL)` the script added, which makes a later SET NOT NULL cheap once
/// validated.
struct NotNullCheck {
    table: Name,
    column: String,
    constraint: Option<String>,
    validated: bool,
}

pub struct Script<'a> {
    sql: &'a str,
    lines: Lines<'a>,
    statement: usize,
    line: usize,
    findings: Vec<Finding>,
    relations: Names,
    indexes: Names,
    schemas: Vec<String>,
    types: Names,
    /// Constraints added NOT VALID: (table, constraint name).
    not_valid: Vec<(Name, String)>,
    not_null_checks: Vec<NotNullCheck>,
}

impl<'a> Script<'a> {
    pub fn new(sql: &'a str) -> Self {
        Script {
            sql,
            lines: Lines::new(sql),
            statement: 0,
            line: 1,
            findings: Vec::new(),
            relations: Names::default(),
            indexes: Names::default(),
            schemas: Vec::new(),
            types: Names::default(),
            not_valid: Vec::new(),
            not_null_checks: Vec::new(),
        }
    }

    pub fn enter(&mut self, statement: &Statement) {
        self.statement = statement.number;
        self.line = statement.line;
    }

    /// Records a finding at the current statement. `location` is a byte offset into the script
    /// from the parse tree (-1 when unknown: the statement's first line is used).
    pub fn report(&mut self, rule: &'static Rule, location: i32, subject: impl std::fmt::Display) {
        self.report_at(self.statement, self.line, rule, location, subject);
    }

    /// Records a finding at an earlier statement (script-wide rules).
    pub fn report_at(
        &mut self,
        statement: usize,
        line: usize,
        rule: &'static Rule,
        location: i32,
        subject: impl std::fmt::Display,
    ) {
        // A node's location is more precise than the statement's first line, when it is set:
        // nodes built without one carry -1 or 0, which would point before the statement.
        let line = match usize::try_from(location) {
            Ok(offset) if offset < self.sql.len() && self.sql.is_char_boundary(offset) => {
                self.lines.line_col(offset).0.max(line)
            }
            _ => line,
        };
        self.findings.push(Finding { statement, line, rule, message: format!("{subject}: {}", rule.why) });
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    /// Whether a relation of that name was created earlier in the script.
    pub fn is_new(&self, name: &Name) -> bool {
        self.relations.contains(name)
    }

    /// The relation a RangeVar names, if it existed before the script (i.e. the script did not
    /// create it). Relations the script did not create are taken as existing, whether or not the
    /// catalog of this database knows them: lint often runs against another database.
    pub unsafe fn existing(&self, rv: *const pg_sys::RangeVar) -> Option<Name> {
        unsafe { nodes::range_var(rv) }.filter(|n| !self.is_new(n))
    }

    pub fn is_new_index(&self, name: &Name) -> bool {
        self.indexes.contains(name)
    }

    pub fn is_new_schema(&self, name: &str) -> bool {
        self.schemas.iter().any(|s| s == name)
    }

    pub fn is_new_type(&self, name: &Name) -> bool {
        self.types.contains(name)
    }

    pub fn add_not_valid(&mut self, table: &Name, constraint: String) {
        self.not_valid.push((table.clone(), constraint));
    }

    pub fn was_added_not_valid(&self, table: &Name, constraint: &str) -> bool {
        self.not_valid.iter().any(|(t, c)| t.same(table) && c == constraint)
    }

    pub fn add_not_null_check(&mut self, table: &Name, column: String, constraint: Option<String>, validated: bool) {
        self.not_null_checks.push(NotNullCheck { table: table.clone(), column, constraint, validated });
    }

    pub fn validate_constraint(&mut self, table: &Name, constraint: &str) {
        for c in &mut self.not_null_checks {
            if c.table.same(table) && c.constraint.as_deref() == Some(constraint) {
                c.validated = true;
            }
        }
    }

    pub fn has_validated_not_null_check(&self, table: &Name, column: &str) -> bool {
        self.not_null_checks.iter().any(|c| c.validated && c.table.same(table) && c.column == column)
    }

    /// Remembers the objects a statement creates, after its own checks ran.
    pub unsafe fn remember(&mut self, node: *mut pg_sys::Node) {
        unsafe {
            match nodes::tag(node) {
                NodeTag::T_CreateStmt => {
                    let s = &*(node as *const pg_sys::CreateStmt);
                    self.relations.add(nodes::range_var(s.relation));
                }
                NodeTag::T_CreateTableAsStmt => {
                    let s = &*(node as *const pg_sys::CreateTableAsStmt);
                    if !s.into.is_null() {
                        self.relations.add(nodes::range_var((*s.into).rel));
                    }
                }
                NodeTag::T_ViewStmt => {
                    let s = &*(node as *const pg_sys::ViewStmt);
                    self.relations.add(nodes::range_var(s.view));
                }
                NodeTag::T_CreateSeqStmt => {
                    let s = &*(node as *const pg_sys::CreateSeqStmt);
                    self.relations.add(nodes::range_var(s.sequence));
                }
                NodeTag::T_IndexStmt => {
                    let s = &*(node as *const pg_sys::IndexStmt);
                    if let (Some(name), Some(table)) = (cstr(s.idxname), nodes::range_var(s.relation)) {
                        self.indexes.add(Some(Name { schema: table.schema, name }));
                    }
                }
                NodeTag::T_CreateSchemaStmt => {
                    let s = &*(node as *const pg_sys::CreateSchemaStmt);
                    self.schemas.extend(cstr(s.schemaname));
                    for element in nodes::nodes(s.schemaElts) {
                        self.remember(element);
                    }
                }
                NodeTag::T_CreateEnumStmt => {
                    let s = &*(node as *const pg_sys::CreateEnumStmt);
                    self.types.add(Name::from_parts(&nodes::names(s.typeName)));
                }
                NodeTag::T_CreateDomainStmt => {
                    let s = &*(node as *const pg_sys::CreateDomainStmt);
                    self.types.add(Name::from_parts(&nodes::names(s.domainname)));
                }
                NodeTag::T_CompositeTypeStmt => {
                    let s = &*(node as *const pg_sys::CompositeTypeStmt);
                    self.types.add(nodes::range_var(s.typevar));
                }
                NodeTag::T_RenameStmt => {
                    // A new relation keeps being new under its new name.
                    let s = &*(node as *const pg_sys::RenameStmt);
                    let renames_relation = matches!(
                        s.renameType,
                        pg_sys::ObjectType::OBJECT_TABLE
                            | pg_sys::ObjectType::OBJECT_VIEW
                            | pg_sys::ObjectType::OBJECT_MATVIEW
                            | pg_sys::ObjectType::OBJECT_SEQUENCE
                            | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE
                    );
                    if let (true, Some(old), Some(new)) = (renames_relation, nodes::range_var(s.relation), cstr(s.newname)) {
                        if self.is_new(&old) {
                            self.relations.add(Some(Name { schema: old.schema, name: new }));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The relation an `ALTER TABLE` changes, if it is a table that existed before the script.
pub unsafe fn altered_existing_table<'n>(
    script: &Script,
    node: *mut pg_sys::Node,
) -> Option<(&'n pg_sys::AlterTableStmt, Name)> {
    unsafe {
        let stmt = cast::<pg_sys::AlterTableStmt>(node, NodeTag::T_AlterTableStmt)?;
        if !matches!(stmt.objtype, pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE) {
            return None;
        }
        let table = script.existing(stmt.relation)?;
        Some((stmt, table))
    }
}
