//! The catalogue of what an organization owns, table by table, in the order a restore writes
//! it (each table after the ones its rows point to), with how each is read for a backup and
//! written back by a restore.
//!
//! Each table goes into the archive as NDJSON parts of at most [`PART_ROWS`] rows: one JSON
//! object per line, the row's columns under their own names (the entity's serde form). Two
//! columns differ from the database: `user_account.totp_secret` and `webhook.secret` hold
//! the secret's own bytes, not the server key's seal of them, and their key version is 0; the archive's encryption protects them, and a
//! restore seals them under the restoring installation's key. A new authenticator waiting to
//! be confirmed (`user_account.totp_replacement_secret`) is left out: the member starts it
//! again.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Select, Value,
    sea_query::{Expr, Query},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    authz::org_domain,
    entity::{
        alert_digest_item, alert_settings, audit_chain_head, audit_checkpoint, audit_event,
        backup_code, backup_code_set, casbin_rule, factor_attempt, group_member, helpdesk_scope,
        incident_report, member_group, notification_address, org_policy, organization,
        policy_exception, recovery_code, user_account, webhook,
    },
};

/// Rows per NDJSON part: what a backup holds in memory per table at once.
pub const PART_ROWS: u64 = 5_000;

/// Rows inserted per statement by a restore (SQLite binds at most 32,766 parameters).
const INSERT_ROWS: usize = 500;

/// The tables of one organization, in restore order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Organization,
    UserAccount,
    OrgPolicy,
    PolicyException,
    MemberGroup,
    GroupMember,
    HelpdeskScope,
    CasbinRule,
    BackupCodeSet,
    BackupCode,
    RecoveryCode,
    FactorAttempt,
    NotificationAddress,
    AlertSettings,
    AlertDigestItem,
    IncidentReport,
    Webhook,
    AuditChainHead,
    AuditEvent,
    AuditCheckpoint,
}

impl Table {
    /// Every table, in the order a backup writes and a restore reads them (the groups before
    /// the Casbin rules, which a restore as a new organization points at their new ids).
    pub const ALL: [Self; 20] = [
        Self::Organization,
        Self::UserAccount,
        Self::OrgPolicy,
        Self::PolicyException,
        Self::MemberGroup,
        Self::GroupMember,
        Self::HelpdeskScope,
        Self::CasbinRule,
        Self::BackupCodeSet,
        Self::BackupCode,
        Self::RecoveryCode,
        Self::FactorAttempt,
        Self::NotificationAddress,
        Self::AlertSettings,
        Self::AlertDigestItem,
        Self::IncidentReport,
        Self::Webhook,
        Self::AuditChainHead,
        Self::AuditEvent,
        Self::AuditCheckpoint,
    ];

    /// The table's name in the database and in the archive.
    pub fn name(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::UserAccount => "user_account",
            Self::OrgPolicy => "org_policy",
            Self::PolicyException => "policy_exception",
            Self::MemberGroup => "member_group",
            Self::GroupMember => "group_member",
            Self::HelpdeskScope => "helpdesk_scope",
            Self::CasbinRule => "casbin_rule",
            Self::BackupCodeSet => "backup_code_set",
            Self::BackupCode => "backup_code",
            Self::RecoveryCode => "recovery_code",
            Self::FactorAttempt => "factor_attempt",
            Self::NotificationAddress => "notification_address",
            Self::AlertSettings => "alert_settings",
            Self::AlertDigestItem => "alert_digest_item",
            Self::IncidentReport => "incident_report",
            Self::Webhook => "webhook",
            Self::AuditChainHead => "audit_chain_head",
            Self::AuditEvent => "audit_event",
            Self::AuditCheckpoint => "audit_checkpoint",
        }
    }

    /// The table named `name`, if it is one of the catalogue's.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|table| table.name() == name)
    }

    /// Whether its `id` is a database-assigned serial that a restore keeping ids must move
    /// past (PostgreSQL sequences do not follow explicit ids). `casbin_rule` rows are
    /// written without their ids, which nothing refers to.
    pub(super) fn has_serial_id(self) -> bool {
        !matches!(
            self,
            Self::CasbinRule | Self::FactorAttempt | Self::AlertSettings | Self::AuditChainHead
        )
    }

    /// How many of the organization's rows the table holds.
    pub(super) async fn count(self, txn: &DatabaseTransaction, org_id: i32) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        let org = self.org(org_id);
        match self {
            Self::Organization => organization::Entity::find().filter(org).count(txn).await,
            Self::UserAccount => user_account::Entity::find().filter(org).count(txn).await,
            Self::OrgPolicy => org_policy::Entity::find().filter(org).count(txn).await,
            Self::PolicyException => {
                policy_exception::Entity::find()
                    .filter(org)
                    .count(txn)
                    .await
            }
            Self::MemberGroup => member_group::Entity::find().filter(org).count(txn).await,
            Self::GroupMember => group_member::Entity::find().filter(org).count(txn).await,
            Self::HelpdeskScope => helpdesk_scope::Entity::find().filter(org).count(txn).await,
            Self::CasbinRule => casbin_rule::Entity::find().filter(org).count(txn).await,
            Self::BackupCodeSet => backup_code_set::Entity::find().filter(org).count(txn).await,
            Self::BackupCode => backup_code::Entity::find().filter(org).count(txn).await,
            Self::RecoveryCode => recovery_code::Entity::find().filter(org).count(txn).await,
            Self::FactorAttempt => factor_attempt::Entity::find().filter(org).count(txn).await,
            Self::NotificationAddress => {
                notification_address::Entity::find()
                    .filter(org)
                    .count(txn)
                    .await
            }
            Self::AlertSettings => alert_settings::Entity::find().filter(org).count(txn).await,
            Self::AlertDigestItem => {
                alert_digest_item::Entity::find()
                    .filter(org)
                    .count(txn)
                    .await
            }
            Self::IncidentReport => incident_report::Entity::find().filter(org).count(txn).await,
            Self::Webhook => webhook::Entity::find().filter(org).count(txn).await,
            Self::AuditChainHead => {
                audit_chain_head::Entity::find()
                    .filter(org)
                    .count(txn)
                    .await
            }
            Self::AuditEvent => audit_event::Entity::find().filter(org).count(txn).await,
            Self::AuditCheckpoint => {
                audit_checkpoint::Entity::find()
                    .filter(org)
                    .count(txn)
                    .await
            }
        }
    }

    /// Which rows are the organization's: its own column where the table has one, else
    /// through the member (or the set) the row belongs to.
    fn org(self, org_id: i32) -> Condition {
        let members = || {
            Query::select()
                .column(user_account::Column::Id)
                .from(user_account::Entity)
                .and_where(user_account::Column::OrgId.eq(org_id))
                .to_owned()
        };
        let condition = match self {
            Self::Organization => organization::Column::Id.eq(org_id),
            Self::UserAccount => user_account::Column::OrgId.eq(org_id),
            Self::OrgPolicy => org_policy::Column::OrgId.eq(org_id),
            Self::PolicyException => policy_exception::Column::OrgId.eq(org_id),
            Self::MemberGroup => member_group::Column::OrgId.eq(org_id),
            Self::GroupMember => group_member::Column::OrgId.eq(org_id),
            Self::HelpdeskScope => helpdesk_scope::Column::OrgId.eq(org_id),
            // Its own rules carry the domain second; grouping rows
            // (`g, member:<id>, group:<id>, org:<id>`) carry it third.
            Self::CasbinRule => {
                casbin_rule::Column::V1
                    .eq(org_domain(org_id))
                    .or(casbin_rule::Column::Ptype
                        .eq("g")
                        .and(casbin_rule::Column::V2.eq(org_domain(org_id))))
            }
            Self::BackupCodeSet => backup_code_set::Column::UserId.in_subquery(members()),
            Self::BackupCode => backup_code::Column::SetId.in_subquery(
                Query::select()
                    .column(backup_code_set::Column::Id)
                    .from(backup_code_set::Entity)
                    .and_where(backup_code_set::Column::UserId.in_subquery(members()))
                    .to_owned(),
            ),
            Self::RecoveryCode => recovery_code::Column::OrgId.eq(org_id),
            Self::FactorAttempt => factor_attempt::Column::UserId.in_subquery(members()),
            Self::NotificationAddress => {
                notification_address::Column::UserId.in_subquery(members())
            }
            Self::AlertSettings => alert_settings::Column::OrgId.eq(org_id),
            Self::AlertDigestItem => alert_digest_item::Column::OrgId.eq(org_id),
            Self::IncidentReport => incident_report::Column::OrgId.eq(org_id),
            Self::Webhook => webhook::Column::OrgId.eq(org_id),
            Self::AuditChainHead => audit_chain_head::Column::OrgId.eq(org_id),
            Self::AuditEvent => audit_event::Column::OrgId.eq(org_id),
            Self::AuditCheckpoint => audit_checkpoint::Column::OrgId.eq(org_id),
        };
        Condition::all().add(condition)
    }

    /// The organization's rows after `after` (the position the previous part ended at; `None`
    /// for the first), at most [`PART_ROWS`], as JSON objects in a stable order; with the
    /// position this part ends at. An empty part means the table is done.
    pub(super) async fn read_part(
        self,
        txn: &DatabaseTransaction,
        org_id: i32,
        after: Option<u64>,
    ) -> Result<(Vec<serde_json::Value>, u64), DbErr> {
        let org = self.org(org_id);
        match self {
            Self::Organization => {
                page(
                    txn,
                    organization::Entity::find(),
                    org,
                    organization::Column::Id,
                    after,
                )
                .await
            }
            Self::UserAccount => {
                page(
                    txn,
                    user_account::Entity::find(),
                    org,
                    user_account::Column::Id,
                    after,
                )
                .await
            }
            Self::OrgPolicy => {
                page(
                    txn,
                    org_policy::Entity::find(),
                    org,
                    org_policy::Column::Id,
                    after,
                )
                .await
            }
            Self::PolicyException => {
                page(
                    txn,
                    policy_exception::Entity::find(),
                    org,
                    policy_exception::Column::Id,
                    after,
                )
                .await
            }
            Self::MemberGroup => {
                page(
                    txn,
                    member_group::Entity::find(),
                    org,
                    member_group::Column::Id,
                    after,
                )
                .await
            }
            Self::GroupMember => {
                page(
                    txn,
                    group_member::Entity::find(),
                    org,
                    group_member::Column::Id,
                    after,
                )
                .await
            }
            Self::HelpdeskScope => {
                page(
                    txn,
                    helpdesk_scope::Entity::find(),
                    org,
                    helpdesk_scope::Column::Id,
                    after,
                )
                .await
            }
            Self::CasbinRule => {
                page(
                    txn,
                    casbin_rule::Entity::find(),
                    org,
                    casbin_rule::Column::Id,
                    after,
                )
                .await
            }
            Self::BackupCodeSet => {
                page(
                    txn,
                    backup_code_set::Entity::find(),
                    org,
                    backup_code_set::Column::Id,
                    after,
                )
                .await
            }
            Self::BackupCode => {
                page(
                    txn,
                    backup_code::Entity::find(),
                    org,
                    backup_code::Column::Id,
                    after,
                )
                .await
            }
            Self::RecoveryCode => {
                page(
                    txn,
                    recovery_code::Entity::find(),
                    org,
                    recovery_code::Column::Id,
                    after,
                )
                .await
            }
            Self::FactorAttempt => {
                let query = factor_attempt::Entity::find()
                    .order_by_asc(factor_attempt::Column::Factor)
                    .order_by_asc(factor_attempt::Column::Source);
                page_by_offset(txn, query, org, factor_attempt::Column::UserId, after).await
            }
            Self::NotificationAddress => {
                page(
                    txn,
                    notification_address::Entity::find(),
                    org,
                    notification_address::Column::Id,
                    after,
                )
                .await
            }
            Self::AlertSettings => {
                page(
                    txn,
                    alert_settings::Entity::find(),
                    org,
                    alert_settings::Column::OrgId,
                    after,
                )
                .await
            }
            Self::AlertDigestItem => {
                page(
                    txn,
                    alert_digest_item::Entity::find(),
                    org,
                    alert_digest_item::Column::Id,
                    after,
                )
                .await
            }
            Self::IncidentReport => {
                page(
                    txn,
                    incident_report::Entity::find(),
                    org,
                    incident_report::Column::Id,
                    after,
                )
                .await
            }
            Self::Webhook => {
                page(
                    txn,
                    webhook::Entity::find(),
                    org,
                    webhook::Column::Id,
                    after,
                )
                .await
            }
            Self::AuditChainHead => {
                page(
                    txn,
                    audit_chain_head::Entity::find(),
                    org,
                    audit_chain_head::Column::OrgId,
                    after,
                )
                .await
            }
            Self::AuditEvent => {
                page(
                    txn,
                    audit_event::Entity::find(),
                    org,
                    audit_event::Column::Id,
                    after,
                )
                .await
            }
            Self::AuditCheckpoint => {
                page(
                    txn,
                    audit_checkpoint::Entity::find(),
                    org,
                    audit_checkpoint::Column::Id,
                    after,
                )
                .await
            }
        }
    }

    /// Writes `rows` (JSON objects as [`Self::read_part`] gave them) into the table, ids
    /// kept but for `casbin_rule`'s. Errors: a row that is not of this table's shape (named
    /// by its line), or the database's.
    pub(super) async fn insert(
        self,
        txn: &DatabaseTransaction,
        rows: Vec<(usize, serde_json::Value)>,
    ) -> Result<(), InsertError> {
        match self {
            Self::Organization => insert::<organization::Entity>(txn, rows, |_| {}).await,
            Self::UserAccount => insert::<user_account::Entity>(txn, rows, |_| {}).await,
            Self::OrgPolicy => insert::<org_policy::Entity>(txn, rows, |_| {}).await,
            Self::PolicyException => insert::<policy_exception::Entity>(txn, rows, |_| {}).await,
            Self::MemberGroup => insert::<member_group::Entity>(txn, rows, |_| {}).await,
            Self::GroupMember => insert::<group_member::Entity>(txn, rows, |_| {}).await,
            Self::HelpdeskScope => insert::<helpdesk_scope::Entity>(txn, rows, |_| {}).await,
            Self::CasbinRule => {
                insert::<casbin_rule::Entity>(txn, rows, |row| {
                    row.id = sea_orm::ActiveValue::NotSet;
                })
                .await
            }
            Self::BackupCodeSet => insert::<backup_code_set::Entity>(txn, rows, |_| {}).await,
            Self::BackupCode => insert::<backup_code::Entity>(txn, rows, |_| {}).await,
            Self::RecoveryCode => insert::<recovery_code::Entity>(txn, rows, |_| {}).await,
            Self::FactorAttempt => insert::<factor_attempt::Entity>(txn, rows, |_| {}).await,
            Self::NotificationAddress => {
                insert::<notification_address::Entity>(txn, rows, |_| {}).await
            }
            Self::AlertSettings => insert::<alert_settings::Entity>(txn, rows, |_| {}).await,
            Self::AlertDigestItem => insert::<alert_digest_item::Entity>(txn, rows, |_| {}).await,
            Self::IncidentReport => insert::<incident_report::Entity>(txn, rows, |_| {}).await,
            Self::Webhook => insert::<webhook::Entity>(txn, rows, |_| {}).await,
            Self::AuditChainHead => insert::<audit_chain_head::Entity>(txn, rows, |_| {}).await,
            Self::AuditEvent => insert::<audit_event::Entity>(txn, rows, |_| {}).await,
            Self::AuditCheckpoint => insert::<audit_checkpoint::Entity>(txn, rows, |_| {}).await,
        }
    }
}

/// Why rows could not be written back.
#[derive(Debug, thiserror::Error)]
pub(super) enum InsertError {
    /// Line `line` of the part is not a row of the table.
    #[error("line {line}: {problem}")]
    Shape { line: usize, problem: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// One part of `query`'s rows under `org`, keyset-paged on the integer column `key`.
async fn page<E>(
    txn: &DatabaseTransaction,
    query: Select<E>,
    org: Condition,
    key: E::Column,
    after: Option<u64>,
) -> Result<(Vec<serde_json::Value>, u64), DbErr>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let mut query = query.filter(org).order_by_asc(key).limit(PART_ROWS);
    if let Some(after) = after {
        query = query.filter(Expr::col(key).gt(after));
    }
    let rows = query.all(txn).await?;
    let end = match rows.last() {
        Some(last) => key_of::<E>(last, key)?,
        None => after.unwrap_or(0),
    };
    Ok((to_json(&rows)?, end))
}

/// One part of `query`'s rows under `org` (already ordered by the rest of its key), paged by
/// offset after ordering on `first`: for the tables whose key is not one integer.
async fn page_by_offset<E>(
    txn: &DatabaseTransaction,
    query: Select<E>,
    org: Condition,
    first: E::Column,
    after: Option<u64>,
) -> Result<(Vec<serde_json::Value>, u64), DbErr>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let offset = after.unwrap_or(0);
    let rows = query
        .filter(org)
        .order_by_asc(first)
        .offset(offset)
        .limit(PART_ROWS)
        .all(txn)
        .await?;
    let end = offset + rows.len() as u64;
    Ok((to_json(&rows)?, end))
}

fn key_of<E>(row: &E::Model, key: E::Column) -> Result<u64, DbErr>
where
    E: EntityTrait,
{
    use sea_orm::ModelTrait;
    let number = match row.get(key) {
        Value::Int(Some(n)) => i64::from(n),
        Value::BigInt(Some(n)) => n,
        other => {
            return Err(DbErr::Custom(format!(
                "a backup pages on integer keys, and found {other:?}"
            )));
        }
    };
    u64::try_from(number).map_err(|_| DbErr::Custom(format!("a negative key: {number}")))
}

fn to_json<M: Serialize>(rows: &[M]) -> Result<Vec<serde_json::Value>, DbErr> {
    rows.iter()
        .map(|row| serde_json::to_value(row).map_err(|e| DbErr::Custom(e.to_string())))
        .collect()
}

/// Inserts `rows` into `E`'s table, each changed by `adjust` first, [`INSERT_ROWS`] per
/// statement.
async fn insert<E>(
    txn: &DatabaseTransaction,
    rows: Vec<(usize, serde_json::Value)>,
    adjust: impl Fn(&mut E::ActiveModel),
) -> Result<(), InsertError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
{
    let mut batch = Vec::with_capacity(INSERT_ROWS);
    for (line, value) in rows {
        let model: E::Model = serde_json::from_value(value).map_err(|e| InsertError::Shape {
            line,
            problem: e.to_string(),
        })?;
        let mut active = sea_orm::ActiveModelTrait::reset_all(model.into_active_model());
        adjust(&mut active);
        batch.push(active);
        if batch.len() == INSERT_ROWS {
            E::insert_many(std::mem::take(&mut batch))
                .exec_without_returning(txn)
                .await?;
        }
    }
    if !batch.is_empty() {
        E::insert_many(batch).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Moves the PostgreSQL sequence of `table`'s `id` past the largest id now in it, after a
/// restore wrote ids of its own. SQLite needs nothing: its next rowid follows the largest.
pub(super) async fn move_sequence_past_ids(
    txn: &DatabaseTransaction,
    table: Table,
) -> Result<(), DbErr> {
    if txn.get_database_backend() != sea_orm::DatabaseBackend::Postgres || !table.has_serial_id() {
        return Ok(());
    }
    let name = table.name();
    txn.execute_unprepared(&format!(
        "SELECT setval(pg_get_serial_sequence('{name}', 'id'), \
         GREATEST((SELECT MAX(id) FROM {name}), 1))"
    ))
    .await?;
    Ok(())
}
