//! An organization's own Casbin rules: what its backup-code setting and its exceptions
//! compile to, written to `casbin_rule` in the caller's transaction, and the revision bump
//! that makes every server instance reload them before its next decision.
//!
//! [`compile`] is the one definition of those rules: saving a policy writes what it returns,
//! and the export of a past date replays the same function over the policy and exceptions
//! in force then.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set, sea_query::Expr,
};

use super::{
    ASSIST, BACKUP_CODES, BACKUPS, BASELINE_POLICY, ISSUE, group_subject, member_subject,
    org_domain, recovery_code_object,
};
use crate::{
    entity::{casbin_rule, policy_revision},
    identity::Role,
};

/// The acts on backup codes that an organization's setting and exceptions govern.
pub const GOVERNED_ACTS: [&str; 2] = ["generate", "redeem"];

/// One rule of an organization's own, in Casbin's `p` layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub subject: String,
    pub domain: String,
    pub object: String,
    pub act: String,
    /// `allow` or `deny`.
    pub effect: &'static str,
}

impl Rule {
    /// As exports show it: `p, subject, domain, object, action, effect`.
    pub fn line(&self) -> String {
        line(
            "p",
            &self.subject,
            &self.domain,
            &self.object,
            &self.act,
            self.effect,
        )
    }

    fn row(&self) -> casbin_rule::ActiveModel {
        casbin_rule::ActiveModel {
            ptype: Set("p".to_owned()),
            v0: Set(self.subject.clone()),
            v1: Set(self.domain.clone()),
            v2: Set(self.object.clone()),
            v3: Set(self.act.clone()),
            v4: Set(self.effect.to_owned()),
            v5: Set(String::new()),
            ..Default::default()
        }
    }
}

/// An exception for one member: backup codes allowed for them or not, whatever the
/// organization's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberException {
    pub member_id: i32,
    pub allowed: bool,
}

/// The rules of organization `org_id` for backup codes: when `codes_withheld` (the setting
/// "Not allowed"), every role is denied generating and redeeming; each exception allows or
/// denies its member both. The member rules decide before the role rules
/// ([`super::Authz::decide`]).
pub fn compile(org_id: i32, codes_withheld: bool, exceptions: &[MemberException]) -> Vec<Rule> {
    let mut rules = if codes_withheld {
        Role::ALL
            .iter()
            .flat_map(|role| backup_code_rules(org_id, role.as_str(), "deny"))
            .collect()
    } else {
        Vec::new()
    };
    for exception in exceptions {
        let effect = if exception.allowed { "allow" } else { "deny" };
        rules.extend(backup_code_rules(
            org_id,
            &member_subject(exception.member_id),
            effect,
        ));
    }
    rules
}

fn backup_code_rules(org_id: i32, subject: &str, effect: &'static str) -> Vec<Rule> {
    GOVERNED_ACTS
        .iter()
        .map(|act| Rule {
            subject: subject.to_owned(),
            domain: org_domain(org_id),
            object: BACKUP_CODES.to_owned(),
            act: (*act).to_owned(),
            effect,
        })
        .collect()
}

/// Replaces the organization's role rules for backup codes with those [`compile`] gives for
/// `codes_withheld`, and raises the revision. `db` is the transaction saving the policy.
pub(crate) async fn write_role_rules(
    db: &impl ConnectionTrait,
    org_id: i32,
    codes_withheld: bool,
) -> Result<(), DbErr> {
    let roles = Role::ALL.map(Role::as_str);
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.is_in(roles))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V2.eq(BACKUP_CODES))
        .exec(db)
        .await?;
    insert(db, compile(org_id, codes_withheld, &[])).await?;
    bump_revision(db).await
}

/// The rules of organization `org_id` for data backups: when `admins_may` (the policy lets
/// administrators request backups, not only owners), one rule allowing the `admin` role;
/// otherwise none (the baseline allows owners).
pub fn backup_rules(org_id: i32, admins_may: bool) -> Vec<Rule> {
    if !admins_may {
        return Vec::new();
    }
    vec![Rule {
        subject: Role::Admin.as_str().to_owned(),
        domain: org_domain(org_id),
        object: BACKUPS.to_owned(),
        act: "request".to_owned(),
        effect: "allow",
    }]
}

/// Replaces the organization's backup rules with those [`backup_rules`] gives, and raises
/// the revision. `db` is the transaction saving the policy.
pub(crate) async fn write_backup_rules(
    db: &impl ConnectionTrait,
    org_id: i32,
    admins_may: bool,
) -> Result<(), DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V2.eq(BACKUPS))
        .exec(db)
        .await?;
    insert(db, backup_rules(org_id, admins_may)).await?;
    bump_revision(db).await
}

/// The rules of organization `org_id` for issuing recovery codes: each role in `barred`
/// (those the baseline lets issue that the organization's policy leaves out) is denied
/// issuing a code for any role. None when nobody is barred.
pub fn issuer_rules(org_id: i32, barred: &[Role]) -> Vec<Rule> {
    barred
        .iter()
        .flat_map(|issuer| {
            Role::ALL.iter().map(move |target| Rule {
                subject: issuer.as_str().to_owned(),
                domain: org_domain(org_id),
                object: recovery_code_object(*target),
                act: ISSUE.to_owned(),
                effect: "deny",
            })
        })
        .collect()
}

/// Replaces the organization's rules for issuing recovery codes with those
/// [`issuer_rules`] gives, and raises the revision. `db` is the transaction saving the policy.
pub(crate) async fn write_issuer_rules(
    db: &impl ConnectionTrait,
    org_id: i32,
    barred: &[Role],
) -> Result<(), DbErr> {
    let objects = Role::ALL.map(recovery_code_object);
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V2.is_in(objects))
        .exec(db)
        .await?;
    insert(db, issuer_rules(org_id, barred)).await?;
    bump_revision(db).await
}

/// The rules of a group's exception: backup codes allowed for its members or not, whatever
/// the organization's setting (a member's own exception still decides for them).
pub fn group_exception_rules(org_id: i32, group_id: i32, allowed: bool) -> Vec<Rule> {
    let effect = if allowed { "allow" } else { "deny" };
    backup_code_rules(org_id, &group_subject(group_id), effect)
}

/// Replaces a group's exception rules with those of `allowed` (none: the group follows the
/// setting), and raises the revision.
pub(crate) async fn write_group_exception(
    db: &impl ConnectionTrait,
    org_id: i32,
    group_id: i32,
    allowed: Option<bool>,
) -> Result<(), DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(group_subject(group_id)))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V2.eq(BACKUP_CODES))
        .exec(db)
        .await?;
    if let Some(allowed) = allowed {
        insert(db, group_exception_rules(org_id, group_id, allowed)).await?;
    }
    bump_revision(db).await
}

/// The rules scoping help-desk member `member_id` to `groups`: they assist those groups'
/// members (the grouping matches the member assisted against each group), and, having rules
/// of their own for `assist`, nobody else. None when `groups` is empty (not scoped).
pub fn scope_rules(org_id: i32, member_id: i32, groups: &[i32]) -> Vec<Rule> {
    groups
        .iter()
        .map(|group| Rule {
            subject: member_subject(member_id),
            domain: org_domain(org_id),
            object: group_subject(*group),
            act: ASSIST.to_owned(),
            effect: "allow",
        })
        .collect()
}

/// Replaces the scope of help-desk member `member_id` with `groups` (none: unscoped), and
/// raises the revision.
pub(crate) async fn write_scope(
    db: &impl ConnectionTrait,
    org_id: i32,
    member_id: i32,
    groups: &[i32],
) -> Result<(), DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(member_subject(member_id)))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V3.eq(ASSIST))
        .exec(db)
        .await?;
    insert(db, scope_rules(org_id, member_id, groups)).await?;
    bump_revision(db).await
}

/// Puts `members` in group `group_id` for the gate (`g, member:<id>, group:<id>, org:<id>`),
/// and raises the revision.
pub(crate) async fn write_membership(
    db: &impl ConnectionTrait,
    org_id: i32,
    group_id: i32,
    members: &[i32],
) -> Result<(), DbErr> {
    if members.is_empty() {
        return Ok(());
    }
    casbin_rule::Entity::insert_many(members.iter().map(|member| casbin_rule::ActiveModel {
        ptype: Set("g".to_owned()),
        v0: Set(member_subject(*member)),
        v1: Set(group_subject(group_id)),
        v2: Set(org_domain(org_id)),
        v3: Set(String::new()),
        v4: Set(String::new()),
        v5: Set(String::new()),
        ..Default::default()
    }))
    .exec(db)
    .await?;
    bump_revision(db).await
}

/// Takes member `member_id` out of group `group_id` for the gate, and raises the revision.
pub(crate) async fn forget_membership(
    db: &impl ConnectionTrait,
    org_id: i32,
    group_id: i32,
    member_id: i32,
) -> Result<(), DbErr> {
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("g"))
        .filter(casbin_rule::Column::V0.eq(member_subject(member_id)))
        .filter(casbin_rule::Column::V1.eq(group_subject(group_id)))
        .filter(casbin_rule::Column::V2.eq(org_domain(org_id)))
        .exec(db)
        .await?;
    bump_revision(db).await
}

/// Deletes every rule of group `group_id`: its exception, its memberships, and the help-desk
/// scopes naming it; raises the revision.
pub(crate) async fn forget_group(
    db: &impl ConnectionTrait,
    org_id: i32,
    group_id: i32,
) -> Result<(), DbErr> {
    let (group, domain) = (group_subject(group_id), org_domain(org_id));
    casbin_rule::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                // its exception
                .add(
                    casbin_rule::Column::Ptype
                        .eq("p")
                        .and(casbin_rule::Column::V0.eq(&group))
                        .and(casbin_rule::Column::V1.eq(&domain)),
                )
                // scopes naming it
                .add(
                    casbin_rule::Column::Ptype
                        .eq("p")
                        .and(casbin_rule::Column::V1.eq(&domain))
                        .and(casbin_rule::Column::V2.eq(&group)),
                )
                // its members
                .add(
                    casbin_rule::Column::Ptype
                        .eq("g")
                        .and(casbin_rule::Column::V1.eq(&group))
                        .and(casbin_rule::Column::V2.eq(&domain)),
                ),
        )
        .exec(db)
        .await?;
    bump_revision(db).await
}

/// Writes the rules of one member's exception, and raises the revision.
pub(crate) async fn write_exception(
    db: &impl ConnectionTrait,
    org_id: i32,
    exception: MemberException,
) -> Result<(), DbErr> {
    insert(db, compile(org_id, false, &[exception])).await?;
    bump_revision(db).await
}

/// Deletes the rules of a member's exception (their exception removed), and raises the
/// revision when there were any. Their help-desk scope and groups stay.
pub(crate) async fn forget_exception(
    db: &impl ConnectionTrait,
    org_id: i32,
    member_id: i32,
) -> Result<(), DbErr> {
    let forgotten = casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(member_subject(member_id)))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .filter(casbin_rule::Column::V2.eq(BACKUP_CODES))
        .exec(db)
        .await?;
    if forgotten.rows_affected > 0 {
        bump_revision(db).await?;
    }
    Ok(())
}

/// Deletes every rule naming a member (they are leaving the organization): their exception,
/// their help-desk scope, their groups; raises the revision when there were any.
pub(crate) async fn forget_member(
    db: &impl ConnectionTrait,
    org_id: i32,
    member_id: i32,
) -> Result<(), DbErr> {
    let (member, domain) = (member_subject(member_id), org_domain(org_id));
    let forgotten = casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::V0.eq(&member))
        .filter(
            sea_orm::Condition::any()
                .add(
                    casbin_rule::Column::Ptype
                        .eq("p")
                        .and(casbin_rule::Column::V1.eq(&domain)),
                )
                .add(
                    casbin_rule::Column::Ptype
                        .eq("g")
                        .and(casbin_rule::Column::V2.eq(&domain)),
                ),
        )
        .exec(db)
        .await?;
    if forgotten.rows_affected > 0 {
        bump_revision(db).await?;
    }
    Ok(())
}

async fn insert(db: &impl ConnectionTrait, rules: Vec<Rule>) -> Result<(), DbErr> {
    if rules.is_empty() {
        return Ok(());
    }
    casbin_rule::Entity::insert_many(rules.iter().map(Rule::row))
        .exec(db)
        .await?;
    Ok(())
}

/// Raises the rules' revision, so that every instance reloads (this one before its next
/// decision, the others within [`super::revision::TRUSTED_FOR`]).
/// Taking it first in a transaction also serialises policy changes (a row lock on
/// PostgreSQL; SQLite has one writer).
pub(crate) async fn bump_revision(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    // This process's gate reads the revision again from now on, until the change settles.
    super::revision::note_own_change();
    policy_revision::Entity::update_many()
        .col_expr(
            policy_revision::Column::Revision,
            Expr::col(policy_revision::Column::Revision).add(1),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// The organization's own rules as stored, each as [`Rule::line`] gives it (grouping rows
/// too: `g, member:<id>, group:<id>, org:<id>, , `).
pub async fn stored_lines(db: &impl ConnectionTrait, org_id: i32) -> Result<Vec<String>, DbErr> {
    let domain = org_domain(org_id);
    Ok(casbin_rule::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(casbin_rule::Column::V1.eq(&domain))
                .add(
                    casbin_rule::Column::Ptype
                        .eq("g")
                        .and(casbin_rule::Column::V2.eq(&domain)),
                ),
        )
        .all(db)
        .await?
        .into_iter()
        .map(|r| match r.ptype.as_str() {
            "g" => format!("g, {}, {}, {}", r.v0, r.v1, r.v2),
            _ => line(&r.ptype, &r.v0, &r.v1, &r.v2, &r.v3, &r.v4),
        })
        .collect())
}

/// The baseline's rules as committed, then the organization's `own` lines, sorted: what the
/// gate applies in that organization.
pub fn with_baseline(mut own: Vec<String>) -> Vec<String> {
    own.sort();
    BASELINE_POLICY
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("p,"))
        .map(str::to_owned)
        .chain(own)
        .collect()
}

fn line(ptype: &str, subject: &str, domain: &str, object: &str, act: &str, eft: &str) -> String {
    format!("{ptype}, {subject}, {domain}, {object}, {act}, {eft}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_codes_deny_every_role_and_exceptions_name_their_member() {
        let lines: Vec<String> = compile(
            7,
            true,
            &[MemberException {
                member_id: 3,
                allowed: true,
            }],
        )
        .iter()
        .map(Rule::line)
        .collect();
        assert_eq!(
            lines,
            [
                "p, owner, org:7, backup_codes, generate, deny",
                "p, owner, org:7, backup_codes, redeem, deny",
                "p, admin, org:7, backup_codes, generate, deny",
                "p, admin, org:7, backup_codes, redeem, deny",
                "p, helpdesk, org:7, backup_codes, generate, deny",
                "p, helpdesk, org:7, backup_codes, redeem, deny",
                "p, auditor, org:7, backup_codes, generate, deny",
                "p, auditor, org:7, backup_codes, redeem, deny",
                "p, member, org:7, backup_codes, generate, deny",
                "p, member, org:7, backup_codes, redeem, deny",
                "p, member:3, org:7, backup_codes, generate, allow",
                "p, member:3, org:7, backup_codes, redeem, allow",
            ]
        );
        assert!(compile(7, false, &[]).is_empty());
    }
}
