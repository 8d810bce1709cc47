//! What saving a policy would do, counted and listed before it is saved: codes that stop
//! working, sets that expire at once, members who become non-compliant.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::{
    CodesMode, OrgPolicy, PolicyChangeError, current, exceptions,
    grace::{self, Deadline},
};
use crate::{
    authz::{Action, Authz},
    backup_codes::{Scope, SetInForce, sets_in_force},
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

/// What saving `policy` over the one in force would do to the organization's members.
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
    let before = current(db, actor.org_id).await?.policy;
    let holdings = holdings(db, actor.org_id).await?;
    let exempt = exceptions::exceptions_by_member(db, actor.org_id).await?;
    let mut impact = Impact::default();
    let mut add = |effect: String, members: Vec<String>| {
        impact.effects.push(effect);
        impact
            .members
            .push(members.into_iter().take(LISTED_MEMBERS).collect());
    };

    if policy.codes == CodesMode::NotAllowed && before.codes != CodesMode::NotAllowed {
        let losing = disallowed_holdings(&holdings, &exempt, &before, policy);
        let codes: u64 = losing.iter().map(|h| u64::from(h.unused())).sum();
        add(
            format!(
                "{} {} {} unused {} that will stop working.",
                losing.len(),
                plural(losing.len() as u64, "member holds", "members hold"),
                codes,
                plural(codes, "code", "codes"),
            ),
            losing.iter().map(|h| h.email.clone()).collect(),
        );
    }
    // Each holding's standing under a policy: the same rule the members page applies.
    let standing =
        |h: &Holding, p: &OrgPolicy| h.set.as_ref().map(|set| p.code_policy().standing(set, now));
    let expired_under = |h: &Holding, p: &OrgPolicy| standing(h, p).is_some_and(|s| s.expired);
    if age_lowered(&before, policy) {
        let expiring: Vec<&Holding> = holdings
            .iter()
            .filter(|h| expired_under(h, policy) && !expired_under(h, &before))
            .collect();
        add(
            format!(
                "{} {} at once.",
                expiring.len(),
                plural(expiring.len() as u64, "set expires", "sets expire")
            ),
            expiring.iter().map(|h| h.email.clone()).collect(),
        );
    }
    // A longer or no maximum age never revives an expired set (saving records expiries
    // first), and the preview says so rather than "no member affected".
    let age_raised = before.max_set_age_days > 0
        && (policy.max_set_age_days == 0 || policy.max_set_age_days > before.max_set_age_days);
    if age_raised {
        let staying: Vec<&Holding> = holdings
            .iter()
            .filter(|h| expired_under(h, &before))
            .collect();
        if !staying.is_empty() {
            add(
                format!(
                    "{} expired {} expired: a longer maximum age does not bring {} back, \
                     so {} must generate new codes.",
                    staying.len(),
                    plural(staying.len() as u64, "set stays", "sets stay"),
                    plural(staying.len() as u64, "it", "them"),
                    plural(staying.len() as u64, "its member", "their members"),
                ),
                staying.iter().map(|h| h.email.clone()).collect(),
            );
        }
    }
    if before.codes.withholds_codes() && !policy.codes.withholds_codes() {
        // Codes withheld by "Not allowed" work again, except for members whose exception
        // decides either way; expired sets stay expired.
        let reviving: Vec<&Holding> = holdings
            .iter()
            .filter(|h| h.unused() > 0 && !expired_under(h, policy))
            .filter(|h| !exempt.contains_key(&h.member_id))
            .collect();
        let codes: u64 = reviving.iter().map(|h| u64::from(h.unused())).sum();
        add(
            format!(
                "{} {} {} unused {} that will work again.",
                reviving.len(),
                plural(reviving.len() as u64, "member holds", "members hold"),
                codes,
                plural(codes, "code", "codes"),
            ),
            reviving.iter().map(|h| h.email.clone()).collect(),
        );
    }
    if policy.codes == CodesMode::Required {
        // Exempted-out members are filtered below, so the gate's word is "usable" here.
        let compliant = |h: &Holding, p: &OrgPolicy| {
            crate::backup_codes::compliant(true, true, h.mfa_enabled, standing(h, p).as_ref())
        };
        let newly: Vec<&Holding> = holdings
            .iter()
            .filter(|h| exempt.get(&h.member_id) != Some(&false))
            .filter(|h| {
                !compliant(h, policy)
                    && (before.codes != CodesMode::Required || compliant(h, &before))
            })
            .collect();
        add(
            format!(
                "{} {} non-compliant.",
                newly.len(),
                plural(newly.len() as u64, "member becomes", "members become")
            ),
            newly.iter().map(|h| h.email.clone()).collect(),
        );
    }
    // Who "Required"'s date limits: at once (their deadline has passed), or on the date.
    let deadline_moved = before.codes != policy.codes
        || before.required_from != policy.required_from
        || before.grace_days != policy.grace_days;
    if policy.codes == CodesMode::Required && deadline_moved {
        let bound = |h: &&Holding| {
            exempt.get(&h.member_id) != Some(&false)
                && !crate::backup_codes::compliant(
                    true,
                    true,
                    h.mfa_enabled,
                    standing(h, policy).as_ref(),
                )
        };
        let deadlines: Vec<(&Holding, Deadline)> = holdings
            .iter()
            .filter(bound)
            .filter_map(|h| {
                grace::deadline(policy, h.joined_at).map(|at| (h, Deadline::at(at, now)))
            })
            .collect();
        let at_once: Vec<&Holding> = deadlines
            .iter()
            .filter(|(_, deadline)| deadline.passed())
            .map(|(h, _)| *h)
            .collect();
        if !at_once.is_empty() {
            add(
                format!(
                    "{} {} no working backup code: from the moment you save, until they \
                     generate a set, they can use only their MFA settings.",
                    at_once.len(),
                    plural(at_once.len() as u64, "member holds", "members hold"),
                ),
                at_once.iter().map(|h| h.email.clone()).collect(),
            );
        }
        if let Some(from) = policy
            .required_from
            .map(grace::start_of)
            .filter(|from| *from > now)
        {
            let on_the_date: Vec<&Holding> = deadlines
                .iter()
                .filter(|(_, deadline)| deadline.when() == from)
                .map(|(h, _)| *h)
                .collect();
            add(
                format!(
                    "{} {} no working backup code: from {}, until they generate a set, they \
                     will be able to use only their MFA settings.",
                    on_the_date.len(),
                    plural(on_the_date.len() as u64, "member holds", "members hold"),
                    readable_time(from),
                ),
                on_the_date.iter().map(|h| h.email.clone()).collect(),
            );
        }
    }
    // Who a backup-code sign-in would ask for a new set first: a usable set at or below
    // the threshold, under "New set required when codes run low".
    let asked_for_new_set = |h: &Holding, p: &OrgPolicy| {
        p.replace_when_low
            && !p.codes.withholds_codes()
            && exempt.get(&h.member_id) != Some(&false)
            && standing(h, p).is_some_and(|s| s.low && !s.expired && s.remaining > 0)
    };
    if policy.replace_when_low {
        let asked: Vec<&Holding> = holdings
            .iter()
            .filter(|h| asked_for_new_set(h, policy) && !asked_for_new_set(h, &before))
            .collect();
        if !before.replace_when_low || !asked.is_empty() {
            add(
                format!(
                    "{} {} at or below the low-codes threshold: their next backup-code \
                     sign-in will ask for a new set before anything else.",
                    asked.len(),
                    plural(asked.len() as u64, "member is", "members are"),
                ),
                asked.iter().map(|h| h.email.clone()).collect(),
            );
        }
    }
    if before.recovery_code_approval && !policy.recovery_code_approval {
        add(
            format!(
                "Two-admin approval stays on for {} hours after saving, then ends: \
                 until then every recovery code still needs a second admin.",
                super::APPROVAL_OFF_DELAY.num_hours()
            ),
            Vec::new(),
        );
    }
    if policy.codes_per_set != before.codes_per_set {
        add(
            format!(
                "New sets will hold {} codes; sets already generated keep theirs.",
                policy.codes_per_set
            ),
            Vec::new(),
        );
    }
    if impact.effects.is_empty() {
        impact
            .effects
            .push("No member's codes are affected.".to_owned());
        impact.members.push(Vec::new());
    }
    Ok(impact)
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

/// The members holding unused codes that stop working because `after` makes backup codes
/// "Not allowed" where `before` did not; members an exception allows codes keep theirs.
/// What the preview counts and what the save tells each of them.
pub(super) fn disallowed_holdings<'h>(
    holdings: &'h [Holding],
    exempt: &HashMap<i32, bool>,
    before: &OrgPolicy,
    after: &OrgPolicy,
) -> Vec<&'h Holding> {
    if after.codes != CodesMode::NotAllowed || before.codes == CodesMode::NotAllowed {
        return Vec::new();
    }
    holdings
        .iter()
        .filter(|h| h.unused() > 0 && exempt.get(&h.member_id) != Some(&true))
        .collect()
}

/// One member's backup codes, for the impact preview and the save's notices.
pub(super) struct Holding {
    pub(super) member_id: i32,
    pub(super) email: String,
    mfa_enabled: bool,
    joined_at: DateTime<Utc>,
    pub(super) set: Option<SetInForce>,
}

impl Holding {
    pub(super) fn unused(&self) -> u32 {
        self.set.as_ref().map_or(0, |set| set.remaining)
    }
}

/// Every member of the organization with their set in force, if any: two statements that
/// bind only the organization, however many members it has.
pub(super) async fn holdings(
    db: &impl ConnectionTrait,
    org_id: i32,
) -> Result<Vec<Holding>, DbErr> {
    // Id, email, when MFA was turned on, when they joined.
    type Row = (i32, String, Option<DateTime<Utc>>, DateTime<Utc>);
    let members: Vec<Row> = user_account::Entity::find()
        .select_only()
        .column(user_account::Column::Id)
        .column(user_account::Column::Email)
        .column(user_account::Column::TotpEnabledAt)
        .column(user_account::Column::CreatedAt)
        .filter(user_account::Column::OrgId.eq(org_id))
        .order_by_asc(user_account::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut sets: HashMap<i32, SetInForce> = sets_in_force(db, Scope::Organization(org_id))
        .await?
        .into_iter()
        .map(|set| (set.member_id, set))
        .collect();
    Ok(members
        .into_iter()
        .map(|(member_id, email, mfa_on, joined_at)| Holding {
            member_id,
            email,
            mfa_enabled: mfa_on.is_some(),
            joined_at,
            set: sets.remove(&member_id),
        })
        .collect())
}
