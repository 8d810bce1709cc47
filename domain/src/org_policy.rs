//! An organization's policy for backup codes, as its owners and admins set it: whether
//! members may use them ("Not allowed", "Allowed", "Required"), how many codes a set holds,
//! how long a set lives, when to warn, how many wrong codes end a sign-in attempt, and
//! exceptions for named members.
//!
//! Each save is a new version (who, when, what changed). The allow/deny part compiles to
//! Casbin rules in the organization's domain (`casbin_rule`), written in the same
//! transaction as the version, its audit event and the revision bump that makes every
//! server instance reload: the gate in [`crate::authz`] decides from those rules alone.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use crate::{
    accounts::{Email, FieldError, Member, Role},
    audit::{self, Event, Outcome, Source},
    authz::{
        Action, Attempt, Authz, AuthzError, BACKUP_CODES, Decision, PolicyError, member_subject,
        org_domain,
    },
    backup_codes::CodePolicy,
    entity::{
        audit_event, backup_code, backup_code_set, casbin_rule, org_policy, policy_exception,
        policy_revision, user_account,
    },
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

    fn parse(input: &str) -> Option<Self> {
        [Self::NotAllowed, Self::Allowed, Self::Required]
            .into_iter()
            .find(|mode| mode.as_str() == input.trim())
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

    fn parse(input: &str) -> Option<Self> {
        [Self::AnyCode, Self::NumberedCode]
            .into_iter()
            .find(|entry| entry.as_str() == input.trim())
    }
}

/// Codes per set: at least this many.
pub const MIN_CODES_PER_SET: u8 = 5;
/// Codes per set: at most this many.
pub const MAX_CODES_PER_SET: u8 = 20;
const MAX_SET_AGE_DAYS: u16 = 3650;
const MAX_LOCKOUT_ATTEMPTS: u8 = 20;
const MAX_LOCKOUT_MINUTES: u16 = 24 * 60;
const MAX_REASON_CHARS: usize = 500;

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
                if self.restrict_after_backup_sign_in {
                    "On"
                } else {
                    "Off"
                }
                .to_owned(),
            ),
            (
                "Two-admin approval for recovery codes",
                if self.recovery_code_approval {
                    "On"
                } else {
                    "Off"
                }
                .to_owned(),
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

/// The policy form as typed: every setting a string, checked by [`PolicyForm::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyForm {
    pub backup_codes: String,
    pub codes_per_set: String,
    pub max_set_age_days: String,
    pub low_codes_threshold: String,
    pub lockout_attempts: String,
    pub lockout_minutes: String,
    pub code_entry: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub restrict_after_backup_sign_in: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub recovery_code_approval: Option<String>,
}

impl PolicyForm {
    /// The form filled in with `policy`.
    pub fn from_policy(policy: &OrgPolicy) -> Self {
        Self {
            backup_codes: policy.codes.as_str().to_owned(),
            codes_per_set: policy.codes_per_set.to_string(),
            max_set_age_days: policy.max_set_age_days.to_string(),
            low_codes_threshold: policy.low_codes_threshold.to_string(),
            lockout_attempts: policy.lockout_attempts.to_string(),
            lockout_minutes: policy.lockout_minutes.to_string(),
            code_entry: policy.code_entry.as_str().to_owned(),
            restrict_after_backup_sign_in: policy
                .restrict_after_backup_sign_in
                .then(|| "on".to_owned()),
            recovery_code_approval: policy.recovery_code_approval.then(|| "on".to_owned()),
        }
    }

    /// Checks every setting; the first problem comes back next to its field.
    pub fn parse(&self) -> Result<OrgPolicy, FieldError> {
        let codes = CodesMode::parse(&self.backup_codes).ok_or_else(|| {
            FieldError::new("backup_codes", "Choose Not allowed, Allowed or Required.")
        })?;
        let codes_per_set: u8 = number(
            "codes_per_set",
            &self.codes_per_set,
            MIN_CODES_PER_SET.into(),
            MAX_CODES_PER_SET.into(),
        )?;
        let max_set_age_days: u16 = number(
            "max_set_age_days",
            &self.max_set_age_days,
            0,
            MAX_SET_AGE_DAYS.into(),
        )?;
        let low_codes_threshold: u8 = number(
            "low_codes_threshold",
            &self.low_codes_threshold,
            0,
            u32::from(codes_per_set) - 1,
        )?;
        let lockout_attempts: u8 = number(
            "lockout_attempts",
            &self.lockout_attempts,
            1,
            MAX_LOCKOUT_ATTEMPTS.into(),
        )?;
        let lockout_minutes: u16 = number(
            "lockout_minutes",
            &self.lockout_minutes,
            1,
            MAX_LOCKOUT_MINUTES.into(),
        )?;
        let code_entry = CodeEntry::parse(&self.code_entry).ok_or_else(|| {
            FieldError::new(
                "code_entry",
                "Choose any unused code or a specific numbered code.",
            )
        })?;
        Ok(OrgPolicy {
            codes,
            codes_per_set,
            max_set_age_days,
            low_codes_threshold,
            lockout_attempts,
            lockout_minutes,
            code_entry,
            restrict_after_backup_sign_in: self.restrict_after_backup_sign_in.is_some(),
            recovery_code_approval: self.recovery_code_approval.is_some(),
        })
    }
}

/// A whole number from `min` to `max` typed into `field`.
fn number<T: TryFrom<u32>>(field: &str, input: &str, min: u32, max: u32) -> Result<T, FieldError> {
    let invalid = || FieldError::new(field, format!("Enter a whole number from {min} to {max}."));
    let value: u32 = input.trim().parse().map_err(|_| invalid())?;
    if !(min..=max).contains(&value) {
        return Err(invalid());
    }
    T::try_from(value).map_err(|_| invalid())
}

/// One setting that a save changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: String,
    pub after: String,
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

/// Why a policy change did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error(
        "Another administrator changed the policy since you opened it. Reload the page to see their change, then make yours."
    )]
    Conflict,
    #[error("There is no member with that email address in your organization.")]
    UnknownMember,
    #[error("That exception no longer exists.")]
    UnknownException,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for PolicyChangeError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// Records every expiry of a code set that has passed its organization's maximum set age
/// and is not on the record yet ([`crate::backup_codes::record_expiries`]), across all
/// organizations; the server runs this periodically. Returns how many it recorded.
pub async fn record_all_expiries(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<u32, DbErr> {
    let mut recorded = 0;
    for org_id in crate::accounts::organization_ids(db).await? {
        let policy = current(db, org_id).await?.policy.code_policy();
        recorded += crate::backup_codes::record_expiries(db, org_id, None, &policy, now).await?;
    }
    Ok(recorded)
}

/// The organization's policy in force (the default, version 0, until someone saves one).
pub async fn current(db: &impl ConnectionTrait, org_id: i32) -> Result<PolicyVersion, DbErr> {
    version_at(db, org_id, None).await
}

/// The organization's policy in force at `at` (now when `None`).
async fn version_at(
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

/// A policy change `actor` attempts, for the record if the gate refuses it.
fn attempt<'a>(
    action: &'static str,
    actor: &'a Member,
    source: &'a Source,
    now: DateTime<Utc>,
) -> Attempt<'a> {
    Attempt {
        action,
        actor,
        target: None,
        details: serde_json::json!({}),
        source,
        now,
    }
}

/// Saves `policy` as the next version of `actor`'s organization, if the policy in force is
/// still `expected_version` (the one the admin's form was filled from). Saving what is in
/// force already changes nothing and makes no version.
pub async fn save(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    expected_version: i32,
    policy: &OrgPolicy,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<PolicyVersion, PolicyChangeError> {
    authz
        .require_recorded(
            db,
            Action::ManagePolicy,
            attempt("policy.saved", actor, source, now),
        )
        .await?;
    let org_id = actor.org_id;
    let txn = db.begin().await?;
    // Taking the revision row first serialises policy changes (PostgreSQL row lock; SQLite
    // has one writer), so the version read below cannot go stale before the insert.
    bump_revision(&txn).await?;
    let before = current(&txn, org_id).await?;
    if before.version != expected_version {
        return Err(PolicyChangeError::Conflict);
    }
    let changes = policy.changes_from(&before.policy);
    if changes.is_empty() {
        return Ok(before);
    }
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
    compile_org_rules(&txn, org_id, policy.codes).await?;
    audit::record(
        &txn,
        org_id,
        Event {
            action: "policy.saved",
            actor: Some(actor),
            target: None,
            outcome: Outcome::Success,
            details: serde_json::json!({ "version": version, "changes": changes }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(PolicyVersion {
        version,
        policy: *policy,
        saved_by: Some(actor.email.clone()),
        saved_at: Some(now),
        changes,
    })
}

/// The acts of backup codes that the organization's setting and exceptions govern.
const GOVERNED_ACTS: [&str; 2] = ["generate", "redeem"];

/// Rewrites the organization's role rules for backup codes: "Not allowed" denies every role
/// generating and redeeming in this organization; otherwise the baseline decides.
async fn compile_org_rules(
    db: &impl ConnectionTrait,
    org_id: i32,
    mode: CodesMode,
) -> Result<(), DbErr> {
    let domain = org_domain(org_id);
    let roles = [Role::Owner, Role::Admin, Role::Member].map(Role::as_str);
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.is_in(roles))
        .filter(casbin_rule::Column::V1.eq(domain.as_str()))
        .filter(casbin_rule::Column::V2.eq(BACKUP_CODES))
        .exec(db)
        .await?;
    if mode == CodesMode::NotAllowed {
        let rules = roles.iter().flat_map(|role| {
            GOVERNED_ACTS
                .iter()
                .map(|act| rule(role, &domain, act, "deny"))
        });
        casbin_rule::Entity::insert_many(rules).exec(db).await?;
    }
    Ok(())
}

fn rule(subject: &str, domain: &str, act: &str, effect: &str) -> casbin_rule::ActiveModel {
    casbin_rule::ActiveModel {
        ptype: Set("p".to_owned()),
        v0: Set(subject.to_owned()),
        v1: Set(domain.to_owned()),
        v2: Set(BACKUP_CODES.to_owned()),
        v3: Set(act.to_owned()),
        v4: Set(effect.to_owned()),
        v5: Set(String::new()),
        ..Default::default()
    }
}

/// Deletes the rules naming a member who is leaving the organization, for every instance.
pub(crate) async fn forget_member_rules(
    db: &impl ConnectionTrait,
    org_id: i32,
    member_id: i32,
) -> Result<(), DbErr> {
    let forgotten = casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::V0.eq(member_subject(member_id)))
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .exec(db)
        .await?;
    if forgotten.rows_affected > 0 {
        bump_revision(db).await?;
    }
    Ok(())
}

/// Raises the rules' revision, so that every instance reloads before its next decision.
async fn bump_revision(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    policy_revision::Entity::update_many()
        .col_expr(
            policy_revision::Column::Revision,
            Expr::col(policy_revision::Column::Revision).add(1),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// An exception for one member, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub id: i32,
    pub member_id: i32,
    pub email: String,
    /// Backup codes allowed (true) or not allowed (false) for this member, whatever the
    /// organization's setting.
    pub allowed: bool,
    pub reason: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The organization's exceptions, oldest first.
pub async fn exceptions(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
) -> Result<Vec<Exception>, PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    let rows = policy_exception::Entity::find()
        .filter(policy_exception::Column::OrgId.eq(actor.org_id))
        .order_by_asc(policy_exception::Column::Id)
        .all(db)
        .await?;
    let mut exceptions = Vec::with_capacity(rows.len());
    for row in rows {
        let email = user_account::Entity::find_by_id(row.user_id)
            .one(db)
            .await?
            .map(|member| member.email)
            .unwrap_or_default();
        exceptions.push(Exception {
            id: row.id,
            member_id: row.user_id,
            email,
            allowed: row.effect == "allow",
            reason: row.reason,
            created_by: row.created_by,
            created_at: row.created_at,
        });
    }
    Ok(exceptions)
}

/// Exempts the member with `email` from the organization's backup-code setting: backup
/// codes `allowed` for them or not, whatever the setting, for `reason`.
#[allow(clippy::too_many_arguments)]
pub async fn add_exception(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    email: &str,
    allowed: bool,
    reason: &str,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Exception, PolicyChangeError> {
    let tried = Attempt {
        details: serde_json::json!({
            "email": Email::parse(email).ok().map(|email| email.as_str().to_owned()),
            "allowed": allowed,
        }),
        ..attempt("policy.exception_added", actor, source, now)
    };
    authz
        .require_recorded(db, Action::ManagePolicy, tried)
        .await?;
    let email = Email::parse(email)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(FieldError::new("reason", "Say why this member is an exception.").into());
    }
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(FieldError::new(
            "reason",
            format!("Use at most {MAX_REASON_CHARS} characters on one line."),
        )
        .into());
    }
    // A member of another organization reads as no member at all.
    let member = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(PolicyChangeError::UnknownMember)?;
    let effect = if allowed { "allow" } else { "deny" };
    let txn = db.begin().await?;
    bump_revision(&txn).await?;
    let row = policy_exception::ActiveModel {
        org_id: Set(actor.org_id),
        user_id: Set(member.id),
        effect: Set(effect.to_owned()),
        reason: Set(reason.to_owned()),
        created_by_id: Set(Some(actor.id)),
        created_by: Set(Some(actor.email.clone())),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => PolicyChangeError::Invalid(FieldError::new(
            "email",
            "This member already has an exception. Remove it first to change it.",
        )),
        _ => PolicyChangeError::Database(error),
    })?;
    let subject = member_subject(member.id);
    let domain = org_domain(actor.org_id);
    casbin_rule::Entity::insert_many(
        GOVERNED_ACTS
            .iter()
            .map(|act| rule(&subject, &domain, act, effect)),
    )
    .exec(&txn)
    .await?;
    let target = Member::try_from(member.clone())?;
    audit::record(
        &txn,
        actor.org_id,
        Event {
            action: "policy.exception_added",
            actor: Some(actor),
            target: Some(&target),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "exception": row.id,
                "backup_codes": effect,
                "reason": reason,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Exception {
        id: row.id,
        member_id: member.id,
        email: member.email,
        allowed,
        reason: row.reason,
        created_by: row.created_by,
        created_at: now,
    })
}

/// Removes an exception: the member follows the organization's setting again.
pub async fn remove_exception(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    exception_id: i32,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), PolicyChangeError> {
    let tried = Attempt {
        details: serde_json::json!({ "exception": exception_id }),
        ..attempt("policy.exception_removed", actor, source, now)
    };
    authz
        .require_recorded(db, Action::ManagePolicy, tried)
        .await?;
    let txn = db.begin().await?;
    bump_revision(&txn).await?;
    // Another organization's exception reads as none at all.
    let row = policy_exception::Entity::find_by_id(exception_id)
        .filter(policy_exception::Column::OrgId.eq(actor.org_id))
        .one(&txn)
        .await?
        .ok_or(PolicyChangeError::UnknownException)?;
    policy_exception::Entity::delete_by_id(row.id)
        .exec(&txn)
        .await?;
    casbin_rule::Entity::delete_many()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V0.eq(member_subject(row.user_id)))
        .filter(casbin_rule::Column::V1.eq(org_domain(actor.org_id)))
        .exec(&txn)
        .await?;
    let target = user_account::Entity::find_by_id(row.user_id)
        .one(&txn)
        .await?
        .map(Member::try_from)
        .transpose()?;
    audit::record(
        &txn,
        actor.org_id,
        Event {
            action: "policy.exception_removed",
            actor: Some(actor),
            target: target.as_ref(),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "exception": row.id,
                "backup_codes": row.effect,
                "reason": row.reason,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Why the gate would allow or deny the member with `email` an action on their backup
/// codes (`generate` or `redeem`), with the rules that decided.
pub async fn explain(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    email: &str,
    act: &str,
) -> Result<(Member, Decision), PolicyChangeError> {
    authz
        .require(actor, actor.org_id, Action::ViewPolicy)
        .await?;
    let action = match act.trim() {
        "generate" => Action::GenerateBackupCodes,
        "redeem" => Action::RedeemBackupCode,
        _ => return Err(FieldError::new("act", "Choose generate or redeem.").into()),
    };
    let email = Email::parse(email)?;
    let member = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .filter(user_account::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()?
        .ok_or(PolicyChangeError::UnknownMember)?;
    let decision = authz.decide(&member, member.org_id, action).await?;
    Ok((member, decision))
}

/// The policy in force with everything that decides with it, as a document an auditor can
/// keep and compare between two dates: the settings, the exceptions, and the Casbin rules
/// the gate applies in this organization (the baseline's and the organization's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyExport {
    pub organization: String,
    pub slug: String,
    pub exported_at: DateTime<Utc>,
    pub version: i32,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
    pub settings: OrgPolicy,
    pub exceptions: Vec<Exception>,
    /// Each as `p, subject, domain, object, action, effect`, baseline first, then sorted.
    pub rules: Vec<String>,
}

/// [`PolicyExport`] of the organization `org_id`, for the operator's command line: the
/// policy in force and the rules the gate loads for it, read from where the gate reads them.
pub async fn export(
    db: &DatabaseConnection,
    org_id: i32,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    let organization = organization_of(db, org_id).await?;
    let current = current(db, org_id).await?;
    let mut exceptions = Vec::new();
    for row in policy_exception::Entity::find()
        .filter(policy_exception::Column::OrgId.eq(org_id))
        .order_by_asc(policy_exception::Column::Id)
        .all(db)
        .await?
    {
        let email = user_account::Entity::find_by_id(row.user_id)
            .one(db)
            .await?
            .map(|m| m.email)
            .unwrap_or_default();
        exceptions.push(Exception {
            id: row.id,
            member_id: row.user_id,
            email,
            allowed: row.effect == "allow",
            reason: row.reason,
            created_by: row.created_by,
            created_at: row.created_at,
        });
    }
    let own = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::V1.eq(org_domain(org_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|r| rule_line(&r.ptype, &r.v0, &r.v1, &r.v2, &r.v3, &r.v4))
        .collect();
    Ok(PolicyExport {
        organization: organization.name,
        slug: organization.slug,
        exported_at: now,
        version: current.version,
        saved_by: current.saved_by,
        saved_at: current.saved_at,
        settings: current.policy,
        exceptions,
        rules: with_baseline(own),
    })
}

/// A moment to export the policy as of, as typed: a day (`2026-01-01`, meaning the end of
/// that day, UTC) or an RFC 3339 time (`2026-01-01T09:30:00Z`).
pub fn parse_as_of(input: &str) -> Result<DateTime<Utc>, FieldError> {
    let input = input.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(input, "%Y-%m-%d")
        && let Some(end) = day.succ_opt().and_then(|next| next.and_hms_opt(0, 0, 0))
    {
        return Ok(end.and_utc() - Duration::microseconds(1));
    }
    DateTime::parse_from_rfc3339(input)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                "at",
                "Give a day like 2026-01-01 or a time like 2026-01-01T09:30:00Z.",
            )
        })
}

/// [`PolicyExport`] of the policy as it stood at `at`, for an auditor comparing two dates:
/// the version in force then, the exceptions in force then (replayed from the audit log,
/// whose chain vouches for them), and the rules those compile to, as [`export`] would have
/// given them at that moment.
pub async fn export_at(
    db: &DatabaseConnection,
    org_id: i32,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    let organization = organization_of(db, org_id).await?;
    let version = version_at(db, org_id, Some(at)).await?;
    let exceptions = exceptions_at(db, org_id, at).await?;
    let domain = org_domain(org_id);
    let mut own = Vec::new();
    if version.policy.codes == CodesMode::NotAllowed {
        for role in [Role::Owner, Role::Admin, Role::Member] {
            for act in GOVERNED_ACTS {
                own.push(rule_line(
                    "p",
                    role.as_str(),
                    &domain,
                    BACKUP_CODES,
                    act,
                    "deny",
                ));
            }
        }
    }
    for exception in &exceptions {
        let subject = member_subject(exception.member_id);
        let effect = if exception.allowed { "allow" } else { "deny" };
        for act in GOVERNED_ACTS {
            own.push(rule_line("p", &subject, &domain, BACKUP_CODES, act, effect));
        }
    }
    Ok(PolicyExport {
        organization: organization.name,
        slug: organization.slug,
        exported_at: now,
        version: version.version,
        saved_by: version.saved_by,
        saved_at: version.saved_at,
        settings: version.policy,
        exceptions,
        rules: with_baseline(own),
    })
}

/// The exceptions in force at `at`, replayed from the organization's audit log: added,
/// removed, or gone with their member. Oldest first, as [`export`] lists them.
async fn exceptions_at(
    db: &DatabaseConnection,
    org_id: i32,
    at: DateTime<Utc>,
) -> Result<Vec<Exception>, DbErr> {
    let mut in_force: Vec<Exception> = Vec::new();
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .filter(audit_event::Column::At.lte(at))
        .filter(audit_event::Column::Outcome.eq(Outcome::Success.as_str()))
        .filter(audit_event::Column::Action.is_in([
            "policy.exception_added",
            "policy.exception_removed",
            "member.removed",
        ]))
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await?;
    for event in events {
        let Some(member_id) = event.target_id else {
            continue;
        };
        in_force.retain(|exception| exception.member_id != member_id);
        if event.action == "policy.exception_added" {
            let details: serde_json::Value =
                serde_json::from_str(&event.details).unwrap_or_default();
            in_force.push(Exception {
                id: details["exception"]
                    .as_i64()
                    .and_then(|id| i32::try_from(id).ok())
                    .unwrap_or(0),
                member_id,
                email: event.target.unwrap_or_default(),
                allowed: details["backup_codes"] == "allow",
                reason: details["reason"].as_str().unwrap_or_default().to_owned(),
                created_by: event.actor,
                created_at: event.at,
            });
        }
    }
    in_force.sort_by_key(|exception| exception.id);
    Ok(in_force)
}

async fn organization_of(
    db: &DatabaseConnection,
    org_id: i32,
) -> Result<crate::accounts::Organization, PolicyChangeError> {
    crate::accounts::organization(db, org_id)
        .await
        .map_err(|error| match error {
            crate::accounts::AccountError::Database(cause) => PolicyChangeError::Database(cause),
            other => PolicyChangeError::Database(DbErr::Custom(other.to_string())),
        })
}

/// A Casbin rule as exports show it: `p, subject, domain, object, action, effect`.
fn rule_line(
    ptype: &str,
    subject: &str,
    domain: &str,
    object: &str,
    act: &str,
    eft: &str,
) -> String {
    format!("{ptype}, {subject}, {domain}, {object}, {act}, {eft}")
}

/// The baseline's rules, then the organization's `own`, sorted.
fn with_baseline(mut own: Vec<String>) -> Vec<String> {
    own.sort();
    crate::authz::BASELINE_POLICY
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("p,"))
        .map(str::to_owned)
        .chain(own)
        .collect()
}

/// [`export`], or [`export_at`] a past moment, for an owner or admin of the organization.
pub async fn export_seen_by(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewPolicy)
        .await?;
    match at {
        Some(at) => export_at(db, viewer.org_id, at, now).await,
        None => export(db, viewer.org_id, now).await,
    }
}

/// A member's backup codes under their organization's policy, as their account page shows
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCodes {
    /// The gate lets them generate and redeem codes.
    pub usable: bool,
    /// The organization requires a valid set of every member with MFA.
    pub required: bool,
    /// Their set in force, if any.
    pub set: Option<crate::backup_codes::CodeStatus>,
    /// The organization's rules for codes (set size, warning threshold, maximum age).
    pub rules: CodePolicy,
}

impl MemberCodes {
    /// Under "Required", a member with MFA must hold unused codes of a set that has not
    /// expired (exempted members are not bound).
    pub fn compliant(&self, mfa_enabled: bool) -> bool {
        !self.required
            || !self.usable
            || !mfa_enabled
            || self
                .set
                .as_ref()
                .is_some_and(|set| set.remaining > 0 && !set.expired)
    }
}

/// `member`'s codes under their organization's policy.
pub async fn member_codes(
    db: &DatabaseConnection,
    authz: &Authz,
    member: &Member,
    now: DateTime<Utc>,
) -> Result<MemberCodes, crate::backup_codes::BackupCodeError> {
    let policy = current(db, member.org_id).await?.policy;
    let rules = policy.code_policy();
    let set = crate::backup_codes::status(db, authz, member, &rules, now).await?;
    let usable = crate::backup_codes::usable(authz, member).await?;
    Ok(MemberCodes {
        usable,
        required: policy.codes == CodesMode::Required,
        set,
        rules,
    })
}

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
    let exempt = exceptions_by_member(db, actor.org_id).await?;
    let mut impact = Impact::default();
    let mut add = |effect: String, members: Vec<String>| {
        impact.effects.push(effect);
        impact
            .members
            .push(members.into_iter().take(LISTED_MEMBERS).collect());
    };

    if policy.codes == CodesMode::NotAllowed && before.codes != CodesMode::NotAllowed {
        // Members exempted into codes keep theirs.
        let losing: Vec<&Holding> = holdings
            .iter()
            .filter(|h| h.unused > 0 && exempt.get(&h.member_id) != Some(&true))
            .collect();
        let codes: u64 = losing.iter().map(|h| h.unused).sum();
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
    let expired_after = |h: &Holding, days: u16| {
        h.generated_at
            .is_some_and(|at| days > 0 && at + Duration::days(days.into()) <= now)
    };
    if policy.max_set_age_days != before.max_set_age_days && policy.max_set_age_days > 0 {
        let expiring: Vec<&Holding> = holdings
            .iter()
            .filter(|h| {
                expired_after(h, policy.max_set_age_days)
                    && !expired_after(h, before.max_set_age_days)
            })
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
    if policy.codes == CodesMode::Required {
        let compliant = |h: &Holding, p: &OrgPolicy| {
            !h.mfa_enabled || (h.unused > 0 && !expired_after(h, p.max_set_age_days))
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

/// One member's backup codes, for the impact preview.
struct Holding {
    member_id: i32,
    email: String,
    mfa_enabled: bool,
    generated_at: Option<DateTime<Utc>>,
    unused: u64,
}

/// Every member of the organization with their set in force, if any, and its unused codes.
async fn holdings(db: &DatabaseConnection, org_id: i32) -> Result<Vec<Holding>, DbErr> {
    let members = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .order_by_asc(user_account::Column::Id)
        .all(db)
        .await?;
    let sets: Vec<(i32, i32, DateTime<Utc>)> = backup_code_set::Entity::find()
        .select_only()
        .column(backup_code_set::Column::Id)
        .column(backup_code_set::Column::UserId)
        .column(backup_code_set::Column::GeneratedAt)
        .inner_join(user_account::Entity)
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let unused: Vec<(i32, i64)> = backup_code::Entity::find()
        .select_only()
        .column(backup_code::Column::SetId)
        .column_as(backup_code::Column::Id.count(), "unused")
        .filter(backup_code::Column::UsedAt.is_null())
        .filter(backup_code::Column::SetId.is_in(sets.iter().map(|(id, _, _)| *id)))
        .group_by(backup_code::Column::SetId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(members
        .into_iter()
        .map(|member| {
            let set = sets.iter().find(|(_, user, _)| *user == member.id);
            let unused = set
                .and_then(|(set_id, _, _)| unused.iter().find(|(id, _)| id == set_id))
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0));
            Holding {
                member_id: member.id,
                email: member.email,
                mfa_enabled: member.totp_enabled_at.is_some(),
                generated_at: set.map(|(_, _, at)| *at),
                unused,
            }
        })
        .collect())
}

/// Each exempted member's direction: `true` when codes are allowed for them.
async fn exceptions_by_member(
    db: &DatabaseConnection,
    org_id: i32,
) -> Result<std::collections::HashMap<i32, bool>, DbErr> {
    Ok(policy_exception::Entity::find()
        .filter(policy_exception::Column::OrgId.eq(org_id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.user_id, row.effect == "allow"))
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn form() -> PolicyForm {
        PolicyForm::from_policy(&OrgPolicy::default())
    }

    /// What a person (or an attacker) might type into one field of the form.
    fn typed() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,24}",
            "-?[0-9]{1,25}",
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "not_allowed",
                "allowed",
                "required",
                "any_code",
                "numbered_code",
                " 10 ",
                "1e3",
                "0x10",
                "<script>",
                "' OR 1=1 --",
                "\u{0}",
                "\u{661}\u{662}",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn any_form() -> impl Strategy<Value = PolicyForm> {
        (
            prop::array::uniform7(typed()),
            prop::option::of(typed()),
            prop::option::of(typed()),
        )
            .prop_map(|(fields, restrict, approval)| {
                let [codes, per_set, age, low, attempts, minutes, entry] = fields;
                PolicyForm {
                    backup_codes: codes,
                    codes_per_set: per_set,
                    max_set_age_days: age,
                    low_codes_threshold: low,
                    lockout_attempts: attempts,
                    lockout_minutes: minutes,
                    code_entry: entry,
                    restrict_after_backup_sign_in: restrict,
                    recovery_code_approval: approval,
                }
            })
    }

    fn any_policy() -> impl Strategy<Value = OrgPolicy> {
        (
            prop::sample::select(vec![
                CodesMode::NotAllowed,
                CodesMode::Allowed,
                CodesMode::Required,
            ]),
            MIN_CODES_PER_SET..=MAX_CODES_PER_SET,
            0..=MAX_SET_AGE_DAYS,
            any::<u8>(),
            1..=MAX_LOCKOUT_ATTEMPTS,
            1..=MAX_LOCKOUT_MINUTES,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(codes, per_set, age, low, attempts, minutes, numbered, restrict, approval)| {
                    OrgPolicy {
                        codes,
                        codes_per_set: per_set,
                        max_set_age_days: age,
                        low_codes_threshold: low % per_set,
                        lockout_attempts: attempts,
                        lockout_minutes: minutes,
                        code_entry: if numbered {
                            CodeEntry::NumberedCode
                        } else {
                            CodeEntry::AnyCode
                        },
                        restrict_after_backup_sign_in: restrict,
                        recovery_code_approval: approval,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever is typed, the form either gives a policy within every bound or names
        /// the one field that is wrong; it never panics.
        #[test]
        fn any_input_gives_a_policy_in_bounds_or_names_its_field(form in any_form()) {
            const FIELDS: [&str; 7] = [
                "backup_codes", "codes_per_set", "max_set_age_days", "low_codes_threshold",
                "lockout_attempts", "lockout_minutes", "code_entry",
            ];
            match form.parse() {
                Ok(policy) => {
                    prop_assert!((MIN_CODES_PER_SET..=MAX_CODES_PER_SET).contains(&policy.codes_per_set));
                    prop_assert!(policy.max_set_age_days <= MAX_SET_AGE_DAYS);
                    prop_assert!(policy.low_codes_threshold < policy.codes_per_set);
                    prop_assert!((1..=MAX_LOCKOUT_ATTEMPTS).contains(&policy.lockout_attempts));
                    prop_assert!((1..=MAX_LOCKOUT_MINUTES).contains(&policy.lockout_minutes));
                }
                Err(error) => {
                    prop_assert!(FIELDS.contains(&error.field.as_str()), "{}", error.field);
                    prop_assert!(!error.message.is_empty());
                }
            }
        }

        /// Every policy in bounds survives the form: filled in, posted, parsed back.
        #[test]
        fn every_policy_fills_the_form_and_parses_back(policy in any_policy()) {
            prop_assert_eq!(PolicyForm::from_policy(&policy).parse().unwrap(), policy);
        }
    }

    #[test]
    fn the_default_form_parses_back_to_the_default_policy() {
        assert_eq!(form().parse().unwrap(), OrgPolicy::default());
    }

    #[test]
    fn every_setting_out_of_range_or_not_a_number_is_refused_next_to_its_field() {
        /// Sets one field of the form.
        type Setter = fn(&mut PolicyForm, &str);
        let cases: [(Setter, &str, &[&str]); 7] = [
            (
                |f, v| f.backup_codes = v.into(),
                "backup_codes",
                &["", "maybe", "ALLOWED"],
            ),
            (
                |f, v| f.codes_per_set = v.into(),
                "codes_per_set",
                &["4", "21", "-1", "ten", "1e3", "99999999999"],
            ),
            (
                |f, v| f.max_set_age_days = v.into(),
                "max_set_age_days",
                &["-1", "3651", "1.5", ""],
            ),
            (
                |f, v| f.low_codes_threshold = v.into(),
                "low_codes_threshold",
                &["10", "-2", "x"],
            ),
            (
                |f, v| f.lockout_attempts = v.into(),
                "lockout_attempts",
                &["0", "21", "<b>"],
            ),
            (
                |f, v| f.lockout_minutes = v.into(),
                "lockout_minutes",
                &["0", "1441", "' OR 1=1"],
            ),
            (|f, v| f.code_entry = v.into(), "code_entry", &["", "every"]),
        ];
        for (set, field, values) in cases {
            for value in values {
                let mut form = form();
                set(&mut form, value);
                let error = form.parse().unwrap_err();
                assert_eq!(error.field, field, "{field} = {value:?}");
            }
        }
    }

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
}
