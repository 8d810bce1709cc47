//! The members console for owners and admins: each member's MFA and backup codes at a
//! glance, found by search and paged by key (so an organization of 100,000 stays fast), and
//! what an admin does about one: revoke their codes, reset their MFA, unlock their sign-in,
//! change their role.
//!
//! Only owners act on admins and owners; nobody acts on another organization's members (they
//! read as no member at all) or on themselves here.

pub mod reminders;
pub mod report;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use crate::{
    accounts::AccountError,
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, Authz},
    backup_codes::{self, Scope, sets_in_force},
    command::{Attempt, Command},
    entity::{group_member, user_account},
    identity::{Member, Role},
    input::single_line,
    lockout::{self, Factor},
    org_policy::{self, CodesMode},
    recovery_codes::stand_ins::{EndReason, end_stand_ins},
};

use self::report::Standings;
#[cfg(feature = "testing")]
pub use self::report::standing_counts_in_parts;
pub use self::report::{
    COUNT_PARTS_MAX, MEMBERS_PER_PART, Standing, StandingCounts, csv_line, export_chunk,
    standing_counts,
};

/// Members per page.
pub const PAGE_SIZE: u64 = 50;
/// Longest search accepted.
const MAX_SEARCH_CHARS: usize = 254;

/// One member as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub member: Member,
    /// Unused codes of their set in force, if they hold one.
    pub codes_remaining: Option<u32>,
    pub set_generated_at: Option<DateTime<Utc>>,
    pub last_code_used_at: Option<DateTime<Utc>>,
    pub set_expired: bool,
    /// At or below the organization's low-codes threshold.
    pub codes_low: bool,
    /// Meets the organization's policy (always, unless codes are "Required").
    pub compliant: bool,
    /// Not compliant, and "Required" sets a date: their deadline, ahead (in grace, with the
    /// days left) or passed (their session reaches only their MFA settings).
    #[serde(default)]
    pub deadline: Option<crate::org_policy::grace::Deadline>,
    /// The exception that decides for this member, their own or else their groups' (deny
    /// wins between two groups), as the gate applies it: codes allowed (true) or not (false).
    pub exception: Option<bool>,
    /// Sign-in factors locked after wrong attempts, and until when.
    #[serde(default)]
    pub locked: Vec<(Factor, DateTime<Utc>)>,
    /// The viewer may revoke their codes, reset their MFA and change their role.
    pub manageable: bool,
    /// The viewer may end the locks on their sign-in factors.
    #[serde(default)]
    pub unlockable: bool,
    /// The viewer may remove them.
    pub removable: bool,
}

/// One page of members, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersPage {
    pub rows: Vec<MemberStatus>,
    /// The id after which the next page starts, if there is one.
    pub next_after: Option<i32>,
}

/// Which members a page lists: all of the organization's, unless narrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Part of their email address (any case); empty for everyone.
    pub search: &'a str,
    /// Those who stand there (the compliance report's counts, listed).
    pub standing: Option<Standing>,
    /// Those in this group of the organization (another organization's lists nobody).
    pub group: Option<i32>,
}

/// Members of `viewer`'s organization that `filter` lets through, ordered by id, after the
/// member `after` (keyset pagination: each page is an index range scan, however deep).
pub async fn page(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    filter: Filter<'_>,
    after: Option<i32>,
    now: DateTime<Utc>,
) -> Result<MembersPage, AccountError> {
    page_of(db, authz, viewer, filter, after, PAGE_SIZE, now).await
}

/// The member `member_id` of `viewer`'s organization as the console shows them, or `None`
/// when the organization has no such member (another organization's reads the same).
pub async fn one(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    member_id: i32,
    now: DateTime<Utc>,
) -> Result<Option<MemberStatus>, AccountError> {
    // The keyset page that starts at the member: one row, theirs if they are there.
    let page = page_of(
        db,
        authz,
        viewer,
        Filter::default(),
        member_id.checked_sub(1),
        1,
        now,
    )
    .await?;
    Ok(page.rows.into_iter().find(|row| row.member.id == member_id))
}

/// [`page`] with `limit` members a page (the report's download reads in larger ones).
pub(crate) async fn page_of(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    filter: Filter<'_>,
    after: Option<i32>,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<MembersPage, AccountError> {
    // One look at the rules' revision for the whole page, not three per row.
    let authz = &authz.refreshed().await?;
    authz
        .require(viewer, viewer.org_id, Action::ListMembers)
        .await?;
    let search = single_line("q", filter.search, MAX_SEARCH_CHARS)?.to_lowercase();
    let mut query = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(viewer.org_id))
        .order_by_asc(user_account::Column::Id)
        .limit(limit + 1);
    if let Some(after) = after {
        query = query.filter(user_account::Column::Id.gt(after));
    }
    if !search.is_empty() {
        query = query.filter(user_account::Column::Email.contains(&search));
    }
    if let Some(group) = filter.group {
        query = query.filter(
            user_account::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(group_member::Column::UserId)
                    .from(group_member::Entity)
                    .and_where(group_member::Column::GroupId.eq(group))
                    .and_where(group_member::Column::OrgId.eq(viewer.org_id))
                    .to_owned(),
            ),
        );
    }
    let policy = org_policy::current(db, viewer.org_id).await?.policy;
    if let Some(standing) = filter.standing {
        let standings = Standings::new(authz, viewer.org_id, &policy, now).await?;
        query = query
            .join(
                JoinType::LeftJoin,
                crate::backup_codes::standing::set_in_force_join(),
            )
            .filter(standings.condition(standing));
    }
    let mut rows = query.all(db).await?;
    let next_after = (rows.len() as u64 > limit).then(|| {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.last().map(|row| row.id)
    });
    let ids: Vec<i32> = rows.iter().map(|row| row.id).collect();

    // The page's sets in force, counted: one statement a page.
    let sets: HashMap<i32, backup_codes::SetInForce> = sets_in_force(db, Scope::Members(&ids))
        .await?
        .into_iter()
        .map(|set| (set.member_id, set))
        .collect();
    let mut locked: HashMap<i32, Vec<(Factor, DateTime<Utc>)>> = HashMap::new();
    for (member_id, factor, until) in lockout::locks(db, &ids, now).await? {
        locked.entry(member_id).or_default().push((factor, until));
    }
    let exceptions =
        org_policy::exceptions::exceptions_by_member(db, viewer.org_id, Some(&ids)).await?;
    let rules = policy.code_policy();

    let members = rows
        .into_iter()
        .map(Member::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let usable = authz
        .allows_each(&members, viewer.org_id, Action::GenerateBackupCodes)
        .await?;
    // What the viewer may do to a member depends on the member's role alone.
    let mut may_act: HashMap<Role, (bool, bool, bool)> = HashMap::new();
    let mut statuses = Vec::with_capacity(members.len());
    for (member, usable) in members.into_iter().zip(usable) {
        let set = sets.get(&member.id);
        let standing = set.map(|set| rules.standing(set, now));
        let compliant = backup_codes::compliant(
            policy.codes == CodesMode::Required,
            usable,
            member.mfa_enabled,
            standing.as_ref(),
        );
        let (may_manage, may_unlock, may_remove) = match may_act.get(&member.role) {
            Some(known) => *known,
            None => {
                let mut known = [false; 3];
                let asked = [
                    Action::ManageMember(member.role),
                    Action::UnlockMember(member.role),
                    Action::RemoveAccount(member.role),
                ];
                for (answer, action) in known.iter_mut().zip(asked) {
                    *answer = authz.allows(viewer, member.org_id, action).await?;
                }
                let [manage, unlock, remove] = known;
                may_act.insert(member.role, (manage, unlock, remove));
                (manage, unlock, remove)
            }
        };
        let manageable = member.id != viewer.id && may_manage;
        // A help-desk member scoped to groups unlocks those groups' members alone.
        let unlockable = member.id != viewer.id
            && may_unlock
            && authz
                .allows(viewer, viewer.org_id, Action::Assist(member.id))
                .await?;
        let removable = member.id != viewer.id && may_remove;
        let deadline = (!compliant)
            .then(|| crate::org_policy::grace::deadline_at(&policy, member.created_at, now))
            .flatten();
        statuses.push(MemberStatus {
            deadline,
            codes_low: standing.as_ref().is_some_and(|s| s.low),
            codes_remaining: standing.as_ref().map(|s| s.remaining),
            set_generated_at: standing.as_ref().map(|s| s.generated_at),
            last_code_used_at: standing.as_ref().and_then(|s| s.last_used_at),
            set_expired: standing.as_ref().is_some_and(|s| s.expired),
            compliant,
            exception: exceptions.get(&member.id).copied(),
            locked: locked.remove(&member.id).unwrap_or_default(),
            manageable,
            unlockable,
            removable,
            member,
        });
    }
    Ok(MembersPage {
        rows: statuses,
        next_after: next_after.flatten(),
    })
}

/// The audit action of a role change, done or refused.
const ROLE_CHANGED: AuditAction = AuditAction::MemberRoleChanged;

/// The member `member_id` of the actor's organization, if the gate lets the actor manage
/// them; a refusal is recorded as `action`, denied.
async fn managed(
    cmd: &Command<'_>,
    member_id: i32,
    action: AuditAction,
) -> Result<Member, AccountError> {
    acted_on(cmd, member_id, action, Action::ManageMember).await
}

/// The member `member_id` of the actor's organization, once the gate lets the actor do
/// `allowed(their role)` to them; never the actor themselves. A refusal is recorded as
/// `action`.
async fn acted_on(
    cmd: &Command<'_>,
    member_id: i32,
    action: AuditAction,
    allowed: fn(Role) -> Action,
) -> Result<Member, AccountError> {
    let actor = cmd.actor;
    // Another organization's member reads as no member at all: ids do not leak across.
    let target = crate::identity::member(cmd.db, member_id)
        .await?
        .filter(|target| target.org_id == actor.org_id)
        .ok_or(AccountError::UnknownMember)?;
    if target.id == actor.id {
        return Err(AccountError::NotAllowed);
    }
    let attempt = Attempt {
        action,
        target: Some(&target),
        details: serde_json::json!({ "role": target.role.as_str() }),
    };
    // A help-desk member scoped to groups acts for those groups' members alone.
    cmd.require_all(&[allowed(target.role), Action::Assist(target.id)], attempt)
        .await?;
    Ok(target)
}

/// Revokes a member's backup codes: their set in force stops working at once.
pub async fn revoke_codes(cmd: &Command<'_>, member_id: i32) -> Result<Member, AccountError> {
    let (db, now) = (cmd.db, cmd.now);
    let target = managed(cmd, member_id, AuditAction::BackupCodesRevoked).await?;
    let txn = db.begin().await?;
    // Revoking ends the admin-issued code too: both stand in for the second factor.
    let ended = end_stand_ins(
        &txn,
        Some(cmd.actor),
        &target,
        EndReason::CodesRevoked,
        cmd.source,
        now,
    )
    .await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::BackupCodesRevoked,
            Some(&target),
            serde_json::json!({
                "had_codes": ended.backup_codes,
                "recovery_code_ended": ended.recovery_code,
            }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

/// Resets a member's MFA: their authenticator and backup codes stop working, and they must
/// set MFA up again at their next sign-in.
pub async fn reset_mfa(cmd: &Command<'_>, member_id: i32) -> Result<Member, AccountError> {
    let (db, now) = (cmd.db, cmd.now);
    let target = managed(cmd, member_id, AuditAction::MfaReset).await?;
    let txn = db.begin().await?;
    crate::mfa::without_authenticator(user_account::Entity::update_many())
        .col_expr(user_account::Column::MfaSetupRequired, Expr::value(true))
        .filter(user_account::Column::Id.eq(target.id))
        .exec(&txn)
        .await?;
    end_stand_ins(
        &txn,
        Some(cmd.actor),
        &target,
        EndReason::MfaReset,
        cmd.source,
        now,
    )
    .await?;
    // Whoever holds their sessions may be the one who took the authenticator.
    crate::accounts::end_sessions(&txn, target.id).await?;
    cmd.record(
        &txn,
        cmd.event(AuditAction::MfaReset, Some(&target), serde_json::json!({})),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

/// Ends every lock on a member's sign-in factors (password, authenticator code, backup
/// codes) and forgets their wrong attempts, for a member who proved who they are to an
/// administrator.
pub async fn unlock(cmd: &Command<'_>, member_id: i32) -> Result<Member, AccountError> {
    let target = acted_on(
        cmd,
        member_id,
        AuditAction::MemberUnlocked,
        Action::UnlockMember,
    )
    .await?;
    end_locks(cmd.db, Some(cmd.actor), &target, cmd.source, cmd.now).await?;
    Ok(target)
}

/// [`unlock`] by the operator of the installation (`lifeline unlock`), for the member with
/// `email` in organization `org_id`: for an organization whose only owner is locked out,
/// with nobody to unlock them. Recorded as `member.unlocked` with no actor.
pub async fn unlock_by_operator(
    db: &DatabaseConnection,
    org_id: i32,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Member, AccountError> {
    let email = crate::identity::Email::parse(email)?;
    let target = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(user_account::Column::Email.eq(email.as_str()))
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()?
        .ok_or(AccountError::UnknownMember)?;
    end_locks(db, None, &target, &Source::default(), now).await?;
    Ok(target)
}

/// Ends every lock of `target` and records it, in one transaction.
async fn end_locks(
    db: &DatabaseConnection,
    actor: Option<&Member>,
    target: &Member,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let txn = db.begin().await?;
    // A write first: `unlock_all` reads the locks before it deletes them.
    crate::db::take_turns_on_member(&txn, target.id).await?;
    let unlocked = lockout::unlock_all(&txn, target.id, now).await?;
    audit::record(
        &txn,
        target.org_id,
        Event {
            action: AuditAction::MemberUnlocked,
            actor,
            target: Some(target),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "factors": unlocked.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "by": if actor.is_some() { "admin" } else { "command line" },
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Changes a member's role. The gate must let `actor` manage both the old role and the new
/// one, so only owners make or unmake admins and owners.
pub async fn change_role(
    cmd: &Command<'_>,
    member_id: i32,
    role: Role,
) -> Result<Member, AccountError> {
    let db = cmd.db;
    let target = managed(cmd, member_id, ROLE_CHANGED).await?;
    let details = serde_json::json!({ "before": target.role.as_str(), "after": role.as_str() });
    let attempt = Attempt {
        action: ROLE_CHANGED,
        target: Some(&target),
        details: details.clone(),
    };
    cmd.require(Action::ManageMember(role), attempt).await?;
    if target.role == role {
        return Ok(target);
    }
    let txn = db.begin().await?;
    // Role changes take turns with scoping (`groups::set_scope` reads the role under the
    // same turn), so that no scope outlives the help-desk role.
    crate::db::take_turns_on_organization(&txn, target.org_id).await?;
    if role != Role::Owner {
        crate::accounts::keep_an_owner(&txn, target.org_id, target.id).await?;
    }
    // A scope is the help desk's: in another role they assist as that role does.
    if role != Role::Helpdesk {
        crate::groups::end_scope(&txn, target.org_id, target.id).await?;
    }
    user_account::Entity::update_many()
        .col_expr(user_account::Column::Role, Expr::value(role.as_str()))
        .filter(user_account::Column::Id.eq(target.id))
        .exec(&txn)
        .await?;
    cmd.record(
        &txn,
        cmd.event(
            ROLE_CHANGED,
            Some(&target),
            serde_json::json!({ "before": target.role.as_str(), "after": role.as_str() }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(Member { role, ..target })
}

/// Where an organization stands against its backup-code policy, for a compliance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// How many members stand where; each standing's members are a filtered page of the
    /// console ([`page`]) and the whole list a download ([`report::export_chunk`]).
    pub counts: StandingCounts,
    /// Redemptions and refused codes per day, oldest first, over the last 30 days.
    pub days: Vec<DailyCodes>,
}

/// One day of backup-code use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCodes {
    pub day: chrono::NaiveDate,
    pub redeemed: u32,
    pub refused: u32,
}

/// Days the report's chart covers.
pub const REPORT_DAYS: i64 = 30;

/// The organization's compliance report, for owners and admins: counted by the database,
/// so it reads in the same few statements at 10 members or 100,000.
///
/// Errors: [`AccountError::NotAllowed`] for a viewer who may not read the audit record.
pub async fn compliance(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<ComplianceReport, AccountError> {
    // The days' counts are read while the members are counted.
    let (counts, days) = tokio::try_join!(
        standing_counts(db, authz, viewer, now),
        code_use_by_day(db, viewer.org_id, now),
    )?;
    Ok(ComplianceReport { counts, days })
}

/// Redemptions and refused codes in organization `org_id` per day (UTC), oldest first, over
/// the [`REPORT_DAYS`] days up to `now`: one row a day, counted as the events were written
/// (`audit::daily`), never the events themselves.
pub(crate) async fn code_use_by_day(
    db: &DatabaseConnection,
    org_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<DailyCodes>, AccountError> {
    let start = (now - chrono::Duration::days(REPORT_DAYS - 1)).date_naive();
    let counted: HashMap<chrono::NaiveDate, (u32, u32)> =
        crate::audit::daily::since(db, org_id, start)
            .await?
            .into_iter()
            .map(|(day, redeemed, refused)| (day, (redeemed, refused)))
            .collect();
    let days = (0..REPORT_DAYS)
        .filter_map(|offset| start.checked_add_days(chrono::Days::new(offset as u64)))
        .map(|day| {
            let (redeemed, refused) = counted.get(&day).copied().unwrap_or_default();
            DailyCodes {
                day,
                redeemed,
                refused,
            }
        })
        .collect();
    Ok(days)
}
