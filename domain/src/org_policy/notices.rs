//! What a policy save tells people, in the save's transaction: each member whose unused
//! codes stop working because codes became "Not allowed", and the administrators when the
//! save loosened the policy (an alert they can turn off). Sets a shorter maximum age expires
//! are recorded as `backup_codes.expired` by the save, and each of those tells its member.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{CodesMode, OrgPolicy, impact, issued_codes::minutes_words};
use crate::{
    audit::{
        AuditAction,
        notices::{self, Words},
    },
    identity::{self, Member},
    notifications::{AlertKind, alerts, rendering::readable_time},
};

/// Tells the members and administrators what saving `after` over `before` did, in `txn`.
pub(super) async fn tell(
    txn: &impl ConnectionTrait,
    actor: &Member,
    before: &OrgPolicy,
    after: &OrgPolicy,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let org_id = actor.org_id;
    let facts = || {
        vec![
            ("When", readable_time(now)),
            ("By", format!("{} ({})", actor.email, actor.role.as_str())),
        ]
    };
    for set in impact::disallowed_sets(txn, org_id, before, after).await? {
        let Some(member) = identity::member(txn, set.member_id).await? else {
            continue;
        };
        let unused = set.remaining;
        let words = Words {
            subject: "Your backup codes stopped working".to_owned(),
            what: format!(
                "Your organization's backup-code policy was changed: backup codes are no \
                 longer allowed, so your {unused} unused {} stopped working.",
                if unused == 1 { "code" } else { "codes" }
            ),
            status: Some(
                "Sign in with your password and authenticator; keep your authenticator safe."
                    .to_owned(),
            ),
            if_you: "If you need another way to sign in, ask your administrators.".to_owned(),
            if_not_you: "A policy change is your administrators' decision: ask them if it was \
                         not expected."
                .to_owned(),
        };
        let kind = AuditAction::PolicySaved.as_str();
        notices::to_member(txn, &member, kind, words, facts(), true, now).await?;
    }
    let loosened = loosenings(before, after);
    let settings = alerts::settings(txn, org_id).await?;
    if !loosened.is_empty() && settings.wants(AlertKind::PolicyLoosened) {
        let words = Words {
            subject: "the backup-code policy was loosened".to_owned(),
            what: format!(
                "{} changed the backup-code policy: {}.",
                actor.email,
                loosened.join("; ")
            ),
            status: None,
            if_you: "If this was agreed, nothing more is needed.".to_owned(),
            if_not_you: "If not, review the policy page and its history.".to_owned(),
        };
        notices::to_admins(
            txn,
            org_id,
            &settings,
            &[Some(actor)],
            AuditAction::PolicySaved.as_str(),
            words,
            facts(),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Each way `after` is looser than `before`, in words; empty when it is not.
pub(super) fn loosenings(before: &OrgPolicy, after: &OrgPolicy) -> Vec<String> {
    let mut loosened = Vec::new();
    if before.codes.withholds_codes() && !after.codes.withholds_codes() {
        loosened.push(format!(
            "backup codes are allowed again ({})",
            after.codes.label()
        ));
    }
    if after.lockout_attempts > before.lockout_attempts {
        loosened.push(format!(
            "the lockout allows {} wrong codes instead of {}",
            after.lockout_attempts, before.lockout_attempts
        ));
    }
    if after.lockout_minutes < before.lockout_minutes {
        loosened.push(format!(
            "a lockout lasts {} minutes instead of {}",
            after.lockout_minutes, before.lockout_minutes
        ));
    }
    if before.recovery_code_approval && !after.recovery_code_approval {
        loosened.push("two-admin approval of sign-in codes was turned off".to_owned());
    }
    if before.restrict_after_backup_sign_in && !after.restrict_after_backup_sign_in {
        loosened
            .push("a backup-code sign-in no longer limits the session to MFA settings".to_owned());
    }
    if before.replace_when_low && !after.replace_when_low {
        loosened.push(
            "members whose backup codes run low after a backup-code sign-in are warned instead \
             of asked for a new set first"
                .to_owned(),
        );
    }
    // Under "Required", its limit on members without codes coming later, or not at all.
    if before.codes == CodesMode::Required && after.codes == CodesMode::Required {
        let day = |day: chrono::NaiveDate| day.format("%-d %B %Y").to_string();
        match (before.required_from, after.required_from) {
            (Some(_), None) => loosened.push(
                "\"Required\" no longer limits the sessions of members without backup codes"
                    .to_owned(),
            ),
            (Some(was), Some(is)) if is > was => loosened.push(format!(
                "members without backup codes are limited from {} instead of {}",
                day(is),
                day(was)
            )),
            _ => {}
        }
        if after.required_from.is_some() && after.grace_days > before.grace_days {
            loosened.push(format!(
                "new members have {} days before \"Required\" limits them instead of {}",
                after.grace_days, before.grace_days
            ));
        }
    }
    let (was, is) = (&before.recovery_codes, &after.recovery_codes);
    if is.issuers.breadth() > was.issuers.breadth() {
        loosened.push(format!(
            "recovery codes may now be issued by: {} (was: {})",
            is.issuers.label().to_lowercase(),
            was.issuers.label().to_lowercase()
        ));
    }
    // Reported even while codes are off, so that turning them on later cannot bring in
    // looser terms unreported.
    if is.longest_minutes > was.longest_minutes {
        loosened.push(format!(
            "a recovery code may now live up to {} instead of {}",
            minutes_words(is.longest_minutes),
            minutes_words(was.longest_minutes)
        ));
    }
    if is.max_uses > was.max_uses {
        loosened.push(format!(
            "a recovery code may now allow {} sign-ins instead of {}",
            is.max_uses, was.max_uses
        ));
    }
    // A backup holds every member's password hash and the whole audit log: one more role
    // that may take one away is a loosening.
    if !before.admins_request_backups && after.admins_request_backups {
        loosened.push(
            "administrators may now request data backups, which hold every member's password \
             hash and the whole audit log"
                .to_owned(),
        );
    }
    loosened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loosening_is_named_and_tightening_is_not_one() {
        let strict = OrgPolicy {
            codes: CodesMode::NotAllowed,
            lockout_attempts: 3,
            lockout_minutes: 60,
            recovery_code_approval: true,
            restrict_after_backup_sign_in: true,
            admins_request_backups: false,
            replace_when_low: true,
            ..OrgPolicy::default()
        };
        let loose = OrgPolicy {
            codes: CodesMode::Allowed,
            lockout_attempts: 10,
            lockout_minutes: 5,
            recovery_code_approval: false,
            restrict_after_backup_sign_in: false,
            admins_request_backups: true,
            replace_when_low: false,
            ..OrgPolicy::default()
        };
        assert_eq!(loosenings(&strict, &loose).len(), 7);
        assert!(loosenings(&loose, &strict).is_empty());
        assert!(loosenings(&strict, &strict).is_empty());
    }

    #[test]
    fn a_later_or_no_date_and_a_longer_grace_period_loosen_required() {
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 12, d);
        let required = |required_from, grace_days| OrgPolicy {
            codes: CodesMode::Required,
            required_from,
            grace_days,
            ..OrgPolicy::default()
        };
        // (before, after, loosenings), written out.
        let cases = [
            (required(day(10), 0), required(None, 0), 1),
            (required(day(10), 0), required(day(20), 0), 1),
            (required(day(10), 0), required(day(20), 7), 2),
            (required(day(20), 7), required(day(10), 0), 0),
            (required(None, 0), required(day(10), 0), 0),
            (required(day(10), 7), required(day(10), 7), 0),
            // Grace days without a date bind nobody.
            (required(None, 0), required(None, 30), 0),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                loosenings(&before, &after).len(),
                expected,
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn letting_admins_request_backups_loosens_and_says_what_a_backup_holds() {
        let off = OrgPolicy::default();
        let on = OrgPolicy {
            admins_request_backups: true,
            ..off
        };
        let words = loosenings(&off, &on);
        assert_eq!(words.len(), 1);
        assert!(words[0].contains("administrators may now request data backups"));
        assert!(words[0].contains("password hash"));
        assert!(loosenings(&on, &off).is_empty());
    }

    #[test]
    fn wider_issuers_longer_lifetimes_and_more_uses_loosen_recovery_codes() {
        use crate::org_policy::{Issuers, RecoveryCodeRules};
        let rules = |issuers, longest_minutes, max_uses| OrgPolicy {
            recovery_codes: RecoveryCodeRules {
                shortest_minutes: 10,
                longest_minutes,
                default_minutes: 10,
                max_uses,
                issuers,
            },
            ..OrgPolicy::default()
        };
        // (before, after, loosenings), written out.
        let cases = [
            (
                rules(Issuers::Owners, 60, 1),
                rules(Issuers::Admins, 60, 1),
                1,
            ),
            (
                rules(Issuers::Nobody, 60, 1),
                rules(Issuers::Owners, 60, 1),
                1,
            ),
            (
                rules(Issuers::Admins, 60, 1),
                rules(Issuers::Owners, 60, 1),
                0,
            ),
            (
                rules(Issuers::Owners, 60, 1),
                rules(Issuers::Owners, 120, 1),
                1,
            ),
            (
                rules(Issuers::Owners, 60, 1),
                rules(Issuers::Owners, 60, 3),
                1,
            ),
            (
                rules(Issuers::Owners, 60, 1),
                rules(Issuers::HelpDesk, 1440, 5),
                3,
            ),
            (
                rules(Issuers::Owners, 1440, 5),
                rules(Issuers::Owners, 60, 1),
                0,
            ),
            // Even with codes off: turned on later, they would bring those terms in.
            (
                rules(Issuers::Nobody, 60, 1),
                rules(Issuers::Nobody, 1440, 5),
                2,
            ),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                loosenings(&before, &after).len(),
                expected,
                "{:?} → {:?}",
                before.recovery_codes,
                after.recovery_codes
            );
        }
    }
}
