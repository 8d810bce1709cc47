//! "This wasn't me": a member who reads a security notice about something they did not do
//! follows its link ([`crate::notifications::not_me`]) and confirms. Lifeline then stops
//! their backup codes and any sign-in code issued for them, ends every session of their
//! account, records `incident.reported`, and alerts the organization's administrators
//! ([`crate::audit::notices`]), all in one transaction. Each link works once.
//!
//! The link is the only credential: it proves the holder read a notice sent to the member's
//! address, and it can only take things away, never sign anyone in.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait, sea_query::OnConflict,
};

use crate::{
    accounts,
    audit::{self, AuditAction, Event, Outcome, Source},
    entity::incident_report,
    identity::{self, Member},
    notifications::{LinkError, NotMe},
    recovery_codes::stand_ins::{EndReason, end_stand_ins},
    secrets::SecretKey,
};

/// Why a report was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The link was used before: its report is on the record.
    #[error("this link was already used: the report it makes is on the record")]
    AlreadyUsed,
    /// The account the link names no longer exists.
    #[error("the account this link is about no longer exists")]
    NoAccount,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub member: Member,
    /// A backup-code set was in force and stopped.
    pub backup_codes_stopped: bool,
    /// A sign-in code an administrator issued was waiting and was cancelled.
    pub issued_code_cancelled: bool,
}

/// A link that still works: the member it is about, and until when it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLink {
    pub member: Member,
    pub expires_at: DateTime<Utc>,
}

/// What a link is about, if it is valid, unused and its account still exists: what the
/// confirmation page names before the member confirms. Errors as [`report`].
pub async fn check(
    db: &DatabaseConnection,
    key: &SecretKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<CheckedLink, ReportError> {
    let claim = NotMe::verify(key, token, now)?;
    let used = incident_report::Entity::find()
        .filter(incident_report::Column::Nonce.eq(&claim.nonce))
        .one(db)
        .await?;
    if used.is_some() {
        return Err(ReportError::AlreadyUsed);
    }
    Ok(CheckedLink {
        member: member_of(db, &claim).await?,
        expires_at: claim.expires_at,
    })
}

/// Takes the report a link makes, once: however many times it is sent, at once or one after
/// another, one report is recorded and every later one is refused with
/// [`ReportError::AlreadyUsed`]. Errors: an invalid or expired link, a removed account, the
/// database's; nothing is written on any of them.
pub async fn report(
    db: &DatabaseConnection,
    key: &SecretKey,
    token: &str,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Reported, ReportError> {
    let claim = NotMe::verify(key, token, now)?;
    let member = member_of(db, &claim).await?;
    let txn = db.begin().await?;
    // The nonce is unique: of reports sent at once, one inserts and the rest find it taken.
    // A write first: on SQLite a transaction that read before its first write could be
    // refused once another report commits.
    let taken = incident_report::Entity::insert(incident_report::ActiveModel {
        org_id: Set(member.org_id),
        user_id: Set(Some(member.id)),
        nonce: Set(claim.nonce.clone()),
        reported_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(incident_report::Column::Nonce)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if taken != 1 {
        return Err(ReportError::AlreadyUsed);
    }
    let ended = end_stand_ins(
        &txn,
        Some(&member),
        &member,
        EndReason::IncidentReported,
        source,
        now,
    )
    .await?;
    accounts::end_sessions(&txn, member.id).await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::IncidentReported,
            actor: Some(&member),
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "backup_codes_stopped": ended.backup_codes,
                "issued_code_cancelled": ended.recovery_code,
                "sessions_ended": true,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Reported {
        member,
        backup_codes_stopped: ended.backup_codes,
        issued_code_cancelled: ended.recovery_code,
    })
}

/// The member `claim` names, in the organization it names.
async fn member_of(
    db: &impl sea_orm::ConnectionTrait,
    claim: &NotMe,
) -> Result<Member, ReportError> {
    identity::member(db, claim.member_id)
        .await?
        .filter(|member| member.org_id == claim.org_id)
        .ok_or(ReportError::NoAccount)
}
