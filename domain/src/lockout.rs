//! Per-account lockout of each sign-in factor: the password, the authenticator code and
//! backup codes.
//!
//! - Wrong attempts are counted in the database (`factor_lockout`), so every instance and
//!   every session sees the same count; an attacker gains nothing by starting over.
//! - The organization's number of wrong attempts (default 5) locks the factor for the
//!   organization's duration (default 15 minutes); each lock after another, with no success
//!   between them, lasts twice as long as the one before, up to [`LONGEST_LOCK`].
//! - While locked, the factor is refused with the same answer whether or not the attempt
//!   was right; the caller keeps doing the same work, so the time taken does not tell either.
//! - A lock is recorded in the audit log (`<factor>.locked`); an administrator can unlock
//!   ([`crate::members::unlock`]), recorded as `member.unlocked`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    entity::factor_lockout,
    identity::Member,
};

/// The longest a lock lasts, however often it repeats.
pub const LONGEST_LOCK: Duration = Duration::hours(24);

/// A sign-in factor that locks on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Factor {
    Password,
    Totp,
    BackupCode,
}

impl Factor {
    pub const ALL: [Self; 3] = [Self::Password, Self::Totp, Self::BackupCode];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::BackupCode => "backup_code",
        }
    }

    /// What people call it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "authenticator code",
            Self::BackupCode => "backup codes",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == stored)
    }

    /// The audit action of a lock of this factor.
    fn locked_action(self) -> AuditAction {
        match self {
            Self::Password => AuditAction::PasswordLocked,
            Self::Totp => AuditAction::TotpLocked,
            Self::BackupCode => AuditAction::BackupCodeLocked,
        }
    }
}

/// The organization's lockout numbers (from its policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wrong attempts that lock the factor.
    pub attempts: u8,
    /// How long the first lock lasts.
    pub minutes: u16,
}

/// How long the `lockouts`-th lock in a row lasts: the first `minutes`, then twice the one
/// before, never longer than [`LONGEST_LOCK`].
pub fn lock_duration(limits: Limits, lockouts: u32) -> Duration {
    let first = Duration::minutes(limits.minutes.max(1).into());
    let doublings = lockouts.saturating_sub(1).min(20);
    first
        .checked_mul(1 << doublings)
        .unwrap_or(LONGEST_LOCK)
        .min(LONGEST_LOCK)
}

/// When `member_id`'s `factor` is locked until, if it is locked at `now`.
pub async fn locked_until(
    db: &impl ConnectionTrait,
    member_id: i32,
    factor: Factor,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(
        factor_lockout::Entity::find_by_id((member_id, factor.as_str().to_owned()))
            .one(db)
            .await?
            .and_then(|row| row.locked_until)
            .filter(|until| *until > now),
    )
}

/// The factors of `member_id` locked at `now`, with the end of each lock.
pub async fn locks(
    db: &impl ConnectionTrait,
    member_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<(Factor, DateTime<Utc>)>, DbErr> {
    Ok(factor_lockout::Entity::find()
        .filter(factor_lockout::Column::UserId.eq(member_id))
        .filter(factor_lockout::Column::LockedUntil.gt(now))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| Some((Factor::parse(&row.factor)?, row.locked_until?)))
        .collect())
}

/// Counts a wrong attempt with `factor`; the attempt that reaches the organization's number
/// locks the factor, and the lock is recorded. Returns the lock's end when this attempt
/// locked it.
pub async fn record_failure<C>(
    db: &C,
    member: &Member,
    factor: Factor,
    limits: Limits,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let key = (member.id, factor.as_str());
    factor_lockout::Entity::insert(factor_lockout::ActiveModel {
        user_id: sea_orm::Set(member.id),
        factor: sea_orm::Set(factor.as_str().to_owned()),
        failures: sea_orm::Set(0),
        locked_until: sea_orm::Set(None),
        lockouts: sea_orm::Set(0),
    })
    .on_conflict(
        OnConflict::columns([
            factor_lockout::Column::UserId,
            factor_lockout::Column::Factor,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    // The increment takes the row's lock: concurrent failures count one by one.
    factor_lockout::Entity::update_many()
        .col_expr(
            factor_lockout::Column::Failures,
            Expr::col(factor_lockout::Column::Failures).add(1),
        )
        .filter(factor_lockout::Column::UserId.eq(key.0))
        .filter(factor_lockout::Column::Factor.eq(key.1))
        .exec(&txn)
        .await?;
    let row = factor_lockout::Entity::find_by_id((key.0, key.1.to_owned()))
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("lockout of user {}", member.id)))?;
    if row.failures < i32::from(limits.attempts.max(1)) {
        txn.commit().await?;
        return Ok(None);
    }
    let lockouts = row.lockouts.saturating_add(1);
    let until = now + lock_duration(limits, u32::try_from(lockouts).unwrap_or(u32::MAX));
    factor_lockout::Entity::update_many()
        .col_expr(factor_lockout::Column::Failures, Expr::value(0))
        .col_expr(factor_lockout::Column::LockedUntil, Expr::value(until))
        .col_expr(factor_lockout::Column::Lockouts, Expr::value(lockouts))
        .filter(factor_lockout::Column::UserId.eq(key.0))
        .filter(factor_lockout::Column::Factor.eq(key.1))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: factor.locked_action(),
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Failure,
            details: serde_json::json!({
                "factor": factor.as_str(),
                "attempts": limits.attempts,
                "until": until,
                "lockouts_in_a_row": lockouts,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Some(until))
}

/// A refused sign-in step (a wrong password or authenticator code, or any while locked):
/// recorded as `sign_in.failed` with the method and why, and counted unless the factor was
/// locked already, in one transaction.
pub async fn record_refusal<C>(
    db: &C,
    member: &Member,
    factor: Factor,
    locked: bool,
    limits: Limits,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::SignInFailed,
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Failure,
            details: serde_json::json!({
                "method": factor.as_str(),
                "reason": if locked { "locked" } else { "wrong" },
            }),
        },
        source,
        now,
    )
    .await?;
    if !locked {
        record_failure(&txn, member, factor, limits, source, now).await?;
    }
    txn.commit().await
}

/// A success with `factor`: its count of wrong attempts, and of locks in a row, start over.
pub async fn clear(db: &impl ConnectionTrait, member_id: i32, factor: Factor) -> Result<(), DbErr> {
    factor_lockout::Entity::update_many()
        .col_expr(factor_lockout::Column::Failures, Expr::value(0))
        .col_expr(factor_lockout::Column::Lockouts, Expr::value(0))
        .filter(factor_lockout::Column::UserId.eq(member_id))
        .filter(factor_lockout::Column::Factor.eq(factor.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every lock of `member_id` and forgets their wrong attempts; returns the factors that
/// were locked at `now`.
pub(crate) async fn unlock_all(
    db: &impl ConnectionTrait,
    member_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<Factor>, DbErr> {
    let locked: Vec<Factor> = locks(db, member_id, now)
        .await?
        .into_iter()
        .map(|(factor, _)| factor)
        .collect();
    factor_lockout::Entity::delete_many()
        .filter(factor_lockout::Column::UserId.eq(member_id))
        .exec(db)
        .await?;
    Ok(locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lock_in_a_row_lasts_twice_the_one_before_up_to_a_day() {
        let limits = Limits {
            attempts: 5,
            minutes: 15,
        };
        let minutes: Vec<i64> = (1..=9)
            .map(|n| lock_duration(limits, n).num_minutes())
            .collect();
        assert_eq!(minutes, [15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
        assert_eq!(lock_duration(limits, u32::MAX), LONGEST_LOCK);
        assert_eq!(lock_duration(limits, 0).num_minutes(), 15);
    }
}
