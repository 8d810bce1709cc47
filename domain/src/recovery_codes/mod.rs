//! Admin-issued recovery codes (Zoho's and Google's "generate a backup code for a user";
//! Microsoft Entra's Temporary Access Pass, Okta's Temporary Access Code): for a member who
//! lost both their authenticator and their backup codes, an owner, admin or help-desk member
//! issues one 12-digit code, which the member enters through "Use Backup Verification code".
//! Its lifetime, its start and its uses are chosen within the organization's rules
//! ([`org_policy::issued_codes`]: 10 minutes to 30 days, one-time or up to N uses, and who
//! may issue, compiled to Casbin rules).
//!
//! 1. An admin requests a code for the member. Under the policy's two-admin approval, a
//!    second admin approves it: not the requester, not the member the code is for, and one
//!    with MFA on. Otherwise the request is approved as it is made.
//! 2. The requester reveals it: only then is the code made, shown once, and stored as an
//!    argon2id digest (own salt, the server's pepper). Nobody sees it twice. Approval is
//!    checked again here, as it binds now ([`org_policy::two_admin_approval`]: turning it
//!    off binds only a day later) and with the approver as they are now (still an admin
//!    who may issue for this member, MFA still on).
//! 3. The member signs in with it from its start until it expires, as many times as it
//!    allows; each sign-in spends one use in one conditional update, so a code with N uses
//!    signs in N times however many sign-ins arrive at once.
//!
//! One code per member is open at a time: a newer request for the same member ends the older
//! one (the organization's row taken first, so that concurrent requests leave one). Every
//! step is audited. A code's [`RecoveryState`] says why it does or does not work now.
//!
//! This module holds the administrators' side (request, approve, reveal, cancel);
//! [`sign_in`] the member's (spending one of the code's uses), and [`stand_ins`] ending a
//! member's backup codes and issued code together.

use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::Expr,
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
    input::{FieldError, readable_time},
    lookup_secret::{BackupCodeHasher, PlainCode},
    org_policy::{
        self,
        issued_codes::{CodeChoice, RecoveryCodeRules},
    },
};

/// How long an ended, expired or used-up code stays on the recovery page's list.
pub const LISTED_AFTER_DAYS: i64 = 7;
/// The most codes that stopped the recovery page lists (it lists every open one).
pub const LISTED_AT_MOST: u64 = 100;

/// Where a code stands now, and so whether it works: each state but `Active` is a reason it
/// does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryState {
    /// Waiting for a second admin.
    AwaitingApproval,
    /// Approved; the requester can reveal the code.
    ReadyToReveal,
    /// Revealed, and its start is still ahead.
    NotYetValid,
    /// Revealed, started, not expired, uses left: the member can sign in with it.
    Active,
    /// Every use it allowed is spent.
    UsedUp,
    /// Past its lifetime.
    Expired,
    /// An administrator cancelled it.
    Cancelled,
    /// A newer code for the same member replaced it.
    Replaced,
    /// Something that ends every stand-in for the member's second factor ended it (their
    /// MFA reset or turned off, codes revoked, removed, "This wasn't me", a restore):
    /// [`RecoveryRequest::end_reason`] says which.
    Ended,
    /// The organization's policy turned recovery codes off, or no longer lets the member
    /// use codes.
    DisabledByPolicy,
}

impl RecoveryState {
    /// Whether the code can never work again, whatever the policy does next.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            Self::UsedUp | Self::Expired | Self::Cancelled | Self::Replaced | Self::Ended
        )
    }
}

/// A code, as the recovery page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRequest {
    pub id: i32,
    pub member_id: i32,
    pub member_email: String,
    pub requested_by_id: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub approved_by: Option<String>,
    /// The code works from then…
    pub starts_at: DateTime<Utc>,
    /// …until then.
    pub expires_at: DateTime<Utc>,
    /// Sign-ins it allows, and those made with it.
    pub max_uses: u8,
    pub uses: u8,
    /// Why it ended, when it did: [`stand_ins::EndReason::as_str`], `replaced` or
    /// `cancelled`.
    pub end_reason: Option<String>,
    pub state: RecoveryState,
}

impl RecoveryRequest {
    /// Why the code does or does not work now, in words for the people who issue it.
    pub fn reason(&self) -> String {
        let (uses, max) = (self.uses, self.max_uses);
        match self.state {
            RecoveryState::AwaitingApproval => "Waiting for a second admin's approval.".to_owned(),
            RecoveryState::ReadyToReveal => {
                "Approved: the admin who requested it can reveal it.".to_owned()
            }
            RecoveryState::NotYetValid => format!(
                "Not valid yet: it works from {} until {}.",
                readable_time(self.starts_at),
                readable_time(self.expires_at)
            ),
            RecoveryState::Active if max == 1 => format!(
                "Active: it works once, until {}.",
                readable_time(self.expires_at)
            ),
            RecoveryState::Active => format!(
                "Active: {} of {max} uses left, until {}.",
                max - uses,
                readable_time(self.expires_at)
            ),
            RecoveryState::UsedUp if max == 1 => "Used: the member signed in with it.".to_owned(),
            RecoveryState::UsedUp => format!("Used up: all {max} uses spent."),
            RecoveryState::Expired => {
                format!("Expired at {}.", readable_time(self.expires_at))
            }
            RecoveryState::Cancelled => "Cancelled by an administrator.".to_owned(),
            RecoveryState::Replaced => "Replaced by a newer code for this member.".to_owned(),
            // Codes that ended before reasons were kept have none.
            RecoveryState::Ended => match self.end_reason.as_deref().and_then(EndReason::parse) {
                Some(reason) => format!("Ended: {}.", reason.words()),
                None => "Ended.".to_owned(),
            },
            RecoveryState::DisabledByPolicy => concat!(
                "Disabled by policy: your organization's policy does not let this member ",
                "sign in with a recovery code now."
            )
            .to_owned(),
        }
    }
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
    #[error("Your organization's policy has recovery codes turned off.")]
    CodesOff,
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

/// Where `row` stands at `now`. `approved`: its approval holds as approval binds now
/// ([`approval_holds`]); `policy_allows`: the organization's policy lets the member sign in
/// with a recovery code now ([`policy_allows`]). What is over stays over whatever the policy
/// says.
fn state_of(
    row: &recovery_code::Model,
    approved: bool,
    policy_allows: bool,
    now: DateTime<Utc>,
) -> RecoveryState {
    if row.uses >= row.max_uses {
        RecoveryState::UsedUp
    } else if row.ended_at.is_some() {
        match row.end_reason.as_deref() {
            Some(REPLACED) => RecoveryState::Replaced,
            Some(reason) if reason == EndReason::Cancelled.as_str() => RecoveryState::Cancelled,
            _ => RecoveryState::Ended,
        }
    } else if row.expires_at <= now {
        RecoveryState::Expired
    } else if !policy_allows {
        RecoveryState::DisabledByPolicy
    } else if row.revealed_at.is_none() {
        if approved {
            RecoveryState::ReadyToReveal
        } else {
            RecoveryState::AwaitingApproval
        }
    } else if row.starts_at > now {
        RecoveryState::NotYetValid
    } else {
        RecoveryState::Active
    }
}

/// The end reason of a code a newer one replaced.
const REPLACED: &str = "replaced";

/// The condition on `recovery_code` rows that may still work (or be approved and revealed):
/// not ended, not used up, not expired at `now`.
pub(crate) fn open_condition(now: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(recovery_code::Column::EndedAt.is_null())
        .add(Expr::col(recovery_code::Column::Uses).lt(Expr::col(recovery_code::Column::MaxUses)))
        .add(recovery_code::Column::ExpiresAt.gt(now))
}

/// Whether the organization's policy lets `member` sign in with a recovery code now: codes
/// are on (someone may issue them), and the gate lets the member redeem codes.
pub(crate) async fn policy_allows(
    authz: &Authz,
    member: &Member,
    rules: &RecoveryCodeRules,
) -> Result<bool, RecoveryError> {
    Ok(rules.issuers.codes_on()
        && authz
            .allows(member, member.org_id, Action::RedeemBackupCode)
            .await?)
}

/// The organization's recovery-code rules in force.
async fn rules_of(db: &impl ConnectionTrait, org_id: i32) -> Result<RecoveryCodeRules, DbErr> {
    Ok(org_policy::current(db, org_id).await?.policy.recovery_codes)
}

async fn listing(
    db: &impl ConnectionTrait,
    row: recovery_code::Model,
    approved: bool,
    policy_allows: bool,
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
        state: state_of(&row, approved, policy_allows, now),
        requested_by_id: row.requested_by_id,
        requested_by: row.requested_by,
        requested_at: row.requested_at,
        approved_by: row.approved_by,
        starts_at: row.starts_at,
        expires_at: row.expires_at,
        max_uses: count(row.max_uses),
        uses: count(row.uses),
        end_reason: row.end_reason,
    })
}

/// A stored count of uses, which the rules keep within 1–[`org_policy::issued_codes::MAX_USES`].
fn count(stored: i32) -> u8 {
    u8::try_from(stored.max(0)).unwrap_or(u8::MAX)
}

/// The audit actions of a recovery code's life, done or refused.
const REQUESTED: AuditAction = AuditAction::RecoveryCodeRequested;
const APPROVED: AuditAction = AuditAction::RecoveryCodeApproved;
const REVEALED: AuditAction = AuditAction::RecoveryCodeRevealed;

/// The member `member_id` of the actor's organization, and the gate's word on issuing them
/// a code (which holds the organization's choice of issuers); a refusal is recorded as
/// `action`, denied. With codes off ([`org_policy::Issuers::Nobody`]) nothing is issued,
/// approved or revealed ([`RecoveryError::CodesOff`]), but those who manage the member (the
/// gate's `ManageMember` for their role) may still cancel a code, so that it does not come
/// back when codes are turned on again. Also gives the rules it read, for the step's use.
async fn target(
    cmd: &Command<'_>,
    member_id: i32,
    action: AuditAction,
) -> Result<(Member, RecoveryCodeRules), RecoveryError> {
    let rules = rules_of(cmd.db, cmd.actor.org_id).await?;
    let codes_on = rules.issuers.codes_on();
    if !codes_on && action != AuditAction::RecoveryCodeEnded {
        return Err(RecoveryError::CodesOff);
    }
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
    // With codes off nobody may issue: cancelling then takes managing the member.
    let gate = if codes_on {
        Action::IssueRecoveryCode(member.role)
    } else {
        Action::ManageMember(member.role)
    };
    // A help-desk member scoped to groups issues codes for those groups' members alone.
    cmd.require_all(&[gate, Action::Assist(member.id)], attempt)
        .await?;
    Ok((member, rules))
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
            .await?
        && authz
            .allows(&approver, approver.org_id, Action::Assist(target.id))
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

/// Requests a recovery code for the member with `email`, on the terms `choice` asks within
/// the organization's rules (its lifetime, start and uses; each `None` the default). Approved
/// at once unless the organization wants two admins. Ends the member's open code, if any.
///
/// Errors: [`RecoveryError::Invalid`] next to `email`, `lifetime`, `starts_at` or `uses`;
/// [`RecoveryError::CodesOff`], [`RecoveryError::NotAllowed`] (the gate: the actor may not
/// issue for the member's role), [`RecoveryError::UnknownMember`],
/// [`RecoveryError::ForYourself`], [`RecoveryError::CodesNotAllowed`].
pub async fn request(
    cmd: &Command<'_>,
    email: &str,
    choice: CodeChoice,
) -> Result<RecoveryRequest, RecoveryError> {
    let (db, authz, actor, now) = (cmd.db, cmd.authz, cmd.actor, cmd.now);
    let email = Email::parse(email)?;
    let member_id = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(RecoveryError::UnknownMember)?
        .id;
    let (member, rules) = target(cmd, member_id, REQUESTED).await?;
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
    let terms = rules.terms(choice, now)?;
    let needs_approval = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    let txn = db.begin().await?;
    // One request of the organization at a time past this point, so that of requests for
    // the same member arriving at once each ends the one before it and one stays open.
    crate::db::take_turns_on_organization(&txn, actor.org_id).await?;
    // A newer request replaces any open one for the same member.
    let replaced: Vec<i32> = recovery_code::Entity::find()
        .select_only()
        .column(recovery_code::Column::Id)
        .filter(recovery_code::Column::UserId.eq(member.id))
        .filter(open_condition(now))
        .into_tuple()
        .all(&txn)
        .await?;
    if !replaced.is_empty() {
        recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::EndedAt, Expr::value(now))
            .col_expr(recovery_code::Column::EndReason, Expr::value(REPLACED))
            .filter(recovery_code::Column::Id.is_in(replaced.clone()))
            .exec(&txn)
            .await?;
    }
    for id in replaced {
        let details = serde_json::json!({ "request": id, "reason": REPLACED });
        cmd.record(
            &txn,
            cmd.event(AuditAction::RecoveryCodeEnded, Some(&member), details),
        )
        .await?;
    }
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
        end_reason: Set(None),
        starts_at: Set(terms.starts_at),
        expires_at: Set(terms.expires_at),
        max_uses: Set(terms.uses.into()),
        uses: Set(0),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let details = serde_json::json!({
        "request": row.id,
        "starts_at": terms.starts_at,
        "expires_at": terms.expires_at,
        "uses": terms.uses,
    });
    cmd.record(&txn, cmd.event(REQUESTED, Some(&member), details))
        .await?;
    txn.commit().await?;
    Ok(listing(db, row, !needs_approval, true, now).await?)
}

/// Approves another admin's request (two-admin approval): the approver is not the requester,
/// not the member the code is for, and has MFA on. A request whose approval no longer holds
/// (approved alone before approval was required, or by an admin who has since lost the
/// right or turned MFA off) can be approved again; one whose approval holds cannot.
pub async fn approve(cmd: &Command<'_>, request_id: i32) -> Result<RecoveryRequest, RecoveryError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let row = open_request(db, actor, request_id, now).await?;
    let (member, rules) = target(cmd, row.user_id, APPROVED).await?;
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
    let allows = policy_allows(cmd.authz, &member, &rules).await?;
    Ok(listing(db, row, approved, allows, now).await?)
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
    let (member, rules) = target(cmd, row.user_id, REVEALED).await?;
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
    let allows = policy_allows(cmd.authz, &member, &rules).await?;
    Ok((listing(db, row, true, allows, now).await?, code))
}

/// The organization's codes, newest first: every one that may still work, and those that
/// stopped within the last [`LISTED_AFTER_DAYS`] days (the newest [`LISTED_AT_MOST`]), each
/// with where it stands now. For those who may issue codes for members (owners,
/// administrators, the help desk, unless the policy leaves them out) — and, to read why a
/// code stopped, while the policy has codes off.
pub async fn recent(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    now: DateTime<Utc>,
) -> Result<Vec<RecoveryRequest>, RecoveryError> {
    let rules = rules_of(db, actor.org_id).await?;
    // With codes off nobody may issue; the list still says so, to those who could before.
    let reader = if rules.issuers.codes_on() {
        Action::IssueRecoveryCode(Role::Member)
    } else {
        Action::ManagePolicy
    };
    authz.require(actor, actor.org_id, reader).await?;
    // One look at the rules' revision for the whole list, not one per code.
    let authz = &authz.refreshed().await?;
    let since = now - Duration::days(LISTED_AFTER_DAYS);
    let of_org = || {
        recovery_code::Entity::find()
            .filter(recovery_code::Column::OrgId.eq(actor.org_id))
            .order_by_desc(recovery_code::Column::Id)
    };
    // Every code that may still work (at most one per member), however many stopped lately.
    let mut rows = of_org().filter(open_condition(now)).all(db).await?;
    let stopped = of_org()
        .filter(open_condition(now).not())
        .filter(
            sea_orm::Condition::any()
                .add(recovery_code::Column::ExpiresAt.gt(since))
                .add(recovery_code::Column::EndedAt.gt(since))
                .add(recovery_code::Column::UsedAt.gt(since)),
        )
        .limit(LISTED_AT_MOST)
        .all(db)
        .await?;
    rows.extend(stopped);
    rows.sort_by_key(|row| std::cmp::Reverse(row.id));
    let required = org_policy::two_admin_approval(db, actor.org_id, now)
        .await?
        .required;
    let mut requests = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(target) = crate::identity::member(db, row.user_id).await? else {
            continue;
        };
        // A help-desk member scoped to groups sees their groups' members' codes alone.
        if !authz
            .allows(actor, actor.org_id, Action::Assist(target.id))
            .await?
        {
            continue;
        }
        let approved = approval_holds(db, authz, &row, &target, required).await?;
        let allows = policy_allows(authz, &target, &rules).await?;
        requests.push(listing(db, row, approved, allows, now).await?);
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
    // Whether it is over depends on neither its approval nor the policy.
    if state_of(&row, false, true, now).is_over() {
        return Err(RecoveryError::Closed);
    }
    Ok(row)
}

/// Cancels an issued recovery code without issuing another: it ends at once, whatever its
/// step (waiting for approval, ready, or revealed with uses left).
pub async fn cancel(cmd: &Command<'_>, request_id: i32) -> Result<(), RecoveryError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    let row = open_request(db, actor, request_id, now).await?;
    let (member, _) = target(cmd, row.user_id, AuditAction::RecoveryCodeEnded).await?;
    let txn = db.begin().await?;
    let ended = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::EndedAt, Expr::value(now))
        .col_expr(
            recovery_code::Column::EndReason,
            Expr::value(EndReason::Cancelled.as_str()),
        )
        .filter(recovery_code::Column::Id.eq(row.id))
        .filter(open_condition(now))
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
