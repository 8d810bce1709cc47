//! A restore as a new organization (issue 15): the archive written beside the organizations a
//! database already holds. Every serial id gets a new one and every reference follows (the
//! `org_id` columns, members, code sets, groups, the Casbin rules' `org:<id>` domain and the
//! `member:<id>` and `group:<id>` they name); the organization takes a slug that is free; and
//! accounts whose email address an account of the installation already has refuse the whole
//! restore.
//!
//! # Ids
//!
//! New ids are allocated for each part in one round trip before the part is inserted with
//! them ([`allocate_ids`]): PostgreSQL takes them from the table's own sequence (`nextval`
//! over `generate_series`), SQLite after the largest id the table has ever had (`MAX(id)`
//! and `sqlite_sequence`), which holds because a restore takes SQLite's one write lock with
//! its first statement. They are handed out in the archive's order, so rows keep their
//! relative order, and no sequence needs moving afterwards.
//!
//! A reference to a member the archive does not hold (one removed since): where the column
//! is required, the archive is damaged; where it may be empty (who saved, who acted), it
//! becomes `NULL`, so that it cannot name whichever account of this installation has that id;
//! the email address kept beside it still says who it was.
//!
//! # Values unique across the installation
//!
//! `user_account.email` refuses the restore ([`BackupError::EmailsTaken`]). A notification
//! address's verification-token digest and an incident report's link nonce that are taken
//! already (the archive restored into the installation it came from) get fresh random ones:
//! the pending link then verifies the original's address, and a used link names the
//! original's member anyway. An alert digest's dedupe key names the organization and the
//! member, and is renumbered with them; one of another form that is taken is dropped.
//!
//! An audit event's details name rows by id too (a code set, an exception, a recovery code,
//! groups, members, a webhook: [`DETAIL_IDS`]); they are renumbered with the rows. An id the
//! archive does not hold (a row deleted since, or one a backup never holds) becomes its
//! negative: the details about that row still agree with one another, and name no row here.
//! (An event's `actor_id` and `target_id` columns name an account or nothing, so a removed
//! member's are emptied instead, as above: the replay of a past policy,
//! [`crate::groups::lines_at`], then cannot tell that member's removal from a group.)
//!
//! Old audit checkpoints are not written: they sign the old ids. The audit events' links
//! cover their ids and details too, so the chain is linked anew after it is checked
//! ([`crate::audit::chain::relink_restored`]); when this installation signed the archive's
//! head, each link is first checked under its key with the ids the archive holds
//! ([`ArchivedLinks`]).

use std::collections::{HashMap, HashSet};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Statement,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{BackupError, Table};
use crate::{
    audit::chain::ArchivedLinks,
    authz::{group_subject, member_subject, org_domain},
    entity::{
        alert_digest_item, audit_event, incident_report, notification_address, organization,
        user_account,
    },
};

/// Values asked about per query when looking for ones already taken.
const LOOKUP_VALUES: usize = 1_000;

/// The dedupe key's start of the failed-redemptions alert (`audit::notices`):
/// `alert-refused-<org id>-<member id>-<window and recipient>`.
const REFUSED_ALERT_KEY: &str = "alert-refused-";

/// The slug a restore as a new organization writes under: `wanted` (trimmed, lowercased),
/// which must already be in the form [`crate::accounts::slug_from_name`] gives a name.
/// Errors: [`BackupError::InvalidSlug`].
pub(super) fn check_slug(wanted: &str) -> Result<String, BackupError> {
    let slug = wanted.trim().to_lowercase();
    match crate::accounts::slug_from_name(&slug) {
        Ok(canonical) if canonical == slug => Ok(slug),
        _ => Err(BackupError::InvalidSlug(wanted.to_owned())),
    }
}

/// Which rows' ids an audit event's details hold, by key (an id, or a list of them): every id
/// an event records in its details is under one of these keys.
const DETAIL_IDS: [(&str, Ids); 9] = [
    ("set", Ids::CodeSets),
    ("exception", Ids::Exceptions),
    ("request", Ids::RecoveryCodes),
    ("group", Ids::Groups),
    ("groups", Ids::Groups),
    ("members", Ids::Members),
    ("webhook", Ids::Webhooks),
    ("token", Ids::NotInArchives),
    ("backup", Ids::NotInArchives),
];

/// The rows of one table whose ids are renumbered, as details name them.
#[derive(Debug, Clone, Copy)]
enum Ids {
    Members,
    CodeSets,
    Exceptions,
    RecoveryCodes,
    Groups,
    Webhooks,
    /// Rows a backup does not hold (personal access tokens, the backups themselves).
    NotInArchives,
}

/// What becomes of one part of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Insert it, as renumbered.
    Write,
    /// Write nothing of it (old checkpoints; accounts once an email address is taken).
    Skip,
}

/// The renumbering of one archive's rows, part by part in the archive's order.
pub(super) struct Renumbering {
    /// The organization's id in the archive.
    archive_org: i32,
    /// The slug it is written under (checked with [`check_slug`]).
    slug: String,
    /// Its new id, once its part is renumbered.
    org: Option<i32>,
    members: HashMap<i32, i32>,
    sets: HashMap<i32, i32>,
    groups: HashMap<i32, i32>,
    exceptions: HashMap<i32, i32>,
    recovery_codes: HashMap<i32, i32>,
    webhooks: HashMap<i32, i32>,
    /// Always empty: the ids of rows no archive holds.
    none: HashMap<i32, i32>,
    /// Email addresses of the archive's accounts that accounts here have.
    emails_taken: Vec<String>,
    /// `Some` when this installation signed the archive's head: its links are checked.
    links: Option<ArchivedLinks>,
}

impl Renumbering {
    pub(super) fn new(archive_org: i32, slug: String, links: Option<ArchivedLinks>) -> Self {
        Self {
            archive_org,
            slug,
            org: None,
            members: HashMap::new(),
            sets: HashMap::new(),
            groups: HashMap::new(),
            exceptions: HashMap::new(),
            recovery_codes: HashMap::new(),
            webhooks: HashMap::new(),
            none: HashMap::new(),
            emails_taken: Vec::new(),
            links,
        }
    }

    /// The slug the organization is written under.
    pub(super) fn slug(&self) -> &str {
        &self.slug
    }

    /// The organization's new id, once its part is renumbered.
    pub(super) fn org_id(&self) -> Option<i32> {
        self.org
    }

    /// Called before each part of `table`: once the accounts are all read, any email address
    /// taken refuses the restore, naming every one.
    pub(super) fn before(&self, table: Table) -> Result<(), BackupError> {
        if table != Table::UserAccount && !self.emails_taken.is_empty() {
            return Err(BackupError::EmailsTaken(self.emails_taken.clone()));
        }
        Ok(())
    }

    /// After the last part: the organization's new id. Errors: email addresses taken, or an
    /// archive without its organization.
    pub(super) fn finish(&self) -> Result<i32, BackupError> {
        self.before(Table::Organization)?;
        self.org
            .ok_or_else(|| BackupError::Damaged("it holds no organization".into()))
    }

    /// Renumbers the `rows` of one part of `table` (the file `path`) in place: new ids
    /// allocated in `txn`, references to the archive's rows pointed at their new ids, values
    /// unique across the installation checked (module docs). Errors: the slug or an email
    /// address taken, a reference to nothing in the archive, a link that does not verify, or
    /// the database's.
    pub(super) async fn part(
        &mut self,
        txn: &DatabaseTransaction,
        table: Table,
        path: &str,
        rows: &mut [(usize, Value)],
    ) -> Result<Part, BackupError> {
        match table {
            // They sign the old ids; the chain is linked anew.
            Table::AuditCheckpoint => return Ok(Part::Skip),
            Table::Organization => {
                if rows.len() != 1 || self.org.is_some() {
                    return Err(BackupError::Damaged(format!(
                        "{path} is not one organization"
                    )));
                }
                let slug = vec![self.slug.clone()];
                if !taken::<organization::Entity>(txn, organization::Column::Slug, slug)
                    .await?
                    .is_empty()
                {
                    return Err(BackupError::SlugTaken(self.slug.clone()));
                }
            }
            _ if self.org.is_none() => {
                return Err(BackupError::Damaged(format!(
                    "{path} comes before its organization"
                )));
            }
            Table::UserAccount => {
                let emails = strings(rows, "email");
                let mut clashes: Vec<String> =
                    taken::<user_account::Entity>(txn, user_account::Column::Email, emails)
                        .await?
                        .into_iter()
                        .collect();
                clashes.sort();
                self.emails_taken.extend(clashes);
                if !self.emails_taken.is_empty() {
                    return Ok(Part::Skip);
                }
            }
            Table::AuditEvent => {
                if let Some(links) = &mut self.links {
                    for (line, row) in rows.iter() {
                        let event: audit_event::Model = serde_json::from_value(row.clone())
                            .map_err(|e| {
                                BackupError::Damaged(format!("{path}, line {line}: {e}"))
                            })?;
                        links
                            .check(&event)
                            .map_err(|broken| BackupError::RestoredChain(broken.to_string()))?;
                    }
                }
            }
            _ => {}
        }

        let ids = if table.has_serial_id() {
            allocate_ids(txn, table, rows.len()).await?
        } else {
            Vec::new()
        };
        for (index, (line, row)) in rows.iter_mut().enumerate() {
            let at =
                |problem: String| BackupError::Damaged(format!("{path}, line {line}: {problem}"));
            if let Some(&new) = ids.get(index) {
                let old = int(row, "id").ok_or_else(|| at("it has no id".into()))?;
                row["id"] = json!(new);
                match table {
                    Table::Organization => self.org = Some(new),
                    Table::UserAccount => {
                        self.members.insert(old, new);
                    }
                    Table::BackupCodeSet => {
                        self.sets.insert(old, new);
                    }
                    Table::MemberGroup => {
                        self.groups.insert(old, new);
                    }
                    Table::PolicyException => {
                        self.exceptions.insert(old, new);
                    }
                    Table::RecoveryCode => {
                        self.recovery_codes.insert(old, new);
                    }
                    Table::Webhook => {
                        self.webhooks.insert(old, new);
                    }
                    _ => {}
                }
            }
            self.references(table, row).map_err(at)?;
        }

        match table {
            Table::NotificationAddress => {
                replace_taken::<notification_address::Entity>(
                    txn,
                    notification_address::Column::TokenDigest,
                    rows,
                    "token_digest",
                    || Some(hex::encode(Sha256::digest(random_bytes()))),
                )
                .await?;
            }
            Table::IncidentReport => {
                replace_taken::<incident_report::Entity>(
                    txn,
                    incident_report::Column::Nonce,
                    rows,
                    "nonce",
                    || Some(URL_SAFE_NO_PAD.encode(&random_bytes()[..16])),
                )
                .await?;
            }
            Table::AlertDigestItem => {
                replace_taken::<alert_digest_item::Entity>(
                    txn,
                    alert_digest_item::Column::DedupeKey,
                    rows,
                    "dedupe_key",
                    || None,
                )
                .await?;
            }
            _ => {}
        }
        Ok(Part::Write)
    }

    /// Points `row`'s references at the new ids. `Err`: what is wrong with it.
    fn references(&self, table: Table, row: &mut Value) -> Result<(), String> {
        let Some(org) = self.org else {
            return Err("it comes before its organization".into());
        };
        let members = &self.members;
        match table {
            Table::Organization => row["slug"] = json!(self.slug),
            Table::UserAccount | Table::AlertSettings | Table::Webhook | Table::AuditChainHead => {
                self.org_column(row, org)?
            }
            Table::OrgPolicy => {
                self.org_column(row, org)?;
                renumber_or_null(row, "saved_by_id", members);
            }
            Table::PolicyException => {
                self.org_column(row, org)?;
                renumber(row, "user_id", members, "account")?;
                renumber_or_null(row, "created_by_id", members);
            }
            Table::MemberGroup => {
                self.org_column(row, org)?;
                renumber_or_null(row, "created_by_id", members);
            }
            Table::GroupMember | Table::HelpdeskScope => {
                self.org_column(row, org)?;
                renumber(row, "group_id", &self.groups, "group")?;
                renumber(row, "user_id", members, "account")?;
            }
            Table::CasbinRule => self.rule(row, org)?,
            Table::BackupCodeSet | Table::FactorAttempt | Table::NotificationAddress => {
                renumber(row, "user_id", members, "account")?;
            }
            Table::BackupCode => renumber(row, "set_id", &self.sets, "code set")?,
            Table::RecoveryCode => {
                self.org_column(row, org)?;
                renumber(row, "user_id", members, "account")?;
                renumber_or_null(row, "requested_by_id", members);
                renumber_or_null(row, "approved_by_id", members);
            }
            Table::AlertDigestItem => {
                self.org_column(row, org)?;
                renumber(row, "user_id", members, "account")?;
                if let Some(key) = row["dedupe_key"].as_str()
                    && let Some(key) = self.dedupe_key(key, org)
                {
                    row["dedupe_key"] = json!(key);
                }
            }
            Table::IncidentReport => {
                self.org_column(row, org)?;
                renumber_or_null(row, "user_id", members);
            }
            Table::AuditEvent => {
                self.org_column(row, org)?;
                renumber_or_null(row, "actor_id", members);
                renumber_or_null(row, "target_id", members);
                self.details(row)?;
            }
            Table::AuditCheckpoint => {}
        }
        Ok(())
    }

    /// The new ids of the archive's rows of one kind, by their old.
    fn ids(&self, which: Ids) -> &HashMap<i32, i32> {
        match which {
            Ids::Members => &self.members,
            Ids::CodeSets => &self.sets,
            Ids::Exceptions => &self.exceptions,
            Ids::RecoveryCodes => &self.recovery_codes,
            Ids::Groups => &self.groups,
            Ids::Webhooks => &self.webhooks,
            Ids::NotInArchives => &self.none,
        }
    }

    /// Points the ids an audit event's details name ([`DETAIL_IDS`]; the details are JSON
    /// text) at their new ids; one the archive does not hold becomes its negative (module
    /// docs). A value that is no id of a row (a refused request's `0` or `-1`, a negative
    /// from an earlier restore) names nothing and is kept. `Err`: details that are not JSON.
    fn details(&self, row: &mut Value) -> Result<(), String> {
        let Some(text) = row.get("details").and_then(Value::as_str) else {
            return Ok(());
        };
        let mut details: Value =
            serde_json::from_str(text).map_err(|e| format!("its details are not JSON: {e}"))?;
        let Some(fields) = details.as_object_mut() else {
            return Ok(());
        };
        let mut renumbered = false;
        for (key, which) in DETAIL_IDS {
            let ids = self.ids(which);
            let new_id = |value: &mut Value| {
                if let Some(old) = value
                    .as_i64()
                    .and_then(|old| i32::try_from(old).ok())
                    .filter(|old| *old > 0)
                {
                    *value = json!(ids.get(&old).copied().unwrap_or(-old));
                }
            };
            match fields.get_mut(key) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(values)) => values.iter_mut().for_each(new_id),
                Some(value) => new_id(value),
            }
            renumbered = true;
        }
        if renumbered {
            row["details"] = json!(details.to_string());
        }
        Ok(())
    }

    /// Points a Casbin rule of the archive's organization at `org` and at the new ids of the
    /// members and groups it names: the organization's own rules (`p, subject, org:<id>,
    /// object, act, effect`: a role's, a member's exception or help-desk scope, a group's
    /// exception; a scope's object is `group:<id>`) and its grouping rows (`g, member:<id>,
    /// group:<id>, org:<id>`, the domain third). `Err`: a rule of another organization, a
    /// grouping of anything but a member in a group, or a rule naming a member or a group
    /// the archive does not hold.
    fn rule(&self, row: &mut Value, org: i32) -> Result<(), String> {
        let archive_domain = org_domain(self.archive_org);
        let text = |row: &Value, field: &str| row[field].as_str().unwrap_or_default().to_owned();
        if row["ptype"].as_str() == Some("g") {
            if text(row, "v2") != archive_domain {
                return Err("a rule of another organization".into());
            }
            let (member, group) = (text(row, "v0"), text(row, "v1"));
            if !member.starts_with("member:") || !group.starts_with("group:") {
                return Err(format!(
                    "a grouping of {member:?} in {group:?}, not of a member in a group"
                ));
            }
            row["v0"] = json!(self.named(&member)?);
            row["v1"] = json!(self.named(&group)?);
            row["v2"] = json!(org_domain(org));
            return Ok(());
        }
        if text(row, "v1") != archive_domain {
            return Err("a rule of another organization".into());
        }
        row["v0"] = json!(self.named(&text(row, "v0"))?);
        row["v1"] = json!(org_domain(org));
        // The one object naming a member or group of the archive is a help-desk scope's
        // `group:<id>` (`member:<role>` objects name roles).
        let object = text(row, "v2");
        if object.starts_with("group:") {
            row["v2"] = json!(self.named(&object)?);
        }
        Ok(())
    }

    /// `value` with its new id when it is `member:<id>` or `group:<id>`; anything else (a
    /// role) as it is. `Err`: it names no member or group of the archive.
    fn named(&self, value: &str) -> Result<String, String> {
        if let Some(old) = value.strip_prefix("member:") {
            let new = old
                .parse::<i32>()
                .ok()
                .and_then(|old| self.members.get(&old))
                .ok_or_else(|| format!("a rule for {value}, no account of it"))?;
            return Ok(member_subject(*new));
        }
        if let Some(old) = value.strip_prefix("group:") {
            let new = old
                .parse::<i32>()
                .ok()
                .and_then(|old| self.groups.get(&old))
                .ok_or_else(|| format!("a rule for {value}, no group of it"))?;
            return Ok(group_subject(*new));
        }
        Ok(value.to_owned())
    }

    /// Sets `row.org_id` to `org` after checking it is the archive's organization.
    fn org_column(&self, row: &mut Value, org: i32) -> Result<(), String> {
        match int(row, "org_id") {
            Some(old) if old == self.archive_org => {
                row["org_id"] = json!(org);
                Ok(())
            }
            other => Err(format!(
                "it is of organization {other:?}, not the archive's"
            )),
        }
    }

    /// The failed-redemptions alert's dedupe key with the new organization and member ids;
    /// `None` for a key of another form.
    fn dedupe_key(&self, key: &str, org: i32) -> Option<String> {
        let mut parts = key.strip_prefix(REFUSED_ALERT_KEY)?.splitn(3, '-');
        let old_org: i32 = parts.next()?.parse().ok()?;
        let old_member: i32 = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let member = self.members.get(&old_member)?;
        (old_org == self.archive_org).then(|| format!("{REFUSED_ALERT_KEY}{org}-{member}-{rest}"))
    }
}

fn int(row: &Value, field: &str) -> Option<i32> {
    row.get(field)
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

/// Points the required reference `row[field]` at its new id. `Err`: it names no `what` of
/// the archive.
fn renumber(
    row: &mut Value,
    field: &str,
    ids: &HashMap<i32, i32>,
    what: &str,
) -> Result<(), String> {
    let old = int(row, field);
    let new = old
        .and_then(|old| ids.get(&old))
        .ok_or_else(|| format!("its {field} {old:?} is no {what} of the archive"))?;
    row[field] = json!(new);
    Ok(())
}

/// Points the optional reference `row[field]` at its new id, or empties it when it names no
/// row of the archive (module docs).
fn renumber_or_null(row: &mut Value, field: &str, ids: &HashMap<i32, i32>) {
    row[field] = match int(row, field).and_then(|old| ids.get(&old)) {
        Some(new) => json!(new),
        None => Value::Null,
    };
}

/// The string values of `field` in `rows`.
fn strings(rows: &[(usize, Value)], field: &str) -> Vec<String> {
    rows.iter()
        .filter_map(|(_, row)| row.get(field).and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Which of `values` `column` of `E`'s table already holds.
async fn taken<E: EntityTrait>(
    txn: &DatabaseTransaction,
    column: E::Column,
    values: Vec<String>,
) -> Result<HashSet<String>, DbErr> {
    let mut found = HashSet::new();
    for chunk in values.chunks(LOOKUP_VALUES) {
        let rows: Vec<String> = E::find()
            .select_only()
            .column(column)
            .filter(column.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Replaces each value of `field` in `rows` that `column` already holds with `fresh()`
/// (`None`: `NULL`).
async fn replace_taken<E: EntityTrait>(
    txn: &DatabaseTransaction,
    column: E::Column,
    rows: &mut [(usize, Value)],
    field: &str,
    fresh: impl Fn() -> Option<String>,
) -> Result<(), DbErr> {
    let taken = taken::<E>(txn, column, strings(rows, field)).await?;
    if taken.is_empty() {
        return Ok(());
    }
    for (_, row) in rows.iter_mut() {
        if row[field]
            .as_str()
            .is_some_and(|value| taken.contains(value))
        {
            row[field] = json!(fresh());
        }
    }
    Ok(())
}

/// `n` new ids for `table`, ascending, in one round trip (module docs).
async fn allocate_ids(
    txn: &DatabaseTransaction,
    table: Table,
    n: usize,
) -> Result<Vec<i32>, DbErr> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let name = table.name();
    let backend = txn.get_database_backend();
    let mut ids: Vec<i64> = match backend {
        sea_orm::DatabaseBackend::Postgres => txn
            .query_all(Statement::from_string(
                backend,
                format!(
                    "SELECT nextval(pg_get_serial_sequence('{name}', 'id')) AS id \
                     FROM generate_series(1, {n})"
                ),
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<i64>("", "id"))
            .collect::<Result<_, _>>()?,
        _ => {
            // The largest id the table has had: its rows', or a deleted row's that
            // AUTOINCREMENT remembers and never hands out again.
            let row = txn
                .query_one(Statement::from_string(
                    backend,
                    format!(
                        "SELECT MAX(COALESCE((SELECT MAX(id) FROM {name}), 0), \
                         COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{name}'), 0)) \
                         AS last"
                    ),
                ))
                .await?
                .ok_or_else(|| DbErr::Custom(format!("no largest id of {name}")))?;
            let last: i64 = row.try_get("", "last")?;
            let count = i64::try_from(n).map_err(|e| DbErr::Custom(e.to_string()))?;
            (last + 1..=last + count).collect()
        }
    };
    ids.sort_unstable();
    ids.into_iter()
        .map(|id| {
            i32::try_from(id).map_err(|_| DbErr::Custom(format!("{name} has run out of ids")))
        })
        .collect()
}
