//! Groups of an organization's members ("Engineering", "Contractors"): who is in each, the
//! exception a group may hold from the organization's backup-code setting, and the groups a
//! help-desk member is scoped to (they assist those groups' members alone).
//!
//! The gate decides with Casbin's grouping: each membership is also a rule
//! `g, member:<id>, group:<id>, org:<id>` ([`rules::write_membership`]), a group's exception
//! is rules for the subject `group:<id>`, and a scope is rules `member:<id>` may `assist`
//! `group:<id>`, which the grouping matches against the member assisted. Every change writes
//! its rows, its rules and its audit event in one transaction, taking turns on the
//! organization's row, so that a limit (one membership per member and group, the most groups
//! an organization may have, a group in use by a scope kept) holds however many requests
//! arrive at once.
//!
//! Members are added in bulk from a CSV of email addresses: [`preview_add`] says what each
//! row would do, and [`add_from_csv`] adds them all, or nothing when any row is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{AuditAction, GroupDetails, Outcome},
    authz::{
        Action, Authz, AuthzError, PolicyError, group_subject, member_subject, org_domain,
        rules::{self, Rule},
    },
    command::{Attempt, Command},
    db::take_turns_on_organization,
    entity::{audit_event, group_member, helpdesk_scope, member_group, user_account},
    identity::{Email, Member, Role},
    input::{FieldError, single_line},
};

/// Longest group name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most groups one organization may have.
pub const MAX_GROUPS: u64 = 200;
/// The most rows one CSV may hold (a header row aside): what fits in a request the server
/// accepts (64 KiB, form-encoded), with room to spare.
pub const MAX_CSV_ROWS: usize = 1_000;
/// Longest reason accepted for a group's exception.
const MAX_REASON_CHARS: usize = 500;

/// One group as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: i32,
    pub name: String,
    /// How many members it has.
    pub members: u64,
    /// Its exception from the backup-code setting: codes allowed (true) or not (false) for
    /// its members, whatever the setting; none when it follows the setting.
    pub exception: Option<bool>,
    pub exception_reason: Option<String>,
    /// The help-desk members scoped to it, by email.
    pub scoped_help_desk: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A help-desk member and the groups they assist (none: every member the gate lets them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub member: Member,
    pub groups: Vec<i32>,
}

/// What one row of a CSV of emails would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowOutcome {
    /// The member is added.
    Add,
    /// The member is in the group already: nothing to do.
    AlreadyIn,
    /// An earlier row names the same member.
    Repeated,
    /// No member of the organization has this address.
    Unknown,
    /// Not an email address: why.
    Invalid(String),
}

impl RowOutcome {
    /// Whether this row stops the whole file from being added.
    pub fn is_problem(&self) -> bool {
        matches!(self, Self::Unknown | Self::Invalid(_))
    }

    /// The outcome in words, for the preview.
    pub fn words(&self) -> String {
        match self {
            Self::Add => "Will be added.".to_owned(),
            Self::AlreadyIn => "Already in the group.".to_owned(),
            Self::Repeated => "Listed on an earlier line.".to_owned(),
            Self::Unknown => "No member of your organization has this address.".to_owned(),
            Self::Invalid(why) => why.clone(),
        }
    }
}

/// One row of a CSV of emails, as read, and what it would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRow {
    /// The row's line in the file, from 1.
    pub line: u64,
    /// The address as written (trimmed).
    pub email: String,
    pub outcome: RowOutcome,
}

/// What adding a CSV of emails to a group would do, row by row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvPreview {
    pub group: String,
    pub rows: Vec<CsvRow>,
}

impl CsvPreview {
    /// How many members would be added.
    pub fn adds(&self) -> usize {
        self.rows
            .iter()
            .filter(|row| row.outcome == RowOutcome::Add)
            .count()
    }

    /// The rows that stop the file from being added, in file order.
    pub fn problems(&self) -> impl Iterator<Item = &CsvRow> {
        self.rows.iter().filter(|row| row.outcome.is_problem())
    }
}

/// Why a change to groups was not made.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error("That group no longer exists.")]
    UnknownGroup,
    #[error("There is no member with that email address in your organization.")]
    UnknownMember,
    #[error(
        "Nothing was added: {problems} of the file's rows need fixing first (the preview lists them)."
    )]
    FileHasProblems { problems: usize },
    #[error("Help-desk members are scoped to this group: change their groups first ({0}).")]
    InUseByScope(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for GroupError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// The organization's groups, by name, for whoever sees its members.
pub async fn list(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<Vec<Group>, GroupError> {
    authz
        .require(viewer, viewer.org_id, Action::ListMembers)
        .await?;
    let rows = member_group::Entity::find()
        .filter(member_group::Column::OrgId.eq(viewer.org_id))
        .order_by_asc(member_group::Column::NameKey)
        .all(db)
        .await?;
    let mut counts: HashMap<i32, u64> = HashMap::new();
    for membership in group_member::Entity::find()
        .filter(group_member::Column::OrgId.eq(viewer.org_id))
        .all(db)
        .await?
    {
        *counts.entry(membership.group_id).or_default() += 1;
    }
    let mut scoped: HashMap<i32, Vec<String>> = HashMap::new();
    for scope in scopes_in(db, viewer.org_id).await? {
        for group in scope.groups {
            scoped
                .entry(group)
                .or_default()
                .push(scope.member.email.clone());
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| Group {
            members: counts.get(&row.id).copied().unwrap_or_default(),
            exception: row.exception.as_deref().map(|effect| effect == "allow"),
            exception_reason: row.exception_reason,
            scoped_help_desk: scoped.remove(&row.id).unwrap_or_default(),
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        })
        .collect())
}

/// The organization's groups by id and name, in name order, for whoever sees its members
/// (what a filter offers; [`list`] counts members too).
pub async fn names(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<Vec<(i32, String)>, GroupError> {
    authz
        .require(viewer, viewer.org_id, Action::ListMembers)
        .await?;
    Ok(member_group::Entity::find()
        .filter(member_group::Column::OrgId.eq(viewer.org_id))
        .order_by_asc(member_group::Column::NameKey)
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.id, row.name))
        .collect())
}

/// The help-desk members of the organization and the groups each assists.
pub async fn scopes(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<Vec<Scope>, GroupError> {
    authz
        .require(viewer, viewer.org_id, Action::ListMembers)
        .await?;
    Ok(scopes_in(db, viewer.org_id).await?)
}

async fn scopes_in(db: &impl ConnectionTrait, org_id: i32) -> Result<Vec<Scope>, DbErr> {
    let help_desk = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(user_account::Column::Role.eq(Role::Helpdesk.as_str()))
        .order_by_asc(user_account::Column::Email)
        .all(db)
        .await?;
    let mut groups: HashMap<i32, Vec<i32>> = HashMap::new();
    for row in helpdesk_scope::Entity::find()
        .filter(helpdesk_scope::Column::OrgId.eq(org_id))
        .order_by_asc(helpdesk_scope::Column::GroupId)
        .all(db)
        .await?
    {
        groups.entry(row.user_id).or_default().push(row.group_id);
    }
    help_desk
        .into_iter()
        .map(|row| {
            let groups = groups.remove(&row.id).unwrap_or_default();
            Ok(Scope {
                member: Member::try_from(row)?,
                groups,
            })
        })
        .collect()
}

/// The name as stored and as compared (trimmed; lower-cased), or why it will not do.
fn name_of(input: &str) -> Result<(String, String), FieldError> {
    let name = single_line("name", input, MAX_NAME_CHARS)?;
    if name.is_empty() {
        return Err(FieldError::new("name", "Give the group a name."));
    }
    // Lower-casing may lengthen a name ("İ" becomes two characters): the key must fit too.
    let key = name.to_lowercase();
    if key.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("Use at most {MAX_NAME_CHARS} characters."),
        ));
    }
    Ok((name.to_owned(), key))
}

fn details(details: &GroupDetails) -> Result<serde_json::Value, DbErr> {
    serde_json::to_value(details).map_err(|e| DbErr::Custom(format!("group details: {e}")))
}

/// Creates a group named `name` (unique in the organization, case aside; at most
/// [`MAX_GROUPS`] groups).
pub async fn create(cmd: &Command<'_>, name: &str) -> Result<Group, GroupError> {
    // A refusal records the name only when it is one (never arbitrary text).
    let tried = Attempt {
        details: serde_json::json!({ "name": name_of(name).ok().map(|(name, _)| name) }),
        ..Attempt::of(AuditAction::GroupCreated)
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let (name, name_key) = name_of(name)?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    let of_org = member_group::Entity::find().filter(member_group::Column::OrgId.eq(org_id));
    if of_org
        .clone()
        .filter(member_group::Column::NameKey.eq(&name_key))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(taken().into());
    }
    if of_org.count(&txn).await? >= MAX_GROUPS {
        return Err(FieldError::new(
            "name",
            format!("An organization has at most {MAX_GROUPS} groups. Delete one first."),
        )
        .into());
    }
    let row = member_group::ActiveModel {
        org_id: Set(org_id),
        name: Set(name.clone()),
        name_key: Set(name_key),
        exception: Set(None),
        exception_reason: Set(None),
        created_by_id: Set(Some(cmd.actor.id)),
        created_by: Set(Some(cmd.actor.email.clone())),
        created_at: Set(cmd.now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => GroupError::Invalid(taken()),
        _ => GroupError::Database(error),
    })?;
    let recorded = GroupDetails {
        group: Some(row.id),
        name: name.clone(),
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(AuditAction::GroupCreated, None, details(&recorded)?),
    )
    .await?;
    txn.commit().await?;
    Ok(Group {
        id: row.id,
        name,
        members: 0,
        exception: None,
        exception_reason: None,
        scoped_help_desk: Vec::new(),
        created_at: row.created_at,
    })
}

fn taken() -> FieldError {
    FieldError::new(
        "name",
        "Your organization has a group with this name already.",
    )
}

/// The group `group_id` of the organization, read in `txn`.
async fn group_in(
    txn: &impl ConnectionTrait,
    org_id: i32,
    group_id: i32,
) -> Result<member_group::Model, GroupError> {
    // Another organization's group reads as no group at all.
    member_group::Entity::find_by_id(group_id)
        .filter(member_group::Column::OrgId.eq(org_id))
        .one(txn)
        .await?
        .ok_or(GroupError::UnknownGroup)
}

/// Deletes a group: its members leave it (they stay in the organization) and its exception
/// ends. Refused while a help-desk member is scoped to it, since they would then assist
/// everyone ([`GroupError::InUseByScope`]).
pub async fn delete(cmd: &Command<'_>, group_id: i32) -> Result<(), GroupError> {
    let tried = Attempt {
        details: serde_json::json!({ "group": group_id }),
        ..Attempt::of(AuditAction::GroupDeleted)
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    let group = group_in(&txn, org_id, group_id).await?;
    let scoped: Vec<i32> = helpdesk_scope::Entity::find()
        .filter(helpdesk_scope::Column::GroupId.eq(group.id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|row| row.user_id)
        .collect();
    if !scoped.is_empty() {
        let emails: Vec<String> = user_account::Entity::find()
            .filter(user_account::Column::Id.is_in(scoped))
            .order_by_asc(user_account::Column::Email)
            .all(&txn)
            .await?
            .into_iter()
            .map(|row| row.email)
            .collect();
        return Err(GroupError::InUseByScope(emails.join(", ")));
    }
    group_member::Entity::delete_many()
        .filter(group_member::Column::GroupId.eq(group.id))
        .exec(&txn)
        .await?;
    member_group::Entity::delete_by_id(group.id)
        .exec(&txn)
        .await?;
    rules::forget_group(&txn, org_id, group.id).await?;
    let recorded = GroupDetails {
        group: Some(group.id),
        name: group.name,
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(AuditAction::GroupDeleted, None, details(&recorded)?),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The addresses of a CSV of emails, each with its line: the first cell of each row; a first
/// row reading `email` is a header; blank rows are skipped. Read by the `csv` crate (RFC 4180
/// quoting, any line ending).
pub fn read_csv(text: &str) -> Result<Vec<(u64, String)>, FieldError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut addresses = Vec::new();
    let mut lines = LineCounter::default();
    for record in reader.records() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, csv::Position::line);
            FieldError::new("csv", format!("Line {line} is not valid CSV."))
        })?;
        let line = record.position().map_or(0, |at| {
            lines.line_at(text, usize::try_from(at.byte()).unwrap_or(0))
        });
        let cell = record.get(0).unwrap_or_default();
        if cell.is_empty() && record.iter().all(str::is_empty) {
            continue;
        }
        if addresses.is_empty() && cell.eq_ignore_ascii_case("email") {
            continue;
        }
        if addresses.len() == MAX_CSV_ROWS {
            return Err(FieldError::new(
                "csv",
                format!("A file may list at most {MAX_CSV_ROWS} addresses: split it."),
            ));
        }
        addresses.push((line, cell.to_owned()));
    }
    if addresses.is_empty() {
        return Err(FieldError::new(
            "csv",
            "The file lists no email addresses: one per line, in the first column.",
        ));
    }
    Ok(addresses)
}

/// Line numbers of records, counted on from the last record's (one pass over the file).
#[derive(Default)]
struct LineCounter {
    /// The byte up to which line breaks are counted, and how many there were.
    counted_to: usize,
    breaks: usize,
}

impl LineCounter {
    /// The line, from 1, of the record starting at byte `at` of `text` (records come in
    /// order). The `csv` crate skips blank lines and may place a record's start before them:
    /// those line breaks are counted too.
    fn line_at(&mut self, text: &str, at: usize) -> u64 {
        let bytes = text.as_bytes();
        let at = at.clamp(self.counted_to, bytes.len());
        let between = bytes.get(self.counted_to..at).unwrap_or_default();
        self.breaks += between.iter().filter(|b| **b == b'\n').count();
        self.counted_to = at;
        let blank = bytes
            .get(at..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .filter(|b| **b == b'\n')
            .count();
        u64::try_from(1 + self.breaks + blank).unwrap_or(u64::MAX)
    }
}

/// What each row of `csv` does for group `group_id`, read in `db`; and the ids to add.
async fn plan(
    db: &impl ConnectionTrait,
    org_id: i32,
    group: &member_group::Model,
    csv: &str,
) -> Result<(CsvPreview, Vec<i32>), GroupError> {
    let addresses = read_csv(csv)?;
    let parsed: Vec<(u64, String, Result<Email, FieldError>)> = addresses
        .into_iter()
        .map(|(line, written)| {
            let email = Email::parse(&written);
            (line, written, email)
        })
        .collect();
    let wanted: Vec<String> = parsed
        .iter()
        .filter_map(|(_, _, email)| email.as_ref().ok())
        .map(|email| email.as_str().to_owned())
        .collect();
    // One read for the file's members, in slices the databases' parameter limits allow.
    let mut members: HashMap<String, i32> = HashMap::new();
    for slice in wanted.chunks(1000) {
        for row in user_account::Entity::find()
            .filter(user_account::Column::OrgId.eq(org_id))
            .filter(user_account::Column::Email.is_in(slice.iter().cloned()))
            .all(db)
            .await?
        {
            members.insert(row.email, row.id);
        }
    }
    let already: HashSet<i32> = group_member::Entity::find()
        .filter(group_member::Column::GroupId.eq(group.id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.user_id)
        .collect();
    let mut seen = HashSet::new();
    let mut adds = Vec::new();
    let rows = parsed
        .into_iter()
        .map(|(line, written, email)| {
            let outcome = match email {
                Err(why) => RowOutcome::Invalid(why.message),
                Ok(email) => match members.get(email.as_str()) {
                    None => RowOutcome::Unknown,
                    Some(id) if !seen.insert(*id) => RowOutcome::Repeated,
                    Some(id) if already.contains(id) => RowOutcome::AlreadyIn,
                    Some(id) => {
                        adds.push(*id);
                        RowOutcome::Add
                    }
                },
            };
            CsvRow {
                line,
                email: written,
                outcome,
            }
        })
        .collect();
    Ok((
        CsvPreview {
            group: group.name.clone(),
            rows,
        },
        adds,
    ))
}

/// What adding the members listed in `csv` to group `group_id` would do, row by row, without
/// adding anyone.
pub async fn preview_add(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    group_id: i32,
    csv: &str,
) -> Result<CsvPreview, GroupError> {
    authz
        .require(actor, actor.org_id, Action::ManageGroups)
        .await?;
    let group = group_in(db, actor.org_id, group_id).await?;
    Ok(plan(db, actor.org_id, &group, csv).await?.0)
}

/// Adds every member listed in `csv` to group `group_id`, or nobody when any row is wrong
/// (not an address, or no member of the organization: [`GroupError::FileHasProblems`]).
/// Members already in the group and repeated rows are skipped. Returns what each row did.
pub async fn add_from_csv(
    cmd: &Command<'_>,
    group_id: i32,
    csv: &str,
) -> Result<CsvPreview, GroupError> {
    let tried = Attempt {
        details: serde_json::json!({ "group": group_id }),
        ..Attempt::of(AuditAction::GroupMembersAdded)
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    let group = group_in(&txn, org_id, group_id).await?;
    let (preview, adds) = plan(&txn, org_id, &group, csv).await?;
    let problems = preview.problems().count();
    if problems > 0 {
        return Err(GroupError::FileHasProblems { problems });
    }
    if adds.is_empty() {
        return Ok(preview);
    }
    for slice in adds.chunks(1000) {
        group_member::Entity::insert_many(slice.iter().map(|member| group_member::ActiveModel {
            org_id: Set(org_id),
            group_id: Set(group.id),
            user_id: Set(*member),
            added_at: Set(cmd.now),
            ..Default::default()
        }))
        .exec(&txn)
        .await?;
        rules::write_membership(&txn, org_id, group.id, slice).await?;
    }
    let recorded = GroupDetails {
        group: Some(group.id),
        name: group.name,
        members: adds,
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(AuditAction::GroupMembersAdded, None, details(&recorded)?),
    )
    .await?;
    txn.commit().await?;
    Ok(preview)
}

/// Takes member `member_id` out of group `group_id` (they stay in the organization).
pub async fn remove_member(
    cmd: &Command<'_>,
    group_id: i32,
    member_id: i32,
) -> Result<(), GroupError> {
    let org_id = cmd.actor.org_id;
    // Another organization's member reads as no member at all.
    let target = crate::identity::member(cmd.db, member_id)
        .await?
        .filter(|member| member.org_id == org_id)
        .ok_or(GroupError::UnknownMember)?;
    let tried = Attempt {
        action: AuditAction::GroupMemberRemoved,
        target: Some(&target),
        details: serde_json::json!({ "group": group_id }),
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    let group = group_in(&txn, org_id, group_id).await?;
    let removed = group_member::Entity::delete_many()
        .filter(group_member::Column::GroupId.eq(group.id))
        .filter(group_member::Column::UserId.eq(target.id))
        .exec(&txn)
        .await?;
    if removed.rows_affected == 0 {
        // Not in it (any more): nothing to record.
        return Ok(());
    }
    rules::forget_membership(&txn, org_id, group.id, target.id).await?;
    let recorded = GroupDetails {
        group: Some(group.id),
        name: group.name,
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::GroupMemberRemoved,
            Some(&target),
            details(&recorded)?,
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Gives group `group_id` an exception from the organization's backup-code setting: codes
/// `allowed` for its members or not, whatever the setting, for `reason`; or, with `None`,
/// none (it follows the setting). A member's own exception still decides for them.
pub async fn set_exception(
    cmd: &Command<'_>,
    group_id: i32,
    allowed: Option<bool>,
    reason: &str,
) -> Result<Group, GroupError> {
    let tried = Attempt {
        details: serde_json::json!({ "group": group_id, "allowed": allowed }),
        ..Attempt::of(AuditAction::GroupExceptionSet)
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let reason = single_line("reason", reason, MAX_REASON_CHARS)?;
    if allowed.is_some() && reason.is_empty() {
        return Err(FieldError::new("reason", "Say why this group is an exception.").into());
    }
    let effect = allowed.map(|allowed| if allowed { "allow" } else { "deny" });
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    let group = group_in(&txn, org_id, group_id).await?;
    let reason = effect.map(|_| reason.to_owned());
    let mut row: member_group::ActiveModel = group.clone().into();
    row.exception = Set(effect.map(str::to_owned));
    row.exception_reason = Set(reason.clone());
    let row = row.update(&txn).await?;
    rules::write_group_exception(&txn, org_id, group.id, allowed).await?;
    let recorded = GroupDetails {
        group: Some(group.id),
        name: group.name.clone(),
        backup_codes: effect.map(str::to_owned),
        reason,
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(AuditAction::GroupExceptionSet, None, details(&recorded)?),
    )
    .await?;
    txn.commit().await?;
    let members = group_member::Entity::find()
        .filter(group_member::Column::GroupId.eq(group.id))
        .count(cmd.db)
        .await?;
    Ok(Group {
        id: row.id,
        name: row.name,
        members,
        exception: allowed,
        exception_reason: row.exception_reason,
        scoped_help_desk: Vec::new(),
        created_at: row.created_at,
    })
}

/// Scopes help-desk member `member_id` to `groups`: they assist those groups' members alone
/// (issue them recovery codes, end their locks). No groups: they assist every member, as
/// the baseline lets the help desk.
pub async fn set_scope(
    cmd: &Command<'_>,
    member_id: i32,
    groups: &[i32],
) -> Result<Scope, GroupError> {
    let org_id = cmd.actor.org_id;
    let target = crate::identity::member(cmd.db, member_id)
        .await?
        .filter(|member| member.org_id == org_id)
        .ok_or(GroupError::UnknownMember)?;
    let groups: Vec<i32> = groups
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if groups.len() as u64 > MAX_GROUPS {
        return Err(FieldError::new("groups", "Choose groups from the list.").into());
    }
    let tried = Attempt {
        action: AuditAction::GroupScopeSet,
        target: Some(&target),
        details: serde_json::json!({ "groups": groups }),
    };
    cmd.require(Action::ManageGroups, tried).await?;
    let not_help_desk = || {
        FieldError::new(
            "member",
            "Only help-desk members are scoped to groups: owners and administrators assist everyone.",
        )
    };
    if target.role != Role::Helpdesk {
        return Err(not_help_desk().into());
    }
    let txn = cmd.db.begin().await?;
    take_turns_on_organization(&txn, org_id).await?;
    // Read again in turn: a role change (which ends scopes) may have landed meanwhile.
    if crate::identity::member(&txn, target.id)
        .await?
        .is_none_or(|now| now.role != Role::Helpdesk)
    {
        return Err(not_help_desk().into());
    }
    for group in &groups {
        group_in(&txn, org_id, *group).await?;
    }
    helpdesk_scope::Entity::delete_many()
        .filter(helpdesk_scope::Column::UserId.eq(target.id))
        .exec(&txn)
        .await?;
    if !groups.is_empty() {
        helpdesk_scope::Entity::insert_many(groups.iter().map(|group| {
            helpdesk_scope::ActiveModel {
                org_id: Set(org_id),
                user_id: Set(target.id),
                group_id: Set(*group),
                ..Default::default()
            }
        }))
        .exec(&txn)
        .await?;
    }
    rules::write_scope(&txn, org_id, target.id, &groups).await?;
    let recorded = GroupDetails {
        groups: groups.clone(),
        ..GroupDetails::default()
    };
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::GroupScopeSet,
            Some(&target),
            details(&recorded)?,
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(Scope {
        member: target,
        groups,
    })
}

/// Ends the scope of a member who is no longer on the help desk (their role changed), in the
/// caller's transaction: as any other role they are scoped to nothing.
pub(crate) async fn end_scope(
    txn: &impl ConnectionTrait,
    org_id: i32,
    member_id: i32,
) -> Result<(), DbErr> {
    let ended = helpdesk_scope::Entity::delete_many()
        .filter(helpdesk_scope::Column::UserId.eq(member_id))
        .exec(txn)
        .await?;
    if ended.rows_affected > 0 {
        rules::write_scope(txn, org_id, member_id, &[]).await?;
    }
    Ok(())
}

/// The rules groups compiled to at `at` (memberships, exceptions, help-desk scopes), each as
/// [`Rule::line`] and [`grouping_line`] give them, replayed from the organization's audit log
/// (the `group.*` events, members removed, roles changed away from the help desk): what
/// the export of a past date lists beside the other rules.
pub async fn lines_at(
    db: &DatabaseConnection,
    org_id: i32,
    at: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .filter(audit_event::Column::At.lte(at))
        .filter(audit_event::Column::Outcome.eq(Outcome::Success.as_str()))
        .filter(audit_event::Column::Action.is_in([
            AuditAction::GroupCreated.as_str(),
            AuditAction::GroupDeleted.as_str(),
            AuditAction::GroupMembersAdded.as_str(),
            AuditAction::GroupMemberRemoved.as_str(),
            AuditAction::GroupExceptionSet.as_str(),
            AuditAction::GroupScopeSet.as_str(),
            AuditAction::MemberRemoved.as_str(),
            AuditAction::MemberRoleChanged.as_str(),
        ]))
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await?;
    let mut members: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    let mut exceptions: BTreeMap<i32, bool> = BTreeMap::new();
    let mut scopes: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for event in events {
        let action = AuditAction::parse(&event.action);
        if matches!(
            action,
            Some(AuditAction::MemberRemoved | AuditAction::MemberRoleChanged)
        ) {
            let Some(member) = event.target_id else {
                continue;
            };
            // Any role but the help desk ends a scope (as `members::change_role` does).
            let left_help_desk = serde_json::from_str::<serde_json::Value>(&event.details)
                .ok()
                .is_some_and(|d| d["after"] != Role::Helpdesk.as_str());
            if action == Some(AuditAction::MemberRemoved) {
                for group in members.values_mut() {
                    group.remove(&member);
                }
                scopes.remove(&member);
            } else if left_help_desk {
                scopes.remove(&member);
            }
            continue;
        }
        let recorded: GroupDetails = serde_json::from_str(&event.details)
            .map_err(|e| DbErr::Type(format!("audit event {} details: {e}", event.id)))?;
        match (action, recorded.group) {
            (Some(AuditAction::GroupCreated), Some(group)) => {
                members.insert(group, BTreeSet::new());
            }
            (Some(AuditAction::GroupDeleted), Some(group)) => {
                members.remove(&group);
                exceptions.remove(&group);
            }
            (Some(AuditAction::GroupMembersAdded), Some(group)) => {
                members.entry(group).or_default().extend(recorded.members);
            }
            (Some(AuditAction::GroupMemberRemoved), Some(group)) => {
                if let (Some(in_group), Some(member)) = (members.get_mut(&group), event.target_id) {
                    in_group.remove(&member);
                }
            }
            (Some(AuditAction::GroupExceptionSet), Some(group)) => {
                match recorded.backup_codes.as_deref() {
                    Some(effect) => exceptions.insert(group, effect == "allow"),
                    None => exceptions.remove(&group),
                };
            }
            (Some(AuditAction::GroupScopeSet), _) => {
                if let Some(member) = event.target_id {
                    scopes.insert(member, recorded.groups);
                }
            }
            _ => {}
        }
    }
    let mut lines: Vec<String> = exceptions
        .into_iter()
        .flat_map(|(group, allowed)| rules::group_exception_rules(org_id, group, allowed))
        .chain(
            scopes
                .into_iter()
                .flat_map(|(member, groups)| rules::scope_rules(org_id, member, &groups)),
        )
        .map(|rule: Rule| rule.line())
        .collect();
    for (group, in_group) in members {
        lines.extend(
            in_group
                .into_iter()
                .map(|member| grouping_line(org_id, group, member)),
        );
    }
    Ok(lines)
}

/// A membership as exports show it: `g, member:<id>, group:<id>, org:<id>`.
pub fn grouping_line(org_id: i32, group_id: i32, member_id: i32) -> String {
    format!(
        "g, {}, {}, {}",
        member_subject(member_id),
        group_subject(group_id),
        org_domain(org_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_line_numbers_past_headers_blank_lines_and_quoting() {
        let text = "email\r\n\r\na@acme.test\n\n\n\"b@acme.test\",x\n  c@acme.test  \n";
        assert_eq!(
            read_csv(text).unwrap(),
            [
                (3, "a@acme.test".to_owned()),
                (6, "b@acme.test".to_owned()),
                (7, "c@acme.test".to_owned()),
            ]
        );
        // A header alone, or nothing: no addresses.
        for empty in ["", "email\n", "\n\n"] {
            assert_eq!(read_csv(empty).unwrap_err().field, "csv", "{empty:?}");
        }
        let too_many = "a@acme.test\n".repeat(MAX_CSV_ROWS + 1);
        assert_eq!(read_csv(&too_many).unwrap_err().field, "csv");
    }
}
