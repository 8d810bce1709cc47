//! What saving a policy would do, counted and listed before it is saved: codes that stop
//! working, sets that expire at once, members who become non-compliant.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Alias, Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use super::{CodesMode, OrgPolicy, PolicyChangeError, current, exceptions, grace};
use crate::{
    authz::{Action, Authz},
    backup_codes::{
        Scope, SetInForce, sets_in_force,
        standing::{set_in_force_join, unused_code_in_force, unused_codes_in_force},
    },
    db::{count_where, sum_where},
    entity::user_account,
    identity::Member,
    notifications::rendering::readable_time,
};

/// What saving a policy would do, counted and listed, before it is saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    /// One sentence per effect, e.g. "3 members hold 24 unused codes that will stop working."
    pub effects: Vec<String>,
    /// The members each effect is about, by the effect's index.
    pub members: Vec<Vec<String>>,
}

/// How many members to name under each effect.
const LISTED_MEMBERS: usize = 20;

/// What saving `policy` over the one in force would do to the organization's members: one
/// statement counts every effect (whatever the organization's size), then one short
/// statement per effect that has members names its first [`LISTED_MEMBERS`], by id.
///
/// Each effect is a condition on `user_account` rows joined to their set in force
/// ([`set_in_force_join`]), written from the rules the console applies to one member: a set's
/// expiry ([`crate::backup_codes::CodePolicy::expired_condition`]), "Required"'s
/// ([`crate::backup_codes::compliant`]) and its deadline ([`grace::deadline`]). The tests
/// hold the counts and names to those rules member by member.
pub async fn impact(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    policy: &OrgPolicy,
    now: DateTime<Utc>,
) -> Result<Impact, PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    let org_id = actor.org_id;
    let before = current(db, org_id).await?.policy;
    let rows = Rows { org_id, now };
    let mut effects: Vec<Effect> = Vec::new();

    if policy.codes == CodesMode::NotAllowed && before.codes != CodesMode::NotAllowed {
        // `disallowed_holdings`: unused codes, unless an exception allows them.
        effects.push(Effect::always(
            unused_code_in_force().add(rows.exception("allow").not()),
            |n, codes| {
                format!(
                    "{n} {} {codes} unused {} that will stop working.",
                    plural(n, "member holds", "members hold"),
                    plural(codes, "code", "codes"),
                )
            },
        ));
    }
    if age_lowered(&before, policy) {
        effects.push(Effect::always(
            rows.expired(policy).add(rows.expired(&before).not()),
            |n, _| format!("{n} {} at once.", plural(n, "set expires", "sets expire")),
        ));
    }
    // A longer or no maximum age never revives an expired set (saving records expiries
    // first), and the preview says so rather than "no member affected".
    let age_raised = before.max_set_age_days > 0
        && (policy.max_set_age_days == 0 || policy.max_set_age_days > before.max_set_age_days);
    if age_raised {
        effects.push(Effect::if_any(rows.expired(&before), |n, _| {
            format!(
                "{n} expired {} expired: a longer maximum age does not bring {} back, so {} \
                 must generate new codes.",
                plural(n, "set stays", "sets stay"),
                plural(n, "it", "them"),
                plural(n, "its member", "their members"),
            )
        }));
    }
    if before.codes.withholds_codes() && !policy.codes.withholds_codes() {
        // Codes withheld by "Not allowed" work again, except for members whose exception
        // decides either way; expired sets stay expired.
        effects.push(Effect::always(
            unused_code_in_force()
                .add(rows.expired(policy).not())
                .add(rows.exception("allow").not())
                .add(rows.exception("deny").not()),
            |n, codes| {
                format!(
                    "{n} {} {codes} unused {} that will work again.",
                    plural(n, "member holds", "members hold"),
                    plural(codes, "code", "codes"),
                )
            },
        ));
    }
    // "Required" binds members with MFA whom no exception withholds codes from (the role's
    // word is the gate's, and "Required" is read as it would be after the save).
    let bound = || {
        Condition::all()
            .add(rows.exception("deny").not())
            .add(rows.compliant(policy).not())
    };
    if policy.codes == CodesMode::Required {
        let mut newly = bound();
        if before.codes == CodesMode::Required {
            newly = newly.add(rows.compliant(&before));
        }
        effects.push(Effect::always(newly, |n, _| {
            format!(
                "{n} {} non-compliant.",
                plural(n, "member becomes", "members become")
            )
        }));
    }
    // Who "Required"'s date limits: at once (their deadline has passed), or on the date.
    let deadline_moved = before.codes != policy.codes
        || before.required_from != policy.required_from
        || before.grace_days != policy.grace_days;
    if let Some(from) = policy
        .required_from
        .filter(|_| policy.codes == CodesMode::Required)
        .map(grace::start_of)
    {
        // `grace::deadline`: the later of the date and joining plus the grace days.
        let grace_days = Duration::days(policy.grace_days.into());
        let joined_by = |at: DateTime<Utc>| user_account::Column::CreatedAt.lte(at - grace_days);
        if from <= now {
            // Newly limited: all bound past their deadline when it moved, else those the
            // save makes non-compliant (a shorter maximum age, say).
            let mut limited = bound().add(joined_by(now));
            if !deadline_moved {
                limited = limited.add(rows.compliant(&before));
            }
            effects.push(Effect::if_any(limited, |n, _| {
                format!(
                    "{n} {} no working backup code: from the moment you save, until they \
                     generate a set, they can use only their MFA settings.",
                    plural(n, "member holds", "members hold"),
                )
            }));
        } else if deadline_moved {
            let on = readable_time(from);
            effects.push(Effect::always(bound().add(joined_by(from)), move |n, _| {
                format!(
                    "{n} {} no working backup code: from {on}, until they generate a set, \
                     they will be able to use only their MFA settings.",
                    plural(n, "member holds", "members hold"),
                )
            }));
        }
    }
    // Who a backup-code sign-in would ask for a new set first: a usable set at or below
    // the threshold, under "New set required when codes run low".
    if policy.replace_when_low {
        let asked = rows
            .asked_for_new_set(policy)
            .add(rows.asked_for_new_set(&before).not());
        let words = |n: u64, _| {
            format!(
                "{n} {} at or below the low-codes threshold: their next backup-code sign-in \
                 will ask for a new set before anything else.",
                plural(n, "member is", "members are"),
            )
        };
        effects.push(if before.replace_when_low {
            Effect::if_any(asked, words)
        } else {
            Effect::always(asked, words)
        });
    }

    let mut impact = Impact::default();
    for (effect, (count, codes)) in effects.iter().zip(rows.count(db, &effects).await?) {
        if count == 0 && !effect.always {
            continue;
        }
        impact.effects.push((effect.words)(count, codes));
        impact.members.push(if count == 0 {
            Vec::new()
        } else {
            rows.first_emails(db, effect.members.clone()).await?
        });
    }
    let add = |impact: &mut Impact, effect: String| {
        impact.effects.push(effect);
        impact.members.push(Vec::new());
    };
    if before.recovery_code_approval && !policy.recovery_code_approval {
        add(
            &mut impact,
            format!(
                "Two-admin approval stays on for {} hours after saving, then ends: until then \
             every recovery code still needs a second admin.",
                super::APPROVAL_OFF_DELAY.num_hours()
            ),
        );
    }
    let (was, is) = (&before.recovery_codes, &policy.recovery_codes);
    if was.issuers.codes_on() && !is.issuers.codes_on() {
        add(
            &mut impact,
            "Recovery codes turn off: nobody may issue one, and codes already issued stop \
             working until they are turned on again."
                .to_owned(),
        );
    } else if is.issuers.breadth() < was.issuers.breadth() {
        add(
            &mut impact,
            format!(
                "Only {} may issue recovery codes from now on; codes already issued keep working.",
                is.issuers.label().to_lowercase()
            ),
        );
    }
    if policy.codes_per_set != before.codes_per_set {
        add(
            &mut impact,
            format!(
                "New sets will hold {} codes; sets already generated keep theirs.",
                policy.codes_per_set
            ),
        );
    }
    if impact.effects.is_empty() {
        add(&mut impact, "No member's codes are affected.".to_owned());
    }
    Ok(impact)
}

/// One effect of a save on members: who it is about, and its sentence from their count and
/// the unused codes they hold.
struct Effect {
    members: Condition,
    /// Said even when no member is affected ("0 sets expire at once.").
    always: bool,
    words: Box<dyn Fn(u64, u64) -> String + Send + Sync>,
}

impl Effect {
    fn always(
        members: Condition,
        words: impl Fn(u64, u64) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            members,
            always: true,
            words: Box::new(words),
        }
    }

    fn if_any(
        members: Condition,
        words: impl Fn(u64, u64) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            always: false,
            ..Self::always(members, words)
        }
    }
}

/// The organization's members joined to their set in force, at a moment: the conditions
/// the effects are written in, and the two reads.
struct Rows {
    org_id: i32,
    now: DateTime<Utc>,
}

impl Rows {
    /// A set in force that has expired under `policy`.
    fn expired(&self, policy: &OrgPolicy) -> Condition {
        policy.code_policy().expired_set_condition(self.now)
    }

    /// A working code under `policy`.
    fn holds(&self, policy: &OrgPolicy) -> Condition {
        policy.code_policy().holds_condition(self.now)
    }

    /// `backup_codes::compliant` under "Required", for a member the gate lets use codes:
    /// no MFA, or a working code.
    fn compliant(&self, policy: &OrgPolicy) -> Condition {
        Condition::any()
            .add(user_account::Column::TotpEnabledAt.is_null())
            .add(self.holds(policy))
    }

    /// An exception with `effect` (`allow` or `deny`) decides for the member: theirs, or
    /// their groups'.
    fn exception(&self, effect: &str) -> Condition {
        exceptions::excepted(self.org_id, Some(effect))
    }

    /// Whom a backup-code sign-in would ask for a new set first under `policy`: a working
    /// set at or below the low-codes threshold, codes not withheld from them.
    fn asked_for_new_set(&self, policy: &OrgPolicy) -> Condition {
        if !policy.replace_when_low || policy.codes.withholds_codes() {
            return Condition::all().add(Expr::value(false));
        }
        self.holds(policy)
            .add(unused_codes_in_force().lte(i32::from(policy.low_codes_threshold)))
            .add(self.exception("deny").not())
    }

    /// The organization's members joined to their set in force.
    fn select(&self) -> sea_orm::Select<user_account::Entity> {
        user_account::Entity::find()
            .select_only()
            .join(JoinType::LeftJoin, set_in_force_join())
            .filter(user_account::Column::OrgId.eq(self.org_id))
    }

    /// Each effect's members counted, and the unused codes they hold: one statement.
    async fn count(
        &self,
        db: &impl ConnectionTrait,
        effects: &[Effect],
    ) -> Result<Vec<(u64, u64)>, DbErr> {
        if effects.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = self.select().into_query();
        let backend = db.get_database_backend();
        // One pass counts every effect: its members, and the unused codes they hold.
        for (n, effect) in effects.iter().enumerate() {
            query.expr_as(
                count_where(backend, effect.members.clone()),
                Alias::new(format!("n{n}")),
            );
            query.expr_as(
                sum_where(backend, unused_codes_in_force(), effect.members.clone()),
                Alias::new(format!("c{n}")),
            );
        }
        let row = db
            .query_one(backend.build(&query))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the counts' row".to_owned()))?;
        let number = |column: String| -> Result<u64, DbErr> {
            let value: i64 = row.try_get("", &column)?;
            Ok(u64::try_from(value).unwrap_or(0))
        };
        (0..effects.len())
            .map(|n| Ok((number(format!("n{n}"))?, number(format!("c{n}"))?)))
            .collect()
    }

    /// The emails of the first [`LISTED_MEMBERS`] members (by id) `members` names.
    async fn first_emails(
        &self,
        db: &impl ConnectionTrait,
        members: Condition,
    ) -> Result<Vec<String>, DbErr> {
        self.select()
            .column(user_account::Column::Email)
            .filter(members)
            .order_by_asc(user_account::Column::Id)
            .limit(LISTED_MEMBERS as u64)
            .into_tuple()
            .all(db)
            .await
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Whether `after` shortens (or first sets) the maximum set age of `before`: only then can a
/// save expire sets.
fn age_lowered(before: &OrgPolicy, after: &OrgPolicy) -> bool {
    after.max_set_age_days > 0
        && (before.max_set_age_days == 0 || after.max_set_age_days < before.max_set_age_days)
}

/// The sets in force whose unused codes stop working because `after` makes backup codes
/// "Not allowed" where `before` did not; members an exception allows codes keep theirs. What
/// the save tells each of their members (the preview counts the same members in SQL).
pub(super) async fn disallowed_sets(
    db: &impl ConnectionTrait,
    org_id: i32,
    before: &OrgPolicy,
    after: &OrgPolicy,
) -> Result<Vec<SetInForce>, DbErr> {
    if after.codes != CodesMode::NotAllowed || before.codes == CodesMode::NotAllowed {
        return Ok(Vec::new());
    }
    let exempt = exceptions::exceptions_by_member(db, org_id, None).await?;
    Ok(sets_in_force(db, Scope::Organization(org_id))
        .await?
        .into_iter()
        .filter(|set| set.remaining > 0 && exempt.get(&set.member_id) != Some(&true))
        .collect())
}
