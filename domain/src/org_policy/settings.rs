//! The settings themselves: what each means, the form that sets them, the versions saved,
//! and saving a new one (with the Casbin rules it compiles to, for backup codes and for data
//! backups, its audit event and the revision bump, in one transaction).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::{
    PolicyChangeError,
    issued_codes::{Issuers, RecoveryCodeRules, minutes_words},
};
use crate::{
    audit::{AuditAction, Change, PolicySavedDetails},
    authz::{Action, Authz, rules},
    backup_codes::CodePolicy,
    command::{Attempt, Command},
    entity::org_policy,
    identity::Member,
};

/// Whether an organization's members may use backup codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodesMode {
    /// Nobody may generate or redeem codes (existing codes stop working).
    NotAllowed,
    /// Members may generate and redeem codes.
    Allowed,
    /// Every member with MFA must hold a valid set.
    Required,
}

impl CodesMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::Allowed => "allowed",
            Self::Required => "required",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::NotAllowed => "Not allowed",
            Self::Allowed => "Allowed",
            Self::Required => "Required",
        }
    }

    pub(super) fn parse(input: &str) -> Option<Self> {
        [Self::NotAllowed, Self::Allowed, Self::Required]
            .into_iter()
            .find(|mode| mode.as_str() == input.trim())
    }

    /// Whether the setting withholds codes from every role ("Not allowed"): what the gate's
    /// role rules are compiled from ([`crate::authz::rules::compile`]).
    pub fn withholds_codes(self) -> bool {
        self == Self::NotAllowed
    }
}

/// How a member enters a backup code at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeEntry {
    /// Any unused code of the set.
    AnyCode,
    /// The numbered code the sign-in page asks for (NIST SP 800-63B's look-up secrets).
    NumberedCode,
}

impl CodeEntry {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AnyCode => "any",
            Self::NumberedCode => "numbered",
        }
    }

    pub(super) fn parse(input: &str) -> Option<Self> {
        [Self::AnyCode, Self::NumberedCode]
            .into_iter()
            .find(|entry| entry.as_str() == input.trim())
    }
}

/// Codes per set: at least this many.
pub const MIN_CODES_PER_SET: u8 = 5;
/// Codes per set: at most this many.
pub const MAX_CODES_PER_SET: u8 = 20;
pub(super) const MAX_SET_AGE_DAYS: u16 = 3650;
pub(super) const MAX_LOCKOUT_ATTEMPTS: u8 = 20;
pub(super) const MAX_LOCKOUT_MINUTES: u16 = 24 * 60;
/// The longest grace period for new members, in days (JumpCloud's enrolment period is 1–365).
pub const MAX_GRACE_DAYS: u16 = 365;

/// An organization's backup-code policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicy {
    pub codes: CodesMode,
    pub codes_per_set: u8,
    /// 0: sets never expire.
    pub max_set_age_days: u16,
    pub low_codes_threshold: u8,
    /// Wrong codes that end a sign-in attempt.
    pub lockout_attempts: u8,
    /// How long a locked factor stays locked.
    pub lockout_minutes: u16,
    pub code_entry: CodeEntry,
    /// After a sign-in with a backup code, only MFA settings until the authenticator is set
    /// up again or new codes are generated.
    pub restrict_after_backup_sign_in: bool,
    /// An admin-issued recovery code is revealed only after a second admin approved it.
    pub recovery_code_approval: bool,
    /// Administrators may request backups of the organization's data, not only owners (a
    /// backup holds every member's password hash and the whole audit log). Off in a
    /// document written before the setting existed.
    #[serde(default)]
    pub admins_request_backups: bool,
    /// What running low means: off, a warning (the account page and a notice); on, a
    /// backup-code sign-in that leaves the member at or below `low_codes_threshold` unused
    /// codes limits the session to generating a new set before anything else (NIST SP
    /// 800-63B-4 §4.1.1: a replacement once a recovery code is used). Off in a document
    /// written before the setting existed.
    #[serde(default)]
    pub replace_when_low: bool,
    /// Under "Required", the day (from 00:00 UTC) a member bound by it who holds no working
    /// code starts to reach only their MFA settings, until they generate a set
    /// ([`super::grace`]); before it they see a countdown and get reminders. `None`:
    /// "Required" is reported and never limits a session, as before the setting existed.
    #[serde(default)]
    pub required_from: Option<NaiveDate>,
    /// Days a member has from joining before "Required" limits their session, when that is
    /// later than `required_from` (the grace period for new members), 0 to
    /// [`MAX_GRACE_DAYS`].
    #[serde(default)]
    pub grace_days: u16,
    /// Recovery codes administrators issue: their lifetimes, uses and issuers. What was
    /// fixed in a document written before the rules existed.
    #[serde(default)]
    pub recovery_codes: RecoveryCodeRules,
}

impl Default for OrgPolicy {
    fn default() -> Self {
        let codes = CodePolicy::default();
        Self {
            codes: CodesMode::Allowed,
            codes_per_set: codes.codes_per_set,
            max_set_age_days: codes.max_set_age_days,
            low_codes_threshold: codes.low_codes_threshold,
            lockout_attempts: codes.lockout_attempts,
            lockout_minutes: codes.lockout_minutes,
            code_entry: CodeEntry::AnyCode,
            restrict_after_backup_sign_in: false,
            recovery_code_approval: false,
            admins_request_backups: false,
            replace_when_low: false,
            required_from: None,
            grace_days: 0,
            recovery_codes: RecoveryCodeRules::default(),
        }
    }
}

impl OrgPolicy {
    /// What the backup-code rules need of it.
    pub fn code_policy(&self) -> CodePolicy {
        CodePolicy {
            codes_per_set: self.codes_per_set,
            low_codes_threshold: self.low_codes_threshold,
            max_set_age_days: self.max_set_age_days,
            lockout_attempts: self.lockout_attempts,
            lockout_minutes: self.lockout_minutes,
        }
    }

    /// Each setting by name, as people read it, in the order the page shows them.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Backup verification codes", self.codes.label().to_owned()),
            ("Codes per set", self.codes_per_set.to_string()),
            (
                "Maximum set age",
                match self.max_set_age_days {
                    0 => "No limit".to_owned(),
                    days => format!("{days} days"),
                },
            ),
            ("Low-codes warning at", self.low_codes_threshold.to_string()),
            (
                "New set required when codes run low",
                on_off(self.replace_when_low),
            ),
            (
                "Sessions limited under Required from",
                match self.required_from {
                    Some(day) => format!("{} (00:00 UTC)", day.format("%-d %B %Y")),
                    None => "Never (reported only)".to_owned(),
                },
            ),
            ("Grace period for new members", days(self.grace_days)),
            ("Lock after wrong codes", self.lockout_attempts.to_string()),
            (
                "Lockout duration",
                format!("{} minutes", self.lockout_minutes),
            ),
            (
                "Code entry",
                match self.code_entry {
                    CodeEntry::AnyCode => "Any unused code".to_owned(),
                    CodeEntry::NumberedCode => "A specific numbered code".to_owned(),
                },
            ),
            (
                "Only MFA settings after a backup-code sign-in",
                on_off(self.restrict_after_backup_sign_in),
            ),
            (
                "Two-admin approval for recovery codes",
                on_off(self.recovery_code_approval),
            ),
            (
                "Who may issue recovery codes",
                self.recovery_codes.issuers.label().to_owned(),
            ),
            (
                "Shortest recovery code lifetime",
                minutes_words(self.recovery_codes.shortest_minutes),
            ),
            (
                "Longest recovery code lifetime",
                minutes_words(self.recovery_codes.longest_minutes),
            ),
            (
                "Default recovery code lifetime",
                minutes_words(self.recovery_codes.default_minutes),
            ),
            (
                "Uses per recovery code",
                match self.recovery_codes.max_uses {
                    1 => "One-time".to_owned(),
                    n => format!("Up to {n}"),
                },
            ),
            (
                "Administrators may request data backups",
                on_off(self.admins_request_backups),
            ),
        ]
    }

    /// What differs from `before`, setting by setting.
    pub fn changes_from(&self, before: &Self) -> Vec<Change> {
        before
            .settings()
            .into_iter()
            .zip(self.settings())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((field, before), (_, after))| Change {
                field: field.to_owned(),
                before,
                after,
            })
            .collect()
    }
}

/// A number of days as people read it.
fn days(n: u16) -> String {
    match n {
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

/// A switch as people read it.
fn on_off(on: bool) -> String {
    if on { "On" } else { "Off" }.to_owned()
}

/// One saved version of the policy; version 0 is the default nobody saved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub version: i32,
    pub policy: OrgPolicy,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
    pub changes: Vec<Change>,
}

impl TryFrom<org_policy::Model> for PolicyVersion {
    type Error = DbErr;

    fn try_from(row: org_policy::Model) -> Result<Self, DbErr> {
        let bad = |what: &str| DbErr::Type(format!("org_policy {}: bad {what}", row.id));
        let small = |value: i32, what: &str| u8::try_from(value).map_err(|_| bad(what));
        let minutes = |value: i32| u32::try_from(value).map_err(|_| bad("recovery code lifetime"));
        let policy = OrgPolicy {
            codes: CodesMode::parse(&row.backup_codes).ok_or_else(|| bad("backup_codes"))?,
            codes_per_set: small(row.codes_per_set, "codes_per_set")?,
            max_set_age_days: u16::try_from(row.max_set_age_days)
                .map_err(|_| bad("max_set_age_days"))?,
            low_codes_threshold: small(row.low_codes_threshold, "low_codes_threshold")?,
            lockout_attempts: small(row.lockout_attempts, "lockout_attempts")?,
            lockout_minutes: u16::try_from(row.lockout_minutes)
                .map_err(|_| bad("lockout_minutes"))?,
            code_entry: CodeEntry::parse(&row.code_entry).ok_or_else(|| bad("code_entry"))?,
            restrict_after_backup_sign_in: row.restrict_after_backup_sign_in,
            recovery_code_approval: row.recovery_code_approval,
            admins_request_backups: row.admins_request_backups,
            replace_when_low: row.replace_when_low,
            required_from: row.required_from.map(|at| at.date_naive()),
            grace_days: u16::try_from(row.grace_days)
                .ok()
                .filter(|days| *days <= MAX_GRACE_DAYS)
                .ok_or_else(|| bad("grace_days"))?,
            recovery_codes: RecoveryCodeRules {
                shortest_minutes: minutes(row.recovery_code_shortest_minutes)?,
                longest_minutes: minutes(row.recovery_code_longest_minutes)?,
                default_minutes: minutes(row.recovery_code_default_minutes)?,
                max_uses: small(row.recovery_code_max_uses, "recovery_code_max_uses")?,
                issuers: Issuers::parse(&row.recovery_code_issuers)
                    .ok_or_else(|| bad("recovery_code_issuers"))?,
            }
            .checked()
            .map_err(|error| bad(&error.field))?,
        };
        Ok(Self {
            version: row.version,
            policy,
            saved_by: row.saved_by,
            saved_at: Some(row.saved_at),
            changes: serde_json::from_str(&row.changes).map_err(|_| bad("changes"))?,
        })
    }
}

/// The organization's policy in force (the default, version 0, until someone saves one).
pub async fn current(db: &impl ConnectionTrait, org_id: i32) -> Result<PolicyVersion, DbErr> {
    version_at(db, org_id, None).await
}

/// The organization's policy in force at `at` (now when `None`).
pub(super) async fn version_at(
    db: &impl ConnectionTrait,
    org_id: i32,
    at: Option<DateTime<Utc>>,
) -> Result<PolicyVersion, DbErr> {
    let mut versions = org_policy::Entity::find().filter(org_policy::Column::OrgId.eq(org_id));
    if let Some(at) = at {
        versions = versions.filter(org_policy::Column::SavedAt.lte(at));
    }
    match versions
        .order_by_desc(org_policy::Column::Version)
        .one(db)
        .await?
    {
        Some(row) => PolicyVersion::try_from(row),
        None => Ok(PolicyVersion {
            version: 0,
            policy: OrgPolicy::default(),
            saved_by: None,
            saved_at: None,
            changes: Vec::new(),
        }),
    }
}

/// The policy's versions, newest first, for owners and admins.
pub async fn history(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
) -> Result<Vec<PolicyVersion>, PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    org_policy::Entity::find()
        .filter(org_policy::Column::OrgId.eq(actor.org_id))
        .order_by_desc(org_policy::Column::Version)
        .all(db)
        .await?
        .into_iter()
        .map(|row| PolicyVersion::try_from(row).map_err(PolicyChangeError::from))
        .collect()
}

/// Saves `policy` as the next version of `actor`'s organization, if the policy in force is
/// still `expected_version` (the one the admin's form was filled from). Saving what is in
/// force already changes nothing and makes no version.
pub async fn save(
    cmd: &Command<'_>,
    expected_version: i32,
    policy: &OrgPolicy,
) -> Result<PolicyVersion, PolicyChangeError> {
    let (db, actor, now) = (cmd.db, cmd.actor, cmd.now);
    cmd.require(Action::ManagePolicy, Attempt::of(AuditAction::PolicySaved))
        .await?;
    // Every way in (the form, the JSON API, a restored backup) is held to the same bounds.
    policy.recovery_codes.checked()?;
    let whole = |minutes: u32| {
        i32::try_from(minutes).map_err(|_| DbErr::Custom("recovery code lifetime".to_owned()))
    };
    let org_id = actor.org_id;
    let txn = db.begin().await?;
    // Taking the revision row first serialises policy changes (PostgreSQL row lock; SQLite
    // has one writer), so the version read below cannot go stale before the insert.
    rules::bump_revision(&txn).await?;
    let before = current(&txn, org_id).await?;
    if before.version != expected_version {
        return Err(PolicyChangeError::Conflict);
    }
    let changes = policy.changes_from(&before.policy);
    if changes.is_empty() {
        return Ok(before);
    }
    // Sets past the maximum age in force expire on the record first, in this transaction:
    // a longer (or no) maximum age must not bring them back.
    crate::backup_codes::record_expiries(&txn, org_id, None, &before.policy.code_policy(), now)
        .await?;
    let version = before.version + 1;
    org_policy::ActiveModel {
        org_id: Set(org_id),
        version: Set(version),
        backup_codes: Set(policy.codes.as_str().to_owned()),
        codes_per_set: Set(policy.codes_per_set.into()),
        max_set_age_days: Set(policy.max_set_age_days.into()),
        low_codes_threshold: Set(policy.low_codes_threshold.into()),
        lockout_attempts: Set(policy.lockout_attempts.into()),
        lockout_minutes: Set(policy.lockout_minutes.into()),
        code_entry: Set(policy.code_entry.as_str().to_owned()),
        restrict_after_backup_sign_in: Set(policy.restrict_after_backup_sign_in),
        recovery_code_approval: Set(policy.recovery_code_approval),
        admins_request_backups: Set(policy.admins_request_backups),
        replace_when_low: Set(policy.replace_when_low),
        required_from: Set(policy.required_from.map(super::grace::start_of)),
        grace_days: Set(policy.grace_days.into()),
        recovery_code_shortest_minutes: Set(whole(policy.recovery_codes.shortest_minutes)?),
        recovery_code_longest_minutes: Set(whole(policy.recovery_codes.longest_minutes)?),
        recovery_code_default_minutes: Set(whole(policy.recovery_codes.default_minutes)?),
        recovery_code_max_uses: Set(policy.recovery_codes.max_uses.into()),
        recovery_code_issuers: Set(policy.recovery_codes.issuers.as_str().to_owned()),
        saved_by_id: Set(Some(actor.id)),
        saved_by: Set(Some(actor.email.clone())),
        saved_at: Set(now),
        changes: Set(serde_json::to_string(&changes)
            .map_err(|e| DbErr::Custom(format!("policy changes: {e}")))?),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => PolicyChangeError::Conflict,
        _ => PolicyChangeError::Database(error),
    })?;
    rules::write_role_rules(&txn, org_id, policy.codes.withholds_codes()).await?;
    rules::write_backup_rules(&txn, org_id, policy.admins_request_backups).await?;
    rules::write_issuer_rules(&txn, org_id, policy.recovery_codes.issuers.barred()).await?;
    let details = PolicySavedDetails {
        version,
        changes: changes.clone(),
    };
    let details = serde_json::to_value(&details)
        .map_err(|e| DbErr::Custom(format!("policy save details: {e}")))?;
    cmd.record(&txn, cmd.event(AuditAction::PolicySaved, None, details))
        .await?;
    // Sets the new maximum age ends expire on the record now, each telling its member.
    crate::backup_codes::record_expiries(&txn, org_id, None, &policy.code_policy(), now).await?;
    super::notices::tell(&txn, actor, &before.policy, policy, now).await?;
    txn.commit().await?;
    Ok(PolicyVersion {
        version,
        policy: *policy,
        saved_by: Some(actor.email.clone()),
        saved_at: Some(now),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_setting_with_its_before_and_after() {
        let before = OrgPolicy::default();
        let after = OrgPolicy {
            codes: CodesMode::NotAllowed,
            codes_per_set: 12,
            ..before
        };
        let changes = after.changes_from(&before);
        assert_eq!(
            changes,
            vec![
                Change {
                    field: "Backup verification codes".into(),
                    before: "Allowed".into(),
                    after: "Not allowed".into(),
                },
                Change {
                    field: "Codes per set".into(),
                    before: "10".into(),
                    after: "12".into(),
                },
            ]
        );
        assert!(before.changes_from(&before).is_empty());
    }

    #[test]
    fn letting_admins_request_backups_is_named_in_words() {
        let before = OrgPolicy::default();
        let after = OrgPolicy {
            admins_request_backups: true,
            ..before
        };
        assert_eq!(
            after.changes_from(&before),
            vec![Change {
                field: "Administrators may request data backups".into(),
                before: "Off".into(),
                after: "On".into(),
            }]
        );
    }
}
