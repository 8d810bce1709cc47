//! The compliance report at any size: how many members stand where, counted by the
//! database in one statement, and each count's members as a filtered view of the console
//! (keyset-paged like the rest of it).
//!
//! Each [`Standing`] is one condition on `user_account` rows, built from the same rules the
//! console applies to one member: [`CodePolicy::expired_condition`] for an expired set, the
//! gate's [`Allowance`] for who may use codes, [`crate::backup_codes::compliant`]'s definition for
//! "Required". The tests hold the counts to the console's answers member by member.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect,
    QueryTrait, RelationTrait,
    sea_query::{Alias, Expr, ExprTrait, Func, IntoCondition, Query, SelectStatement, SimpleExpr},
};
use serde::{Deserialize, Serialize};

use crate::{
    accounts::AccountError,
    authz::{Action, Allowance, Authz},
    backup_codes::standing::CodePolicy,
    entity::{backup_code, backup_code_set, factor_attempt, policy_exception, user_account},
    identity::Member,
    lockout::Attempter,
    members::MemberStatus,
    org_policy::{self, CodesMode, OrgPolicy},
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
}

impl Standing {
    /// Every standing, in the report's order.
    pub const ALL: [Self; 8] = [
        Self::WithMfa,
        Self::HoldingCodes,
        Self::LowOnCodes,
        Self::ExpiredSets,
        Self::Locked,
        Self::NonCompliant,
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
        }
    }
}

/// What the standings' conditions depend on, read once for a report or a page.
pub(crate) struct Standings {
    codes: CodesMode,
    rules: CodePolicy,
    /// Who the gate lets generate codes: the members "Required" binds.
    usable: Allowance,
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
        Ok(Self {
            codes: policy.codes,
            rules: policy.code_policy(),
            usable: authz.allowance(org_id, Action::GenerateBackupCodes).await?,
            now,
        })
    }

    /// The members of `standing`, as a condition on `user_account` rows.
    pub(crate) fn condition(&self, standing: Standing) -> Condition {
        let id = || Expr::col((user_account::Entity, user_account::Column::Id));
        let with_mfa = || Condition::all().add(user_account::Column::TotpEnabledAt.is_not_null());
        match standing {
            Standing::WithMfa => with_mfa(),
            Standing::HoldingCodes => Condition::all().add(self.holds()),
            Standing::WithoutCodes => Condition::all().add(self.holds().not()),
            Standing::LowOnCodes => Condition::all().add(id().in_subquery(self.low())),
            Standing::ExpiredSets => Condition::all().add(id().in_subquery(self.expired())),
            Standing::Locked => Condition::all().add(id().in_subquery(self.locked())),
            Standing::Exempted => Condition::all().add(
                id().in_subquery(
                    Query::select()
                        .column(policy_exception::Column::UserId)
                        .from(policy_exception::Entity)
                        .to_owned(),
                ),
            ),
            // `backup_codes::compliant`, negated: bound by "Required", MFA on, allowed to
            // use codes, and holding none that work.
            Standing::NonCompliant if self.codes == CodesMode::Required => Condition::all()
                .add(with_mfa())
                .add(self.usable())
                .add(self.holds().not()),
            Standing::NonCompliant => Condition::all().add(Expr::value(false)),
        }
    }

    /// Members the gate lets use codes: an exception's answer, else their role's.
    fn usable(&self) -> Condition {
        let named = self.usable.named.iter().map(|(id, _)| *id);
        let named_allowed = self
            .usable
            .named
            .iter()
            .filter(|(_, allowed)| *allowed)
            .map(|(id, _)| *id);
        let roles = self.usable.roles.iter().map(|role| role.as_str());
        Condition::any()
            .add(user_account::Column::Id.is_in(named_allowed))
            .add(
                Condition::all()
                    .add(user_account::Column::Id.is_not_in(named))
                    .add(user_account::Column::Role.is_in(roles)),
            )
    }

    /// Sets in force that have not expired.
    fn working_sets(&self) -> Condition {
        Condition::all()
            .add(backup_code_set::Column::EndedAt.is_null())
            .add(self.rules.expired_condition(self.now).not())
    }

    /// Whether the member of the row holds a working set with an unused code: `EXISTS`,
    /// correlated on the member, read through the one set in force per member. Not `IN` or
    /// `NOT IN` over every unused code: PostgreSQL cannot hash a `NOT IN` of hundreds of
    /// thousands of rows and scans them again for each member (minutes at 100,000 members).
    fn holds(&self) -> SimpleExpr {
        let unused_code = backup_code_set::Entity::find()
            .select_only()
            .column(backup_code_set::Column::UserId)
            .join(
                JoinType::InnerJoin,
                backup_code_set::Relation::BackupCode.def(),
            )
            .filter(self.working_sets())
            .filter(backup_code::Column::UsedAt.is_null())
            .filter(
                Expr::col((backup_code_set::Entity, backup_code_set::Column::UserId))
                    .equals((user_account::Entity, user_account::Column::Id)),
            )
            .into_query();
        Expr::exists(unused_code)
    }

    /// Owners of a working set with at most the low-codes threshold unused.
    fn low(&self) -> SelectStatement {
        let unused = Func::count(Expr::col((backup_code::Entity, backup_code::Column::Id)));
        let threshold = i64::from(self.rules.low_codes_threshold);
        backup_code_set::Entity::find()
            .select_only()
            .column(backup_code_set::Column::UserId)
            .join(
                JoinType::LeftJoin,
                backup_code_set::Relation::BackupCode
                    .def()
                    .on_condition(|_set, code| {
                        Expr::col((code, backup_code::Column::UsedAt))
                            .is_null()
                            .into_condition()
                    }),
            )
            .filter(self.working_sets())
            .group_by(backup_code_set::Column::Id)
            .group_by(backup_code_set::Column::UserId)
            .having(SimpleExpr::from(unused).lte(threshold))
            .into_query()
    }

    /// Owners of a set in force that has expired.
    fn expired(&self) -> SelectStatement {
        backup_code_set::Entity::find()
            .select_only()
            .column(backup_code_set::Column::UserId)
            .filter(backup_code_set::Column::EndedAt.is_null())
            .filter(self.rules.expired_condition(self.now))
            .into_query()
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
/// report's numbers and the admin home's): one statement, whatever the organization's size.
///
/// Errors: [`AccountError::Authz`] when the viewer may not read the audit record.
pub async fn standing_counts(
    db: &impl ConnectionTrait,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<StandingCounts, AccountError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
        .await?;
    let policy = org_policy::current(db, viewer.org_id).await?.policy;
    let standings = Standings::new(authz, viewer.org_id, &policy, now).await?;
    let mut query = Query::select();
    query
        .expr_as(
            Func::count(Expr::col((user_account::Entity, user_account::Column::Id))),
            Alias::new("members"),
        )
        .from(user_account::Entity)
        .and_where(user_account::Column::OrgId.eq(viewer.org_id));
    for (n, standing) in Standing::ALL.into_iter().enumerate() {
        // SUM(CASE WHEN … THEN 1 ELSE 0 END): one pass counts every standing.
        let counted = Expr::case(standings.condition(standing), 1).finally(0);
        query.expr_as(
            Func::coalesce([Func::sum(counted).into(), Expr::val(0).into()]),
            Alias::new(format!("s{n}")),
        );
    }
    let backend = db.get_database_backend();
    let row = db
        .query_one(backend.build(&query))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the counts' row".to_owned()))?;
    let count = |column: &str| -> Result<u64, AccountError> {
        let value: i64 = row.try_get("", column)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    let mut counted = Vec::with_capacity(Standing::ALL.len());
    for (n, standing) in Standing::ALL.into_iter().enumerate() {
        counted.push((standing, count(&format!("s{n}"))?));
    }
    Ok(StandingCounts {
        policy: standings.codes,
        members: count("members")?,
        standings: counted,
    })
}

/// Members the compliance download reads per statement (well under SQLite's 32,766 bound
/// parameters for the page's follow-up reads).
pub const EXPORT_CHUNK: u64 = 1000;

/// The compliance download's first line.
pub const CSV_HEADER: &str = "email,role,mfa,codes_remaining,set_expired,compliant,exception";

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
    super::page_of(db, authz, viewer, "", None, after, EXPORT_CHUNK, now).await
}
