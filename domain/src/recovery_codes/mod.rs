//! Admin-issued recovery codes (Zoho's and Google's "generate a backup code for a user"):
//! for a member who lost both their authenticator and their backup codes, an owner or admin
//! issues one single-use 12-digit code, valid for 24 hours, which the member enters through
//! "Use Backup Verification code".
//!
//! 1. An admin requests a code for the member. Under the policy's two-admin approval, a
//!    second admin approves it: not the requester, not the member the code is for, and one
//!    with MFA on. Otherwise the request is approved as it is made.
//! 2. The requester reveals it: only then is the code made, shown once, and stored as an
//!    argon2id digest (own salt, the server's pepper). Nobody sees it twice. Approval is
//!    checked again here, as it binds now ([`org_policy::two_admin_approval`]: turning it
//!    off binds only a day later) and with the approver as they are now (still an admin
//!    who may issue for this member, MFA still on).
//! 3. The member signs in with it once, within 24 hours of the request.
//!
//! A newer request for the same member ends the older one. Every step is audited.
//!
//! This module holds the administrators' side (request, approve, reveal, cancel);
//! [`sign_in`] the member's (spending the code once), and [`stand_ins`] ending a member's
//! backup codes and issued code together.

use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

pub mod sign_in;
pub mod stand_ins;

use self::stand_ins::EndReason;

use crate::{
    audit::{AuditAction, Event},
    authz::{Action, Authz, AuthzError, PolicyError},
    command::{Attempt, Command},
    entity::{recovery_code, user_account},
    hashing::{DigestParams, HashError},
    identity::{Email, Member, Role},
    input::FieldError,
    lookup_secret::{BackupCodeHasher, PlainCode},
    org_policy,
};

/// How long a requested code stays usable.
pub const VALID_HOURS: i64 = 24;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryState {
    /// Waiting for a second admin.
    AwaitingApproval,
    /// Approved; the requester can reveal the code.
    ReadyToReveal,
    /// Shown to the requester; the member can use it.
    Revealed,
    /// The member signed in with it.
    Used,
    /// Past its 24 hours, or replaced by a newer request.
    Ended,
}

/// A request, as the recovery page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRequest {
    pub id: i32,
    pub member_id: i32,
    pub member_email: String,
    pub requested_by_id: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub state: RecoveryState,
}

/// Why a recovery-code step did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error("There is no member with that email address in your organization.")]
    UnknownMember,
    #[error("That recovery code request no longer exists.")]
    UnknownRequest,
    #[error("You cannot issue a recovery code for yourself: ask another admin.")]
    ForYourself,
    #[error(
        "This member cannot sign in with a code under your organization's policy. Add an exception for them first."
    )]
    CodesNotAllowed,
    #[error("A second admin must approve this request: you made it.")]
    OwnRequest,
    #[error("You cannot approve a recovery code for yourself: ask another admin.")]
    ApproveForYourself,
    #[error("Turn on multi-factor authentication before approving recovery codes.")]
    ApproverWithoutMfa,
    #[error("Another admin approved this request already.")]
    AlreadyApproved,
    #[error(
        "This request needs a second admin's approval before its code can be revealed \
         (two-admin approval is on)."
    )]
    NotApproved,
    #[error("Only the admin who requested this code can reveal it.")]
    NotRequester,
    #[error("This code was revealed already, or its request has ended. Request a new one.")]
    Closed,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for RecoveryError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// Where `row` stands at `now`; `approved`: its approval holds as approval binds now
/// ([`approval_holds`]).
fn state_of(row: &recovery_code::Model, approved: bool, now: DateTime<Utc>) -> RecoveryState {
    if row.used_at.is_some() {
        RecoveryState::Used
    } else if row.ended_at.is_some() || row.expires_at <= now {
        RecoveryState::Ended
    } else if row.revealed_at.is_some() {
        RecoveryState::Revealed
    } else if approved {
        RecoveryState::ReadyToReveal
    } else {
        RecoveryState::AwaitingApproval
    }
}

async fn listing(
    db: &impl ConnectionTrait,
    row: recovery_code::Model,
    approved: bool,
    now: DateTime<Utc>,
) -> Result<RecoveryRequest, DbErr> {
    let member_email = user_account::Entity::find_by_id(row.user_id)
        .one(db)
        .await?
        .map(|member| member.email)
        .unwrap_or_default();
    Ok(RecoveryRequest {
        id: row.id,
        member_id: row.user_id,
        member_email,
        state: state_of(&row, approved, now),
        requested_by_id: row.requested_by_id,
        requested_by: row.requested_by,
        requested_at: row.requested_at,
        approved_by: row.approved_by,
        expires_at: row.expires_at,
    })
}

/// The audit actions of a recovery code's life, done or refused.
const REQUESTED: AuditAction = AuditAction::RecoveryCodeRequested;
const APPROVED: AuditAction = AuditAction::RecoveryCodeApproved;
const REVEALED: AuditAction = AuditAction::RecoveryCodeRevealed;

/// The member `member_id` of the actor's organization, and the gate's word on issuing them
/// a code; a refusal is recorded as `action`, denied.
async fn target(
    cmd: &Command<'_>,
    member_id: i32,
    action: AuditAction,
) -> Result<Member, RecoveryError> {
    // Another organization's member reads as no member at all.
    let member = user_account::Entity::find_by_id(member_id)
        .filter(user_account::Column::OrgId.eq(cmd.actor.org_id))
        .one(cmd.db)
        .await?
        .map(Member::try_from)
        .transpose()?
        .ok_or(RecoveryError::UnknownMember)?;
    let attempt = Attempt {
        action,
        target: Some(&member),
        details: serde_json::json!({ "role": member.role.as_str() }),
    };
    cmd.require(Action::IssueRecoveryCode(member.role), attempt)
        .await?;
    Ok(member)
}

/// Whether `row`'s approval holds now. Without two-admin approval (`required` false), any
/// approval does. With it, the approver must be a second admin as they are now: not the
/// requester, not the member the code is for, still in the organization, allowed by the
/// gate to issue codes for `target`, and with MFA on.
async fn approval_holds(
    db: &impl ConnectionTrait,
    authz: &Authz,
    row: &recovery_code::Model,
    target: &Member,
    required: bool,
) -> Result<bool, RecoveryError> {
    if row.approved_at.is_none() {
        return Ok(false);
    }
    if !required {
        return Ok(true);
    }
    let Some(approver_id) = row
        .approved_by_id
        .filter(|id| Some(*id) != row.requested_by_id && *id != row.user_id)
    else {
        return Ok(false);
    };
    let Some(approver) = user_account::Entity::find_by_id(approver_id)
        .filter(user_account::Column::OrgId.eq(row.org_id))
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()?
    else {
        return Ok(false);
    };
    Ok(approver.mfa_enabled
        && authz
            .allows(
                &approver,
                approver.org_id,
                Action::IssueRecoveryCode(target.role),
            )
            .await?)
}

fn event<'a>(
    cmd: &'a Command<'_>,
    action: AuditAction,
    target: &'a Member,
    request_id: i32,
) -> Event<'a> {
    cmd.event(
        action,
        Some(target),
        serde_json::json!({ "request": request_id }),
    )
}

/// Requests a recovery code for the member with `email`. Approved at once unless the
/// organization wants two admins.
pub async fn request(cmd: &Command<'_>, email: &str) -> Result<RecoveryRequest, RecoveryError> {
    let (db, authz, actor, now) = (cmd.db, cmd.authz, cmd.actor, cmd.now);
    let email = Email::parse(email)?;
    let member_id = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(RecoveryError::UnknownMember)?
        .id;
    let member = target(cmd, member_id, REQUESTED).await?;
    if member.id == actor.id {
        return Err(RecoveryError::ForYourself);
    }
    // The code is entered where backup codes are; the gate must let the member redeem.
    if !authz
        .allows(&member, member.org_id, Action::RedeemBackupCode)
        .await?
    {
        return Err(RecoveryError::CodesNotAllowed);
    }
    let needs_approval = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    let txn = db.begin().await?;
    // A newer request replaces any open one for the same member.
    recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::EndedAt, Expr::value(now))
        .filter(recovery_code::Column::UserId.eq(member.id))
        .filter(recovery_code::Column::EndedAt.is_null())
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let row = recovery_code::ActiveModel {
        org_id: Set(actor.org_id),
        user_id: Set(member.id),
        requested_by_id: Set(Some(actor.id)),
        requested_by: Set(actor.email.clone()),
        requested_at: Set(now),
        approved_by_id: Set((!needs_approval).then_some(actor.id)),
        approved_by: Set((!needs_approval).then(|| actor.email.clone())),
        approved_at: Set((!needs_approval).then_some(now)),
        salt: Set(None),
        digest: Set(None),
        params: Set(None),
        revealed_at: Set(None),
        used_at: Set(None),
        ended_at: Set(None),
        expires_at: Set(now + Duration::hours(VALID_HOURS)),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    cmd.record(&txn, event(cmd, REQUESTED, &member, row.id))
        .await?;
    txn.commit().await?;
    Ok(listing(db, row, !needs_approval, now).await?)
}

/// Approves another admin's request (two-admin approval): the approver is not the requester,
/// not the member the code is for, and has MFA on. A request whose approval no longer holds
/// (approved alone before approval was required, or by an admin who has since lost the
/// right or turned MFA off) can be approved again; one whose approval holds cannot.
pub async fn approve(cmd: &Command<'_>, request_id: i32) -> Result<RecoveryRequest, RecoveryError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let row = open_request(db, actor, request_id, now).await?;
    let member = target(cmd, row.user_id, APPROVED).await?;
    if row.requested_by_id == Some(actor.id) {
        return Err(RecoveryError::OwnRequest);
    }
    if row.user_id == actor.id {
        return Err(RecoveryError::ApproveForYourself);
    }
    if !actor.mfa_enabled {
        return Err(RecoveryError::ApproverWithoutMfa);
    }
    let required = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    if row.revealed_at.is_some() {
        return Err(RecoveryError::Closed);
    }
    if approval_holds(db, cmd.authz, &row, &member, required).await? {
        return Err(RecoveryError::AlreadyApproved);
    }
    let txn = db.begin().await?;
    // Only over the approval read above: of two admins approving at once, one does.
    let same_approver = match row.approved_by_id {
        Some(id) => recovery_code::Column::ApprovedById.eq(id),
        None => recovery_code::Column::ApprovedById.is_null(),
    };
    let approved = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::ApprovedById, Expr::value(actor.id))
        .col_expr(
            recovery_code::Column::ApprovedBy,
            Expr::value(actor.email.clone()),
        )
        .col_expr(recovery_code::Column::ApprovedAt, Expr::value(now))
        .filter(recovery_code::Column::Id.eq(row.id))
        .filter(same_approver)
        .filter(recovery_code::Column::RevealedAt.is_null())
        .filter(recovery_code::Column::EndedAt.is_null())
        .exec(&txn)
        .await?;
    if approved.rows_affected != 1 {
        return Err(RecoveryError::AlreadyApproved);
    }
    cmd.record(&txn, event(cmd, APPROVED, &member, row.id))
        .await?;
    txn.commit().await?;
    let row = open_request(db, actor, request_id, now).await?;
    let approved = approval_holds(db, cmd.authz, &row, &member, required).await?;
    Ok(listing(db, row, approved, now).await?)
}

/// Reveals the code of an approved request to the admin who requested it: the code is made
/// now and shown this once.
pub async fn reveal(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    request_id: i32,
) -> Result<(RecoveryRequest, PlainCode), RecoveryError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let row = open_request(db, actor, request_id, now).await?;
    let member = target(cmd, row.user_id, REVEALED).await?;
    if row.requested_by_id != Some(actor.id) {
        return Err(RecoveryError::NotRequester);
    }
    let required = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    if !approval_holds(db, cmd.authz, &row, &member, required).await? {
        return Err(RecoveryError::NotApproved);
    }
    if row.revealed_at.is_some() {
        return Err(RecoveryError::Closed);
    }
    let code = PlainCode::random();
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let params = DigestParams::CURRENT;
    let digest = hasher.digest(&code, &salt, params).await?;
    let txn = db.begin().await?;
    let revealed = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::Salt, Expr::value(salt.to_vec()))
        .col_expr(recovery_code::Column::Digest, Expr::value(digest.to_vec()))
        .col_expr(
            recovery_code::Column::Params,
            Expr::value(params.to_string()),
        )
        .col_expr(recovery_code::Column::RevealedAt, Expr::value(now))
        .filter(recovery_code::Column::Id.eq(row.id))
        .filter(recovery_code::Column::RevealedAt.is_null())
        .filter(recovery_code::Column::EndedAt.is_null())
        .exec(&txn)
        .await?;
    // Revealed by a concurrent request a moment ago: that one showed the code.
    if revealed.rows_affected != 1 {
        return Err(RecoveryError::Closed);
    }
    cmd.record(&txn, event(cmd, REVEALED, &member, row.id))
        .await?;
    txn.commit().await?;
    let row = open_request(db, actor, request_id, now).await?;
    Ok((listing(db, row, true, now).await?, code))
}

/// The organization's requests that are not over yet, newest first.
pub async fn open_requests(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    now: DateTime<Utc>,
) -> Result<Vec<RecoveryRequest>, RecoveryError> {
    authz
        .require(actor, actor.org_id, Action::IssueRecoveryCode(Role::Member))
        .await?;
    let rows = recovery_code::Entity::find()
        .filter(recovery_code::Column::OrgId.eq(actor.org_id))
        .filter(recovery_code::Column::EndedAt.is_null())
        .filter(recovery_code::Column::UsedAt.is_null())
        .filter(recovery_code::Column::ExpiresAt.gt(now))
        .order_by_desc(recovery_code::Column::Id)
        .all(db)
        .await?;
    let required = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    let mut requests = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(target) = crate::identity::member(db, row.user_id).await? else {
            continue;
        };
        let approved = approval_holds(db, authz, &row, &target, required).await?;
        requests.push(listing(db, row, approved, now).await?);
    }
    Ok(requests)
}

/// A request of `actor`'s organization.
async fn open_request(
    db: &DatabaseConnection,
    actor: &Member,
    request_id: i32,
    now: DateTime<Utc>,
) -> Result<recovery_code::Model, RecoveryError> {
    let row = recovery_code::Entity::find_by_id(request_id)
        .filter(recovery_code::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(RecoveryError::UnknownRequest)?;
    // Whether it is over does not depend on its approval.
    if matches!(
        state_of(&row, false, now),
        RecoveryState::Used | RecoveryState::Ended
    ) {
        return Err(RecoveryError::Closed);
    }
    Ok(row)
}

/// Cancels an issued recovery code without issuing another: it ends at once, whatever its
/// step (waiting for approval, ready, or revealed and not used yet).
pub async fn cancel(cmd: &Command<'_>, request_id: i32) -> Result<(), RecoveryError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let row = open_request(db, actor, request_id, now).await?;
    let member = target(cmd, row.user_id, AuditAction::RecoveryCodeEnded).await?;
    let txn = db.begin().await?;
    let ended = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::EndedAt, Expr::value(now))
        .filter(recovery_code::Column::Id.eq(row.id))
        .filter(recovery_code::Column::EndedAt.is_null())
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if ended.rows_affected != 1 {
        return Err(RecoveryError::Closed);
    }
    let details = serde_json::json!({ "request": row.id, "reason": EndReason::Cancelled.as_str() });
    cmd.record(
        &txn,
        cmd.event(AuditAction::RecoveryCodeEnded, Some(&member), details),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
