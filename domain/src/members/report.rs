//! The compliance report at any size: how many members stand where, counted by the
//! database in one pass (one statement per range of member ids, the ranges at once), and
//! each count's members as a filtered view of the console (keyset-paged like the rest of
//! it).
//!
//! Each [`Standing`] is one condition on `user_account` rows, built from the same rules the
//! console applies to one member: [`CodePolicy::expired_condition`] for an expired set, the
//! gate's role rules and the exceptions' table for who may use codes,
//! [`crate::backup_codes::compliant`]'s definition for "Required". The tests hold the counts
//! to the console's answers member by member.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, JoinType,
    QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Alias, Expr, ExprTrait, Func, SelectStatement},
};
use serde::{Deserialize, Serialize};

use crate::{
    accounts::AccountError,
    authz::{Action, Authz},
    backup_codes::standing::{CodePolicy, set_in_force_join, unused_codes_in_force},
    db::count_where,
    entity::{factor_attempt, user_account},
    identity::{Member, Role},
    lockout::Attempter,
    members::MemberStatus,
    org_policy::{self, CodesMode, OrgPolicy, grace},
};

/// Where a member stands, as the compliance report counts and the console filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Standing {
    /// MFA turned on.
    WithMfa,
    /// A set in force, not expired, with an unused code.
    HoldingCodes,
    /// A set in force, not expired, at or below the policy's low-codes threshold.
    LowOnCodes,
    /// A set in force that has expired.
    ExpiredSets,
    /// A sign-in factor locked now after wrong attempts.
    Locked,
    /// Not meeting "Required": MFA on, allowed codes, and no unused unexpired code.
    NonCompliant,
    /// An exception for this member, either way.
    Exempted,
    /// No working code to sign in with: no set in force, an expired one, or every code used.
    WithoutCodes,
    /// Non-compliant, before their deadline under "Required"'s date and grace period
    /// ([`crate::org_policy::grace`]): not limited yet.
    InGrace,
}

impl Standing {
    /// Every standing, in the report's order.
    pub const ALL: [Self; 9] = [
        Self::WithMfa,
        Self::HoldingCodes,
        Self::LowOnCodes,
        Self::ExpiredSets,
        Self::Locked,
        Self::NonCompliant,
        Self::InGrace,
        Self::Exempted,
        Self::WithoutCodes,
    ];

    /// Its name in addresses: `/admin/members?standing=low-on-codes`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::WithMfa => "with-mfa",
            Self::HoldingCodes => "holding-codes",
            Self::LowOnCodes => "low-on-codes",
            Self::ExpiredSets => "expired-sets",
            Self::Locked => "locked",
            Self::NonCompliant => "non-compliant",
            Self::Exempted => "exempted",
            Self::WithoutCodes => "without-codes",
            Self::InGrace => "in-grace",
        }
    }

    /// The standing named `slug`, if there is one.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|standing| standing.slug() == slug)
    }

    /// How the report and the console title it.
    pub fn label(self) -> &'static str {
        match self {
            Self::WithMfa => "With MFA on",
            Self::HoldingCodes => "Holding backup codes",
            Self::LowOnCodes => "Low on codes",
            Self::ExpiredSets => "With an expired set",
            Self::Locked => "Locked now",
            Self::NonCompliant => "Non-compliant",
            Self::Exempted => "Exempted (an exception)",
            Self::WithoutCodes => "Without backup codes",
            Self::InGrace => "Non-compliant, in grace",
        }
    }
}

/// What the standings' conditions depend on, read once for a report or a page.
pub(crate) struct Standings {
    org_id: i32,
    codes: CodesMode,
    rules: CodePolicy,
    /// The roles the gate lets generate codes, unless an exception decides: with the
    /// exceptions, the members "Required" binds.
    usable_roles: Vec<Role>,
    /// Whether the gate's rules hold any exception for backup codes (a member's or a
    /// group's). Most organizations have none, and then no member is looked up in them.
    any_exception: bool,
    /// "Required"'s date (from 00:00 UTC) and grace period for new members, if it sets one.
    grace: Option<(DateTime<Utc>, Duration)>,
    now: DateTime<Utc>,
}

impl Standings {
    /// Under `policy` (the organization `org_id`'s, in force) with the gate's answer, at `now`.
    pub(crate) async fn new(
        authz: &Authz,
        org_id: i32,
        policy: &OrgPolicy,
        now: DateTime<Utc>,
    ) -> Result<Self, AccountError> {
        let allowance = authz.allowance(org_id, Action::GenerateBackupCodes).await?;
        Ok(Self {
            org_id,
            codes: policy.codes,
            rules: policy.code_policy(),
            usable_roles: allowance.roles,
            any_exception: allowance.any_exception,
            grace: policy.required_from.map(|day| {
                (
                    grace::start_of(day),
                    Duration::days(policy.grace_days.into()),
                )
            }),
            now,
        })
    }

    /// The members of `standing`, as a condition on `user_account` rows joined to their set
    /// in force by [`set_in_force_join`] (one row per member: at most one set is in force).
    pub(crate) fn condition(&self, standing: Standing) -> Condition {
        let id = || Expr::col((user_account::Entity, user_account::Column::Id));
        let with_mfa = || Condition::all().add(user_account::Column::TotpEnabledAt.is_not_null());
        match standing {
            Standing::WithMfa => with_mfa(),
            Standing::HoldingCodes => self.holds(),
            Standing::WithoutCodes => self.holds().not(),
            Standing::LowOnCodes => self
                .rules
                .working_set_condition(self.now)
                .add(unused_codes_in_force().lte(i32::from(self.rules.low_codes_threshold))),
            Standing::ExpiredSets => self.rules.expired_set_condition(self.now),
            Standing::Locked => Condition::all().add(id().in_subquery(self.locked())),
            // An exception decides for them: their own, or their groups'.
            Standing::Exempted => self.excepted(None),
            // `backup_codes::compliant`, negated: bound by "Required", MFA on, allowed to
            // use codes, and holding none that work.
            Standing::NonCompliant if self.codes == CodesMode::Required => Condition::all()
                .add(with_mfa())
                .add(self.usable())
                .add(self.holds().not()),
            Standing::NonCompliant => Condition::all().add(Expr::value(false)),
            // `grace::deadline` after now: the date is ahead, or the member joined within
            // the grace period.
            Standing::InGrace => match self.grace {
                Some((from, _)) if from > self.now => self.condition(Standing::NonCompliant),
                Some((_, days)) => self
                    .condition(Standing::NonCompliant)
                    .add(user_account::Column::CreatedAt.gt(self.now - days)),
                None => Condition::all().add(Expr::value(false)),
            },
        }
    }

    /// Members the gate lets use codes: their own exception's answer, else their groups'
    /// (deny wins), else their role's ([`crate::authz::Authz::decide`]'s order). Every
    /// exception is a subquery on its table, not a list of ids: the statement binds the
    /// same parameters for no exception as for 100,000 (SQLite refuses past 32,766,
    /// PostgreSQL past 65,535).
    fn usable(&self) -> Condition {
        let roles = self.usable_roles.iter().map(|role| role.as_str());
        Condition::any().add(self.excepted(Some("allow"))).add(
            Condition::all()
                .add(user_account::Column::Role.is_in(roles))
                .add(self.excepted(None).not()),
        )
    }

    /// Members an exception with `effect` decides for ([`org_policy::exceptions::excepted`]),
    /// or nobody when the organization has no exception.
    fn excepted(&self, effect: Option<&str>) -> Condition {
        if self.any_exception {
            org_policy::exceptions::excepted(self.org_id, effect)
        } else {
            Condition::all().add(Expr::value(false))
        }
    }

    /// The member holds a working code ([`CodePolicy::holds_condition`]).
    fn holds(&self) -> Condition {
        self.rules.holds_condition(self.now)
    }

    /// Members with a sign-in factor locked now ([`crate::lockout::locks`]).
    fn locked(&self) -> SelectStatement {
        factor_attempt::Entity::find()
            .select_only()
            .column(factor_attempt::Column::UserId)
            .filter(factor_attempt::Column::Source.eq(Attempter::Untrusted.key()))
            .filter(factor_attempt::Column::LockedUntil.gt(self.now))
            .into_query()
    }
}

/// How many members of an organization stand where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingCounts {
    pub policy: CodesMode,
    pub members: u64,
    /// Each standing with its count, in [`Standing::ALL`]'s order.
    pub standings: Vec<(Standing, u64)>,
}

impl StandingCounts {
    /// The count of `standing`.
    pub fn of(&self, standing: Standing) -> u64 {
        self.standings
            .iter()
            .find(|(s, _)| *s == standing)
            .map_or(0, |(_, count)| *count)
    }
}

/// The organization's members counted by standing, for owners and admins (the compliance
/// report's numbers and the admin home's): one statement per part of the members, whatever
/// the organization's size.
///
/// On SQLite, which runs a statement on one core, a large organization's members are split
/// by id into up to [`COUNT_PARTS_MAX`] parts of at least [`MEMBERS_PER_PART`] ids, counted
/// at once on connections of their own and added up: each statement walks one range of the
/// organization's index, so two cores answer a report of 100,000 members in about half the
/// time of one. PostgreSQL splits the one statement among its own parallel workers (a
/// `Gather` over a parallel hash join), better than ranges would: each range would hash
/// every set again.
///
/// Errors: [`AccountError::Authz`] when the viewer may not read the audit record.
pub async fn standing_counts(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<StandingCounts, AccountError> {
    let per_part = (db.get_database_backend() == DbBackend::Sqlite).then_some(MEMBERS_PER_PART);
    counts_in_parts(db, authz, viewer, now, per_part).await
}

/// [`standing_counts`] in id ranges of at least `members_per_part` ids, on any backend: how
/// the tests count a small organization in parts, to hold the parts' sum to the one
/// statement's answer.
#[cfg(feature = "testing")]
pub async fn standing_counts_in_parts(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
    members_per_part: i64,
) -> Result<StandingCounts, AccountError> {
    counts_in_parts(db, authz, viewer, now, Some(members_per_part)).await
}

/// The counts, in ranges of at least `per_part` ids counted at once, or in one statement
/// (`None`).
async fn counts_in_parts(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
    per_part: Option<i64>,
) -> Result<StandingCounts, AccountError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
        .await?;
    let policy = org_policy::current(db, viewer.org_id).await?.policy;
    let standings = Standings::new(authz, viewer.org_id, &policy, now).await?;
    let parts = match per_part {
        Some(per_part) => id_parts(db, viewer.org_id, per_part).await?,
        None => vec![None],
    };
    let parts_counted = futures_util::future::try_join_all(
        parts.into_iter().map(|ids| count_part(db, &standings, ids)),
    )
    .await?;
    // Each column added up over the parts.
    let mut totals = vec![0u64; counted_standings().count() + 1];
    for part in parts_counted {
        for (total, count) in totals.iter_mut().zip(part) {
            *total += count;
        }
    }
    let members = totals[0];
    let of = |standing: Standing| {
        counted_standings()
            .position(|counted| counted == standing)
            .map_or(0, |n| totals[n + 1])
    };
    let standings_counted = Standing::ALL
        .into_iter()
        .map(|standing| {
            let count = match rest_of(standing) {
                Some(other) => members.saturating_sub(of(other)),
                None => of(standing),
            };
            (standing, count)
        })
        .collect();
    Ok(StandingCounts {
        policy: standings.codes,
        members,
        standings: standings_counted,
    })
}

/// The fewest member ids one part of [`standing_counts`] covers: below this a second
/// statement costs more than it saves.
pub const MEMBERS_PER_PART: i64 = 25_000;

/// The most parts [`standing_counts`] counts at once (and never more than the cores).
pub const COUNT_PARTS_MAX: usize = 4;

/// A standing counted as the members not in another: its condition is that one's negation,
/// never `NULL` (see [`crate::backup_codes::standing::has_set_in_force`]), so its count is
/// `members − other` and the statement need not evaluate it.
const fn rest_of(standing: Standing) -> Option<Standing> {
    match standing {
        Standing::WithoutCodes => Some(Standing::HoldingCodes),
        _ => None,
    }
}

/// The standings the statement counts, in [`Standing::ALL`]'s order (its columns after
/// `members`): those not counted as the rest of another.
fn counted_standings() -> impl Iterator<Item = Standing> {
    Standing::ALL
        .into_iter()
        .filter(|standing| rest_of(*standing).is_none())
}

/// The organization's member ids split into the parts [`standing_counts`] counts at once,
/// each of at least `per_part` ids: inclusive ranges, in order, covering every member (one
/// range for a small organization; none for an organization without members).
async fn id_parts(
    db: &DatabaseConnection,
    org_id: i32,
    per_part: i64,
) -> Result<Vec<Option<RangeInclusive<i32>>>, AccountError> {
    let bounds: Option<(Option<i32>, Option<i32>)> = user_account::Entity::find()
        .select_only()
        .column_as(user_account::Column::Id.min(), "low")
        .column_as(user_account::Column::Id.max(), "high")
        .filter(user_account::Column::OrgId.eq(org_id))
        .into_tuple()
        .one(db)
        .await?;
    let Some((Some(low), Some(high))) = bounds else {
        // No members: nothing to count.
        return Ok(Vec::new());
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(split_ids(low, high, cores, per_part)
        .into_iter()
        .map(Some)
        .collect())
}

/// `low..=high` split into inclusive ranges, in order, without gaps or overlaps: one per
/// `per_part` ids, at most one per core and [`COUNT_PARTS_MAX`], at least one.
fn split_ids(low: i32, high: i32, cores: usize, per_part: i64) -> Vec<RangeInclusive<i32>> {
    let (low, high) = (i64::from(low), i64::from(high));
    let span = high - low + 1;
    let most = i64::try_from(cores.min(COUNT_PARTS_MAX))
        .unwrap_or(1)
        .max(1);
    let parts = (span / per_part.max(1)).clamp(1, most);
    let step = (span + parts - 1) / parts;
    (0..parts)
        .map(|n| {
            let from = low + n * step;
            let to = (from + step - 1).min(high);
            // Within `low..=high`, so both fit an i32.
            i32::try_from(from).unwrap_or(i32::MAX)..=i32::try_from(to).unwrap_or(i32::MAX)
        })
        .collect()
}

/// One statement's counts over the organization's members with ids in `ids` (`None`: every
/// member): `members` first, then [`counted_standings`]'s standings, each a
/// [`count_where`]: one pass counts every standing.
async fn count_part(
    db: &DatabaseConnection,
    standings: &Standings,
    ids: Option<RangeInclusive<i32>>,
) -> Result<Vec<u64>, AccountError> {
    let mut select = user_account::Entity::find()
        .select_only()
        .join(JoinType::LeftJoin, set_in_force_join())
        .filter(user_account::Column::OrgId.eq(standings.org_id));
    if let Some(ids) = ids {
        select = select.filter(user_account::Column::Id.between(*ids.start(), *ids.end()));
    }
    let mut query = select.into_query();
    query.expr_as(
        Func::count(Expr::col((user_account::Entity, user_account::Column::Id))),
        Alias::new("members"),
    );
    let backend = db.get_database_backend();
    for (n, standing) in counted_standings().enumerate() {
        query.expr_as(
            count_where(backend, standings.condition(standing)),
            Alias::new(format!("s{n}")),
        );
    }
    let row = db
        .query_one(backend.build(&query))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the counts' row".to_owned()))?;
    let count = |column: &str| -> Result<u64, AccountError> {
        let value: i64 = row.try_get("", column)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    std::iter::once(count("members"))
        .chain((0..counted_standings().count()).map(|n| count(&format!("s{n}"))))
        .collect()
}

/// Members the compliance download reads per statement (well under SQLite's 32,766 bound
/// parameters for the page's follow-up reads).
pub const EXPORT_CHUNK: u64 = 1000;

/// The compliance download's first line.
pub const CSV_HEADER: &str =
    "email,role,mfa,codes_remaining,set_expired,compliant,exception,limited_from";

/// One member's line of the compliance download, in [`CSV_HEADER`]'s columns (no line end).
pub fn csv_line(row: &MemberStatus) -> String {
    crate::spreadsheet::record([
        row.member.email.clone(),
        row.member.role.as_str().to_owned(),
        row.member.mfa_enabled.to_string(),
        row.codes_remaining
            .map(|n| n.to_string())
            .unwrap_or_default(),
        row.set_expired.to_string(),
        row.compliant.to_string(),
        match row.exception {
            Some(true) => "codes allowed",
            Some(false) => "no codes",
            None => "",
        }
        .to_owned(),
        // Under "Required" with a date, when a member who does not comply is (or was) limited.
        row.deadline
            .map(|deadline| deadline.when().to_rfc3339())
            .unwrap_or_default(),
    ])
}

/// Up to [`EXPORT_CHUNK`] members after the member `after`, each with their standing, for
/// the compliance download: the gate is asked again for every chunk, so a download started
/// by someone who loses the right stops.
///
/// Errors: [`AccountError::NotAllowed`] for a viewer who may not read the audit record.
pub async fn export_chunk(
    db: &sea_orm::DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    after: Option<i32>,
    now: DateTime<Utc>,
) -> Result<super::MembersPage, AccountError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
        .await?;
    super::page_of(
        db,
        authz,
        viewer,
        super::Filter::default(),
        after,
        EXPORT_CHUNK,
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id of `low..=high` in exactly one part, the parts in order, as many as the size
    /// and the cores allow.
    #[test]
    fn member_ids_split_into_parts_that_cover_each_id_once() {
        let per = i32::try_from(MEMBERS_PER_PART).unwrap();
        // (low, high, cores, parts expected)
        let cases = [
            (1, 1, 2, 1),
            (1, 10, 8, 1),
            (1, per * 2 - 1, 2, 1),
            (1, per * 2, 2, 2),
            (1, 100_000, 2, 2),
            (7, 100_006, 1, 1),
            (1, 100_000, 8, 4),
            (1, 1_000_000, 3, 3),
            (1, 1_000_000, 0, 1),
            (i32::MAX - 200_000, i32::MAX, 4, 4),
            (3, 60_001, 4, 2),
        ];
        for (low, high, cores, expected) in cases {
            let parts = split_ids(low, high, cores, MEMBERS_PER_PART);
            assert_eq!(parts.len(), expected, "{low}..={high} on {cores} cores");
            assert_eq!(*parts[0].start(), low);
            assert_eq!(*parts.last().unwrap().end(), high);
            for pair in parts.windows(2) {
                assert_eq!(*pair[1].start(), pair[0].end() + 1, "{parts:?}");
            }
            assert!(
                parts.iter().all(|part| part.start() <= part.end()),
                "{parts:?}"
            );
        }
    }
}
