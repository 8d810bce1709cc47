//! How a member's backup codes stand: the one query for sets in force (for one member, a
//! page of members or a whole organization) and the one rule that decides, for a set under
//! a policy, how many codes remain, whether that is low, whether the set has expired, and
//! whether the member complies with "Required". The members page, the compliance report,
//! the impact preview and the member's own status all call these.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, JoinType, QueryFilter,
    QuerySelect, RelationTrait,
    sea_query::{Expr, ExprTrait, IntoCondition, SimpleExpr},
};
use serde::{Deserialize, Serialize};

use crate::{
    entity::{backup_code_set, user_account},
    lockout::Limits,
};

/// The organization's rules for backup codes that this module applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePolicy {
    /// Codes in a new set.
    pub codes_per_set: u8,
    /// At or below this many unused codes the member is warned.
    pub low_codes_threshold: u8,
    /// A set this many days old stops working; 0: sets never expire.
    pub max_set_age_days: u16,
    /// Wrong codes (counted on the account) that lock backup-code sign-in.
    pub lockout_attempts: u8,
    /// How long that lock lasts.
    pub lockout_minutes: u16,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            codes_per_set: 10,
            low_codes_threshold: 3,
            max_set_age_days: 0,
            lockout_attempts: 5,
            lockout_minutes: 15,
        }
    }
}

impl CodePolicy {
    /// When a set stops (or stopped) working, if it ever does: the earlier of the expiry on
    /// record and the moment the set reaches this policy's maximum age.
    ///
    /// An expiry on record is a fact of the set: raising or removing the maximum age later
    /// does not bring an expired set back (issue 19: "an expired set stays expired").
    pub fn expires_at(&self, set: SetDates) -> Option<DateTime<Utc>> {
        let by_age = (self.max_set_age_days > 0)
            .then(|| set.generated_at + chrono::Duration::days(self.max_set_age_days.into()));
        set.expired_at.into_iter().chain(by_age).min()
    }

    /// Whether a set has expired at `now`: the one definition of "expired" that every
    /// check, page and report uses.
    pub fn expired(&self, set: SetDates, now: DateTime<Utc>) -> bool {
        self.expires_at(set).is_some_and(|at| at <= now)
    }

    /// [`CodePolicy::expired`] as a condition on `backup_code_set` rows, for queries that
    /// count or list members by their set's standing without reading each set.
    pub fn expired_condition(&self, now: DateTime<Utc>) -> Condition {
        let on_record = Condition::all()
            .add(backup_code_set::Column::ExpiredAt.is_not_null())
            .add(backup_code_set::Column::ExpiredAt.lte(now));
        let mut expired = Condition::any().add(on_record);
        if self.max_set_age_days > 0 {
            let born_before = now - chrono::Duration::days(self.max_set_age_days.into());
            expired = expired.add(backup_code_set::Column::GeneratedAt.lte(born_before));
        }
        expired
    }

    /// The numbers that lock sign-in factors.
    pub fn limits(&self) -> Limits {
        Limits {
            attempts: self.lockout_attempts,
            minutes: self.lockout_minutes,
        }
    }

    /// How `set` stands under this policy at `now`.
    pub fn standing(&self, set: &SetInForce, now: DateTime<Utc>) -> CodeStatus {
        CodeStatus {
            set_id: set.set_id,
            generated_at: set.generated_at,
            total: set.total,
            remaining: set.remaining,
            last_used_at: set.last_used_at,
            low: set.remaining <= u32::from(self.low_codes_threshold),
            expires_at: self.expires_at(set.dates()),
            expired: self.expired(set.dates(), now),
        }
    }
}

/// The two moments that decide whether a set has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDates {
    pub generated_at: DateTime<Utc>,
    /// When the set's expiry was put on the record (`backup_codes.expired`), if it was.
    pub expired_at: Option<DateTime<Utc>>,
}

impl From<&backup_code_set::Model> for SetDates {
    fn from(set: &backup_code_set::Model) -> Self {
        Self {
            generated_at: set.generated_at,
            expired_at: set.expired_at,
        }
    }
}

/// How a member's set stands ([`CodePolicy::standing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeStatus {
    /// The set's id: what a generate form names as the set it replaces
    /// ([`super::Replacing::Set`]).
    pub set_id: i32,
    pub generated_at: DateTime<Utc>,
    pub total: u32,
    pub remaining: u32,
    pub last_used_at: Option<DateTime<Utc>>,
    /// At or below the organization's low-codes threshold.
    pub low: bool,
    /// When the set stops working under the organization's maximum set age.
    pub expires_at: Option<DateTime<Utc>>,
    /// Past its maximum age: no code of it works any more.
    pub expired: bool,
}

impl CodeStatus {
    /// Unused codes that still work: none once the set has expired.
    pub fn usable_codes(&self) -> u32 {
        if self.expired { 0 } else { self.remaining }
    }
}

/// Whether a member complies with their organization's policy: under "Required"
/// (`required`), a member with MFA whom the gate lets use codes (`usable`; exempted members
/// are not bound) must hold a set with unused codes that has not expired. Without
/// "Required", everyone complies.
pub fn compliant(
    required: bool,
    usable: bool,
    mfa_enabled: bool,
    status: Option<&CodeStatus>,
) -> bool {
    !required || !usable || !mfa_enabled || status.is_some_and(|set| set.usable_codes() > 0)
}

/// A member's set in force, with its codes counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInForce {
    pub set_id: i32,
    pub member_id: i32,
    pub generated_at: DateTime<Utc>,
    /// When its expiry was put on the record, if it was ([`SetDates::expired_at`]).
    pub expired_at: Option<DateTime<Utc>>,
    pub total: u32,
    pub remaining: u32,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl SetInForce {
    /// The moments that decide whether it has expired.
    pub fn dates(&self) -> SetDates {
        SetDates {
            generated_at: self.generated_at,
            expired_at: self.expired_at,
        }
    }
}

/// Whose sets in force to read.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Member(i32),
    /// These members (a page): read in statements of at most [`IDS_PER_STATEMENT`] ids.
    Members(&'a [i32]),
    /// Every member of the organization: one statement that binds only the organization.
    Organization(i32),
}

/// The most member ids one statement binds, whatever the caller passes: no statement grows
/// with the organization (PostgreSQL caps a statement at 65,535 parameters, SQLite at 32,766).
pub const IDS_PER_STATEMENT: usize = 1000;

/// The sets in force in `scope`, each with its total and unused codes and its last use, in
/// no particular order: one row per set, read from the set itself (its `codes_used` and
/// `last_used_at` are written with each code spent), never from its codes.
pub async fn sets_in_force(
    db: &impl ConnectionTrait,
    scope: Scope<'_>,
) -> Result<Vec<SetInForce>, DbErr> {
    match scope {
        Scope::Member(id) => read(db, backup_code_set::Column::UserId.eq(id), false).await,
        Scope::Organization(org_id) => read(db, user_account::Column::OrgId.eq(org_id), true).await,
        Scope::Members(ids) => {
            let mut sets = Vec::new();
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let condition = backup_code_set::Column::UserId.is_in(chunk.iter().copied());
                sets.extend(read(db, condition, false).await?);
            }
            Ok(sets)
        }
    }
}

type SetRow = (
    i32,
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i32,
    i32,
    Option<DateTime<Utc>>,
);

async fn read(
    db: &impl ConnectionTrait,
    condition: sea_orm::sea_query::SimpleExpr,
    join_accounts: bool,
) -> Result<Vec<SetInForce>, DbErr> {
    let mut query = backup_code_set::Entity::find()
        .select_only()
        .column(backup_code_set::Column::Id)
        .column(backup_code_set::Column::UserId)
        .column(backup_code_set::Column::GeneratedAt)
        .column(backup_code_set::Column::ExpiredAt)
        .column(backup_code_set::Column::CodeCount)
        .column(backup_code_set::Column::CodesUsed)
        .column(backup_code_set::Column::LastUsedAt);
    if join_accounts {
        query = query.join(
            JoinType::InnerJoin,
            backup_code_set::Relation::UserAccount.def(),
        );
    }
    let rows: Vec<SetRow> = query
        .filter(backup_code_set::Column::EndedAt.is_null())
        .filter(condition)
        .into_tuple()
        .all(db)
        .await?;
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(
            |(set_id, member_id, generated_at, expired_at, total, spent, last_used_at)| {
                SetInForce {
                    set_id,
                    member_id,
                    generated_at,
                    expired_at,
                    total: count(total),
                    remaining: count(total.saturating_sub(spent)),
                    last_used_at,
                }
            },
        )
        .collect())
}

/// `user_account` → the member's set in force, if any (`LEFT JOIN backup_code_set ON user_id
/// = user_account.id AND ended_at IS NULL`): what `members::report`'s standings and the
/// policy's impact preview read, with the conditions below. The unique index on sets in
/// force keeps it one row per member, and it reads one index entry each.
pub(crate) fn set_in_force_join() -> sea_orm::RelationDef {
    backup_code_set::Relation::UserAccount
        .def()
        .rev()
        .on_condition(|_member, set| {
            Expr::col((set, backup_code_set::Column::EndedAt))
                .is_null()
                .into_condition()
        })
}

/// On rows joined by [`set_in_force_join`]: the member holds a set in force. The conditions
/// built on it are written so that a member without a set (the join's `NULL`s) is plainly
/// false, never `NULL`, and their negation true.
pub(crate) fn has_set_in_force() -> Condition {
    Condition::all().add(backup_code_set::Column::Id.is_not_null())
}

/// On rows joined by [`set_in_force_join`]: the unused codes of the set in force (`NULL`
/// without one).
pub(crate) fn unused_codes_in_force() -> SimpleExpr {
    Expr::col((backup_code_set::Entity, backup_code_set::Column::CodeCount)).sub(Expr::col((
        backup_code_set::Entity,
        backup_code_set::Column::CodesUsed,
    )))
}

/// On rows joined by [`set_in_force_join`]: a set in force with an unused code, expired or not.
pub(crate) fn unused_code_in_force() -> Condition {
    has_set_in_force().add(unused_codes_in_force().gt(0))
}

impl CodePolicy {
    /// On rows joined by [`set_in_force_join`]: a set in force that has expired at `now`.
    pub(crate) fn expired_set_condition(&self, now: DateTime<Utc>) -> Condition {
        has_set_in_force().add(self.expired_condition(now))
    }

    /// On rows joined by [`set_in_force_join`]: a set in force that has not expired at `now`.
    pub(crate) fn working_set_condition(&self, now: DateTime<Utc>) -> Condition {
        has_set_in_force().add(self.expired_condition(now).not())
    }

    /// On rows joined by [`set_in_force_join`]: a working code at `now` (a set in force, not
    /// expired, with an unused code).
    pub(crate) fn holds_condition(&self, now: DateTime<Utc>) -> Condition {
        self.working_set_condition(now)
            .add(unused_codes_in_force().gt(0))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn set(remaining: u32, generated_days_ago: i64, now: DateTime<Utc>) -> SetInForce {
        SetInForce {
            set_id: 1,
            member_id: 1,
            generated_at: now - chrono::Duration::days(generated_days_ago),
            expired_at: None,
            total: 10,
            remaining,
            last_used_at: None,
        }
    }

    #[test]
    fn a_set_stands_by_its_remaining_codes_and_age_under_the_policy() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let policy = CodePolicy {
            max_set_age_days: 30,
            ..CodePolicy::default()
        };
        let fresh = policy.standing(&set(4, 29, now), now);
        assert_eq!(
            (fresh.low, fresh.expired, fresh.usable_codes()),
            (false, false, 4)
        );
        let low = policy.standing(&set(3, 1, now), now);
        assert!(low.low);
        let old = policy.standing(&set(9, 30, now), now);
        assert_eq!((old.expired, old.usable_codes()), (true, 0));
        let forever = CodePolicy::default().standing(&set(9, 3000, now), now);
        assert_eq!((forever.expired, forever.expires_at), (false, None));
    }

    #[test]
    fn only_required_binds_and_only_members_with_mfa_whom_the_gate_lets_use_codes() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let policy = CodePolicy::default();
        let holding = policy.standing(&set(2, 1, now), now);
        let spent = policy.standing(&set(0, 1, now), now);
        // (required, usable, mfa, set) → compliant
        let table = [
            (false, true, true, None, true),
            (true, true, true, None, false),
            (true, true, true, Some(&spent), false),
            (true, true, true, Some(&holding), true),
            (true, false, true, None, true),
            (true, true, false, None, true),
        ];
        for (required, usable, mfa, status, expected) in table {
            assert_eq!(
                compliant(required, usable, mfa, status),
                expected,
                "{required} {usable} {mfa} {status:?}"
            );
        }
    }
}
