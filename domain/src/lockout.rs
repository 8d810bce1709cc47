//! Per-account limits on guessing each sign-in factor (the password, the authenticator code
//! and backup codes), that hold under parallel requests on every instance.
//!
//! - **An attempt is reserved before it is evaluated** ([`reserve`]): one conditional update
//!   in the database counts it, and only while fewer than the organization's number of
//!   attempts (default 5) are counted in the current window and the factor is not locked.
//!   However many requests arrive at once, at most that many are ever evaluated per window;
//!   the others get the locked answer after the same work.
//! - The attempt that fills the window and is wrong locks the factor for the organization's
//!   duration (default 15 minutes); each lock after another, with no sign-in between them,
//!   lasts twice as long as the one before, up to [`LONGEST_LOCK`]. The lock is recorded in
//!   the audit log (`<factor>.locked`) with the refusal that caused it.
//! - **Failures age**: a window starts at its first failure and lasts the lock duration;
//!   older failures are forgotten. A right secret clears its factor's count; a whole sign-in
//!   also ends the doubling ([`signed_in`]).
//! - **Counted by source** (OWASP's device cookies): a browser that completed a sign-in for
//!   the account ([`Attempter::Device`]) has counts of its own, apart from every other
//!   source ([`Attempter::Untrusted`]), so a stranger who knows an email cannot lock its
//!   owner out of their own browser.
//! - An administrator ([`crate::members::unlock`]) or the operator (`lifeline unlock`) can
//!   end every lock of an account, recorded as `member.unlocked`.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    entity::factor_attempt,
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
    /// Attempts evaluated per window; the last of them, when wrong, locks the factor.
    pub attempts: u8,
    /// How long the first lock lasts, and how long a window of attempts lasts.
    pub minutes: u16,
}

impl Limits {
    fn window(self) -> Duration {
        Duration::minutes(self.minutes.max(1).into())
    }

    fn attempts(self) -> i32 {
        i32::from(self.attempts.max(1))
    }
}

/// How long the `lockouts`-th lock in a row lasts: the first `minutes`, then twice the one
/// before, never longer than [`LONGEST_LOCK`].
pub fn lock_duration(limits: Limits, lockouts: u32) -> Duration {
    let first = limits.window();
    let doublings = lockouts.saturating_sub(1).min(20);
    first
        .checked_mul(1 << doublings)
        .unwrap_or(LONGEST_LOCK)
        .min(LONGEST_LOCK)
}

/// Whose attempts are counted together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Attempter {
    /// Every source without the account's device cookie.
    #[default]
    Untrusted,
    /// One browser that completed a sign-in for the account ([`crate::device`]).
    Device(String),
}

impl Attempter {
    /// The counts of `member_id` that an attempt from `source` falls under: its device's, when
    /// the source holds a device cookie issued for that account.
    pub fn of(source: &Source, member_id: i32) -> Self {
        match &source.device {
            Some(device) if device.member_id == member_id => Self::Device(device.id.clone()),
            _ => Self::Untrusted,
        }
    }

    pub(crate) fn key(&self) -> String {
        match self {
            Self::Untrusted => String::new(),
            Self::Device(id) => format!("device:{id}"),
        }
    }
}

/// An attempt the limit let through: evaluate it, then settle it with [`Ticket::passed`] or
/// [`Ticket::failed`]. An attempt never settled stays counted until its window ends.
#[must_use = "an attempt must be settled: passed or failed"]
#[derive(Debug)]
pub struct Ticket {
    member_id: i32,
    factor: Factor,
    source: String,
    /// Its number in the window, from 1.
    attempt: i32,
}

fn key_filter<Q: QueryFilter>(query: Q, member_id: i32, factor: Factor, source: &str) -> Q {
    query
        .filter(factor_attempt::Column::UserId.eq(member_id))
        .filter(factor_attempt::Column::Factor.eq(factor.as_str()))
        .filter(factor_attempt::Column::Source.eq(source))
}

/// Reserves one attempt with `factor` for `member_id` from `attempter`: `None` when the
/// factor is locked or the window's attempts are all taken (the caller gives the locked
/// answer, after the same work). One conditional update decides, so concurrent requests on
/// any instance are let through one by one, never more than [`Limits::attempts`] a window.
pub async fn reserve<C>(
    db: &C,
    member_id: i32,
    factor: Factor,
    attempter: &Attempter,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<Option<Ticket>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let source = attempter.key();
    let window_start = now - limits.window();
    let txn = db.begin().await?;
    factor_attempt::Entity::insert(factor_attempt::ActiveModel {
        user_id: sea_orm::Set(member_id),
        factor: sea_orm::Set(factor.as_str().to_owned()),
        source: sea_orm::Set(source.clone()),
        attempts: sea_orm::Set(0),
        window_started_at: sea_orm::Set(None),
        locked_until: sea_orm::Set(None),
        lockouts: sea_orm::Set(0),
    })
    .on_conflict(
        OnConflict::columns([
            factor_attempt::Column::UserId,
            factor_attempt::Column::Factor,
            factor_attempt::Column::Source,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    // A window that began before `window_start` is over: this attempt starts a new one.
    let window_over = factor_attempt::Column::WindowStartedAt
        .is_null()
        .or(factor_attempt::Column::WindowStartedAt.lte(window_start));
    let reserved = key_filter(
        factor_attempt::Entity::update_many(),
        member_id,
        factor,
        &source,
    )
    .col_expr(
        factor_attempt::Column::Attempts,
        Expr::case(window_over.clone(), 1)
            .finally(Expr::col(factor_attempt::Column::Attempts).add(1))
            .into(),
    )
    .col_expr(
        factor_attempt::Column::WindowStartedAt,
        Expr::case(window_over.clone(), Expr::value(now))
            .finally(Expr::col(factor_attempt::Column::WindowStartedAt))
            .into(),
    )
    .filter(
        factor_attempt::Column::LockedUntil
            .is_null()
            .or(factor_attempt::Column::LockedUntil.lte(now)),
    )
    .filter(window_over.or(factor_attempt::Column::Attempts.lt(limits.attempts())))
    .exec(&txn)
    .await?
    .rows_affected
        == 1;
    if !reserved {
        txn.commit().await?;
        return Ok(None);
    }
    let attempt = key_filter(factor_attempt::Entity::find(), member_id, factor, &source)
        .one(&txn)
        .await?
        .map_or(1, |row| row.attempts);
    txn.commit().await?;
    Ok(Some(Ticket {
        member_id,
        factor,
        source,
        attempt,
    }))
}

impl Ticket {
    /// The attempt was right: the factor's count from this source starts over.
    pub async fn passed(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        key_filter(
            factor_attempt::Entity::update_many(),
            self.member_id,
            self.factor,
            &self.source,
        )
        .col_expr(factor_attempt::Column::Attempts, Expr::value(0))
        .col_expr(
            factor_attempt::Column::WindowStartedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .exec(db)
        .await?;
        Ok(())
    }

    /// The attempt was wrong. It stays counted; when it was the window's last, the factor
    /// locks from this source and the lock is recorded. `db` is the transaction recording
    /// the refusal, which must have written first (so that it holds the write lock). Returns
    /// the lock's end when this attempt locked the factor.
    pub async fn failed<C>(
        self,
        db: &C,
        member: &Member,
        limits: Limits,
        source: &Source,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbErr>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        if self.attempt < limits.attempts() {
            return Ok(None);
        }
        let (id, factor, from) = (self.member_id, self.factor, self.source.as_str());
        // Only while the window is still full: a right attempt may have cleared it meanwhile.
        let locking = key_filter(factor_attempt::Entity::update_many(), id, factor, from)
            .col_expr(
                factor_attempt::Column::Lockouts,
                Expr::col(factor_attempt::Column::Lockouts).add(1),
            )
            .col_expr(factor_attempt::Column::Attempts, Expr::value(0))
            .col_expr(
                factor_attempt::Column::WindowStartedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(factor_attempt::Column::Attempts.gte(limits.attempts()))
            .exec(db)
            .await?;
        if locking.rows_affected != 1 {
            return Ok(None);
        }
        let lockouts = key_filter(factor_attempt::Entity::find(), id, factor, from)
            .one(db)
            .await?
            .map_or(1, |row| row.lockouts);
        let until = now + lock_duration(limits, u32::try_from(lockouts).unwrap_or(u32::MAX));
        key_filter(factor_attempt::Entity::update_many(), id, factor, from)
            .col_expr(factor_attempt::Column::LockedUntil, Expr::value(until))
            .exec(db)
            .await?;
        audit::record(
            db,
            member.org_id,
            Event {
                action: self.factor.locked_action(),
                actor: Some(member),
                target: Some(member),
                outcome: Outcome::Failure,
                details: serde_json::json!({
                    "factor": self.factor.as_str(),
                    "attempts": limits.attempts,
                    "until": until,
                    "lockouts_in_a_row": lockouts,
                    "source": if self.source.is_empty() { "untrusted" } else { "device" },
                }),
            },
            source,
            now,
        )
        .await?;
        Ok(Some(until))
    }
}

/// A refused sign-in step with `factor`, as the log and the count take it.
#[derive(Debug)]
pub enum Refusal {
    /// No attempt could be reserved: the factor is locked for this source.
    Locked,
    /// The attempt was evaluated and wrong.
    Wrong(Ticket),
}

/// A refused password or authenticator step: recorded as `sign_in.failed` with the method
/// and why, and a wrong attempt settled (the window's last locks the factor), in one
/// transaction, before the answer.
pub async fn record_refusal<C>(
    db: &C,
    member: &Member,
    factor: Factor,
    refusal: Refusal,
    limits: Limits,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let reason = match refusal {
        Refusal::Locked => "locked",
        Refusal::Wrong(_) => "wrong",
    };
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::SignInFailed,
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Failure,
            details: serde_json::json!({ "method": factor.as_str(), "reason": reason }),
        },
        source,
        now,
    )
    .await?;
    if let Refusal::Wrong(ticket) = refusal {
        ticket.failed(&txn, member, limits, source, now).await?;
    }
    txn.commit().await
}

/// A whole sign-in succeeded: the doubling of locks ends for every factor and source. (The
/// counts of the factors it used started over as each was right, [`Ticket::passed`]; they
/// are not cleared again here, which would let a burst racing the sign-in open a window
/// more.)
pub async fn signed_in(db: &impl ConnectionTrait, member_id: i32) -> Result<(), DbErr> {
    factor_attempt::Entity::update_many()
        .col_expr(factor_attempt::Column::Lockouts, Expr::value(0))
        .filter(factor_attempt::Column::UserId.eq(member_id))
        .exec(db)
        .await?;
    Ok(())
}

/// When `member_id`'s `factor` is locked until for untrusted sources, if it is locked at
/// `now`.
pub async fn locked_until(
    db: &impl ConnectionTrait,
    member_id: i32,
    factor: Factor,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(key_filter(
        factor_attempt::Entity::find(),
        member_id,
        factor,
        &Attempter::Untrusted.key(),
    )
    .one(db)
    .await?
    .and_then(|row| row.locked_until)
    .filter(|until| *until > now))
}

/// The factors of `member_ids` locked at `now` for untrusted sources, with the end of each
/// lock: what the members console shows.
pub async fn locks(
    db: &impl ConnectionTrait,
    member_ids: &[i32],
    now: DateTime<Utc>,
) -> Result<Vec<(i32, Factor, DateTime<Utc>)>, DbErr> {
    Ok(factor_attempt::Entity::find()
        .filter(factor_attempt::Column::UserId.is_in(member_ids.iter().copied()))
        .filter(factor_attempt::Column::Source.eq(Attempter::Untrusted.key()))
        .filter(factor_attempt::Column::LockedUntil.gt(now))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| Some((row.user_id, Factor::parse(&row.factor)?, row.locked_until?)))
        .collect())
}

/// Ends every lock of `member_id`, from every source, and forgets their attempts; returns
/// the factors that were locked at `now`.
pub(crate) async fn unlock_all(
    db: &impl ConnectionTrait,
    member_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<Factor>, DbErr> {
    let mut locked: Vec<Factor> = factor_attempt::Entity::find()
        .filter(factor_attempt::Column::UserId.eq(member_id))
        .filter(factor_attempt::Column::LockedUntil.gt(now))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| Factor::parse(&row.factor))
        .collect();
    locked.sort_by_key(|f| f.as_str());
    locked.dedup();
    factor_attempt::Entity::delete_many()
        .filter(factor_attempt::Column::UserId.eq(member_id))
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

    #[test]
    fn only_a_device_cookie_for_the_same_account_counts_apart() {
        let device = |member_id| Source {
            device: Some(crate::device::Device {
                member_id,
                id: "abc".into(),
            }),
            ..Source::default()
        };
        assert_eq!(
            Attempter::of(&device(7), 7),
            Attempter::Device("abc".into())
        );
        assert_eq!(Attempter::of(&device(8), 7), Attempter::Untrusted);
        assert_eq!(Attempter::of(&Source::default(), 7), Attempter::Untrusted);
        assert_eq!(Attempter::Untrusted.key(), "");
        assert_eq!(Attempter::Device("abc".into()).key(), "device:abc");
    }
}
