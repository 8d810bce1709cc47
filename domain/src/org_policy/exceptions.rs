//! Exceptions: named members for whom backup codes are allowed, or not, whatever the
//! organization's setting; the gate's word on one member ("Explain"); and the exceptions in
//! force at a past moment, replayed from the audit log's typed details.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::PolicyChangeError;
use crate::{
    audit::{AuditAction, ExceptionDetails, Outcome},
    authz::{
        Action, Authz, Decision,
        rules::{self, MemberException},
    },
    command::{Attempt, Command},
    entity::{audit_event, group_member, member_group, policy_exception, user_account},
    identity::{Email, Member, Role},
    input::{FieldError, single_line},
};

/// Longest reason accepted for an exception.
const MAX_REASON_CHARS: usize = 500;

/// An exception for one member, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub id: i32,
    pub member_id: i32,
    pub email: String,
    /// Backup codes allowed (true) or not allowed (false) for this member, whatever the
    /// organization's setting.
    pub allowed: bool,
    pub reason: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The organization's exceptions, oldest first.
pub async fn exceptions(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
) -> Result<Vec<Exception>, PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    Ok(in_force(db, actor.org_id).await?)
}

/// The organization's exceptions as stored now, oldest first.
pub(super) async fn in_force(
    db: &impl ConnectionTrait,
    org_id: i32,
) -> Result<Vec<Exception>, DbErr> {
    let rows = policy_exception::Entity::find()
        .filter(policy_exception::Column::OrgId.eq(org_id))
        .order_by_asc(policy_exception::Column::Id)
        .all(db)
        .await?;
    let mut exceptions = Vec::with_capacity(rows.len());
    for row in rows {
        let email = user_account::Entity::find_by_id(row.user_id)
            .one(db)
            .await?
            .map(|member| member.email)
            .unwrap_or_default();
        exceptions.push(Exception {
            id: row.id,
            member_id: row.user_id,
            email,
            allowed: row.effect == "allow",
            reason: row.reason,
            created_by: row.created_by,
            created_at: row.created_at,
        });
    }
    Ok(exceptions)
}

/// Exempts the member with `email` from the organization's backup-code setting: backup
/// codes `allowed` for them or not, whatever the setting, for `reason`.
pub async fn add_exception(
    cmd: &Command<'_>,
    email: &str,
    allowed: bool,
    reason: &str,
) -> Result<Exception, PolicyChangeError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let tried = Attempt {
        details: serde_json::json!({
            "email": Email::parse(email).ok().map(|email| email.as_str().to_owned()),
            "allowed": allowed,
        }),
        ..Attempt::of(AuditAction::PolicyExceptionAdded)
    };
    cmd.require(Action::ManagePolicy, tried).await?;
    let email = Email::parse(email)?;
    let reason = single_line("reason", reason, MAX_REASON_CHARS)?;
    if reason.is_empty() {
        return Err(FieldError::new("reason", "Say why this member is an exception.").into());
    }
    // A member of another organization reads as no member at all.
    let member = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(PolicyChangeError::UnknownMember)?;
    let effect = if allowed { "allow" } else { "deny" };
    let txn = db.begin().await?;
    rules::bump_revision(&txn).await?;
    let row = policy_exception::ActiveModel {
        org_id: Set(actor.org_id),
        user_id: Set(member.id),
        effect: Set(effect.to_owned()),
        reason: Set(reason.to_owned()),
        created_by_id: Set(Some(actor.id)),
        created_by: Set(Some(actor.email.clone())),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => PolicyChangeError::Invalid(FieldError::new(
            "email",
            "This member already has an exception. Remove it first to change it.",
        )),
        _ => PolicyChangeError::Database(error),
    })?;
    rules::write_exception(
        &txn,
        actor.org_id,
        MemberException {
            member_id: member.id,
            allowed,
        },
    )
    .await?;
    let target = Member::try_from(member.clone())?;
    let details = ExceptionDetails {
        exception: row.id,
        backup_codes: effect.to_owned(),
        reason: reason.to_owned(),
    };
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::PolicyExceptionAdded,
            Some(&target),
            details_json(&details)?,
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(Exception {
        id: row.id,
        member_id: member.id,
        email: member.email,
        allowed,
        reason: row.reason,
        created_by: row.created_by,
        created_at: now,
    })
}

/// Removes an exception: the member follows the organization's setting again.
pub async fn remove_exception(
    cmd: &Command<'_>,
    exception_id: i32,
) -> Result<(), PolicyChangeError> {
    let (db, actor) = (cmd.db, cmd.actor);
    let tried = Attempt {
        details: serde_json::json!({ "exception": exception_id }),
        ..Attempt::of(AuditAction::PolicyExceptionRemoved)
    };
    cmd.require(Action::ManagePolicy, tried).await?;
    let txn = db.begin().await?;
    rules::bump_revision(&txn).await?;
    // Another organization's exception reads as none at all.
    let row = policy_exception::Entity::find_by_id(exception_id)
        .filter(policy_exception::Column::OrgId.eq(actor.org_id))
        .one(&txn)
        .await?
        .ok_or(PolicyChangeError::UnknownException)?;
    policy_exception::Entity::delete_by_id(row.id)
        .exec(&txn)
        .await?;
    rules::forget_exception(&txn, actor.org_id, row.user_id).await?;
    let target = user_account::Entity::find_by_id(row.user_id)
        .one(&txn)
        .await?
        .map(Member::try_from)
        .transpose()?;
    let details = ExceptionDetails {
        exception: row.id,
        backup_codes: row.effect,
        reason: row.reason,
    };
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::PolicyExceptionRemoved,
            target.as_ref(),
            details_json(&details)?,
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

fn details_json(details: &ExceptionDetails) -> Result<serde_json::Value, DbErr> {
    serde_json::to_value(details).map_err(|e| DbErr::Custom(format!("exception details: {e}")))
}

/// Why the gate would allow or deny the member with `email` an action the policy governs
/// (`generate` or `redeem` their backup codes, `request_backups` of the organization's data,
/// or `issue_codes`: issue recovery codes for members), with the rules that decided.
pub async fn explain(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    email: &str,
    act: &str,
) -> Result<(Member, Decision), PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    let action = match act.trim() {
        "generate" => Action::GenerateBackupCodes,
        "redeem" => Action::RedeemBackupCode,
        "request_backups" => Action::RequestBackups,
        "issue_codes" => Action::IssueRecoveryCode(Role::Member),
        _ => {
            return Err(FieldError::new(
                "act",
                "Choose generate, redeem, request backups or issue recovery codes.",
            )
            .into());
        }
    };
    let email = Email::parse(email)?;
    let member = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()?
        .ok_or(PolicyChangeError::UnknownMember)?;
    let decision = authz.decide(&member, member.org_id, action).await?;
    Ok((member, decision))
}

/// The exceptions in force at `at`, replayed from the organization's audit log: added,
/// removed, or gone with their member. Oldest first, as [`export`] lists them.
pub(super) async fn exceptions_at(
    db: &DatabaseConnection,
    org_id: i32,
    at: DateTime<Utc>,
) -> Result<Vec<Exception>, DbErr> {
    let mut in_force: Vec<Exception> = Vec::new();
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .filter(audit_event::Column::At.lte(at))
        .filter(audit_event::Column::Outcome.eq(Outcome::Success.as_str()))
        .filter(audit_event::Column::Action.is_in([
            AuditAction::PolicyExceptionAdded.as_str(),
            AuditAction::PolicyExceptionRemoved.as_str(),
            AuditAction::MemberRemoved.as_str(),
        ]))
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await?;
    for event in events {
        let Some(member_id) = event.target_id else {
            continue;
        };
        in_force.retain(|exception| exception.member_id != member_id);
        if event.action == AuditAction::PolicyExceptionAdded.as_str() {
            let details: ExceptionDetails = serde_json::from_str(&event.details)
                .map_err(|e| DbErr::Type(format!("audit event {} details: {e}", event.id)))?;
            in_force.push(Exception {
                id: details.exception,
                member_id,
                email: event.target.unwrap_or_default(),
                allowed: details.allows(),
                reason: details.reason,
                created_by: event.actor,
                created_at: event.at,
            });
        }
    }
    in_force.sort_by_key(|exception| exception.id);
    Ok(in_force)
}

/// Each exempted member's direction, their own exception first, else their groups' (deny
/// wins between two groups), as the gate decides: `true` when codes are allowed for them.
/// `members`: only these members (a page of the console, at most a few thousand ids); `None`:
/// every member of the organization.
pub(crate) async fn exceptions_by_member(
    db: &impl sea_orm::ConnectionTrait,
    org_id: i32,
    members: Option<&[i32]>,
) -> Result<std::collections::HashMap<i32, bool>, DbErr> {
    let mut by_member: std::collections::HashMap<i32, bool> = std::collections::HashMap::new();
    let groups: std::collections::HashMap<i32, bool> = member_group::Entity::find()
        .filter(member_group::Column::OrgId.eq(org_id))
        .filter(member_group::Column::Exception.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .map(|group| (group.id, group.exception.as_deref() == Some("allow")))
        .collect();
    if !groups.is_empty() {
        let mut memberships = group_member::Entity::find()
            .filter(group_member::Column::GroupId.is_in(groups.keys().copied()));
        if let Some(members) = members {
            memberships =
                memberships.filter(group_member::Column::UserId.is_in(members.iter().copied()));
        }
        for membership in memberships.all(db).await? {
            let allowed = groups.get(&membership.group_id).copied().unwrap_or(true);
            *by_member.entry(membership.user_id).or_insert(true) &= allowed;
        }
    }
    // A member's own exception wins over their groups'.
    let mut own =
        policy_exception::Entity::find().filter(policy_exception::Column::OrgId.eq(org_id));
    if let Some(members) = members {
        own = own.filter(policy_exception::Column::UserId.is_in(members.iter().copied()));
    }
    by_member.extend(
        own.all(db)
            .await?
            .into_iter()
            .map(|row| (row.user_id, row.effect == "allow")),
    );
    Ok(by_member)
}

/// The members of organization `org_id` an exception decides for with `effect` (`allow` or
/// `deny`), their own or else their groups' (deny wins between two groups), as the gate
/// decides; `None`: any exception at all. A condition on `user_account`, for queries that
/// count or list members in SQL.
pub(crate) fn excepted(org_id: i32, effect: Option<&str>) -> sea_orm::Condition {
    use sea_orm::sea_query::{Expr, Query};
    let id = || Expr::col((user_account::Entity, user_account::Column::Id));
    let own = |effect: Option<&str>| {
        let mut query = Query::select()
            .column(policy_exception::Column::UserId)
            .from(policy_exception::Entity)
            .and_where(policy_exception::Column::OrgId.eq(org_id))
            .to_owned();
        if let Some(effect) = effect {
            query.and_where(policy_exception::Column::Effect.eq(effect));
        }
        query
    };
    let grouped = |effect: Option<&str>| {
        let mut query = Query::select()
            .column((group_member::Entity, group_member::Column::UserId))
            .from(group_member::Entity)
            .inner_join(
                member_group::Entity,
                Expr::col((member_group::Entity, member_group::Column::Id))
                    .equals((group_member::Entity, group_member::Column::GroupId)),
            )
            .and_where(Expr::col((group_member::Entity, group_member::Column::OrgId)).eq(org_id))
            .to_owned();
        match effect {
            Some(effect) => query.and_where(
                Expr::col((member_group::Entity, member_group::Column::Exception)).eq(effect),
            ),
            None => query.and_where(
                Expr::col((member_group::Entity, member_group::Column::Exception)).is_not_null(),
            ),
        };
        query
    };
    if effect.is_none() {
        // Any exception at all: their own or a group's, with no precedence to weigh (one
        // lookup fewer per member on a report of every member).
        return sea_orm::Condition::any()
            .add(id().in_subquery(own(None)))
            .add(id().in_subquery(grouped(None)));
    }
    let mut by_groups = sea_orm::Condition::all()
        .add(id().not_in_subquery(own(None)))
        .add(id().in_subquery(grouped(effect)));
    if effect == Some("allow") {
        by_groups = by_groups.add(id().not_in_subquery(grouped(Some("deny"))));
    }
    sea_orm::Condition::any()
        .add(id().in_subquery(own(effect)))
        .add(by_groups)
}
