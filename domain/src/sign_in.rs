//! One sign-in path for every factor: the password, then the authenticator code or a backup
//! code (with an administrator-issued recovery code tried inside the backup-code step).
//!
//! Each step reads the organization's policy itself, checks the factor under the account's
//! lockout ([`crate::lockout`]), and records `sign_in.succeeded` in the same transaction as
//! the factor's success, with one `now`. A refused step says whether it used up one of the
//! pending sign-in's attempts ([`StepRefused`]), so the web layer counts them without knowing
//! the rules.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};

use crate::{
    accounts::{self, PasswordCheck},
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry, Redeemed},
    command::Command,
    entity::user_account,
    hashing::PasswordHasher,
    identity::{Email, Member},
    lockout::{self, Factor},
    lookup_secret::BackupCodeHasher,
    mfa::{self, MfaError},
    org_policy::{self, CodeEntry as EntryRule, OrgPolicy},
    recovery_codes,
    secrets::{Password, SecretKey},
};

/// How a member signed in, as `sign_in.succeeded` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
    PasswordAndTotp,
    PasswordAndBackupCode,
    /// A recovery code an administrator issued, typed where backup codes are.
    PasswordAndRecoveryCode,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::PasswordAndTotp => "password+totp",
            Self::PasswordAndBackupCode => "password+backup_code",
            Self::PasswordAndRecoveryCode => "password+recovery_code",
        }
    }
}

/// The event of `member` signing in by `method`.
fn signed_in(member: &Member, method: Method) -> Event<'_> {
    Event {
        action: AuditAction::SignInSucceeded,
        actor: Some(member),
        target: Some(member),
        outcome: Outcome::Success,
        details: serde_json::json!({ "method": method.as_str() }),
    }
}

/// A refused second-factor step.
#[derive(Debug)]
pub struct StepRefused<E> {
    pub error: E,
    /// The refusal uses up one of the pending sign-in's attempts: a wrong code, not a blank
    /// or malformed one.
    pub counts_as_attempt: bool,
    /// How many attempts the organization allows a pending sign-in.
    pub attempts_allowed: u8,
}

impl<E> StepRefused<E> {
    fn new(error: E, counts_as_attempt: bool, attempts_allowed: u8) -> Self {
        Self {
            error,
            counts_as_attempt,
            attempts_allowed,
        }
    }
}

impl<E: From<DbErr>> From<DbErr> for StepRefused<E> {
    fn from(error: DbErr) -> Self {
        Self::new(error.into(), false, 0)
    }
}

/// Where the password step leaves a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordStep {
    /// No MFA: signed in, and recorded.
    SignedIn(Member),
    /// MFA is on: the authenticator code (or a backup code) is owed.
    SecondFactorOwed(Member),
}

impl PasswordStep {
    /// The member the password belongs to.
    pub fn into_member(self) -> Member {
        match self {
            Self::SignedIn(member) | Self::SecondFactorOwed(member) => member,
        }
    }
}

/// Checks an email and password under the per-account limit. Unknown email, wrong
/// password and a locked password give the same answer (`None`), each after one argon2
/// verification. A refusal for an existing account is recorded in its organization's audit
/// log and counted before the answer.
pub async fn password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    email: &Email,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Option<PasswordStep>, accounts::AccountError> {
    let row = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    let check = accounts::check_password(db, hasher, row.as_ref(), password, source, now).await?;
    let member = row.map(Member::try_from).transpose()?;
    let (member, ticket) = match (member, check) {
        (Some(member), PasswordCheck::Passed(ticket)) => (member, ticket),
        (Some(member), PasswordCheck::Refused(refusal, limits)) => {
            lockout::record_refusal(db, &member, Factor::Password, refusal, limits, source, now)
                .await?;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let txn = db.begin().await?;
    ticket.passed(&txn).await?;
    if member.mfa_enabled {
        txn.commit().await?;
        return Ok(Some(PasswordStep::SecondFactorOwed(member)));
    }
    lockout::signed_in(&txn, member.id).await?;
    audit::record(
        &txn,
        member.org_id,
        signed_in(&member, Method::Password),
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Some(PasswordStep::SignedIn(member)))
}

/// The authenticator step of the command's actor, who passed the password step.
pub async fn authenticator_code(
    cmd: &Command<'_>,
    key: &SecretKey,
    code: &str,
) -> Result<(), StepRefused<MfaError>> {
    let member = cmd.actor;
    let policy = org_policy::current(cmd.db, member.org_id).await?.policy;
    let allowed = policy.lockout_attempts;
    let event = signed_in(member, Method::PasswordAndTotp);
    mfa::sign_in_with_code(cmd, key, code, policy.code_policy().limits(), &[event])
        .await
        .map_err(|error| {
            // A wrong code (not a malformed one) uses up one of this step's attempts.
            let counts = matches!(error, MfaError::WrongCode) && mfa::parse_code(code).is_ok();
            StepRefused::new(error, counts, allowed)
        })
}

/// A backup-code sign-in that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSignIn {
    pub redeemed: Redeemed,
    /// What the session may do until the member secures the account again; `None`: all
    /// their role allows.
    pub limit: Option<SessionLimit>,
}

/// How the organization's policy limits a session: to the member's own MFA settings (their
/// account, authenticator, backup codes and notifications) until they do what lifts the
/// limit. The first two are set by a backup-code sign-in and kept with the session; the
/// third is the member's standing under "Required", read again on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimit {
    /// "Only MFA settings after a backup-code sign-in": lifted by new codes or a new
    /// authenticator.
    MfaSettings,
    /// "New set required when codes run low", and the sign-in left the member at or below
    /// the low-codes threshold: lifted by a new set only, since a new authenticator leaves
    /// the codes as few as they were (NIST SP 800-63B-4 §4.1.1 asks for a replacement once
    /// a recovery code is used).
    NewSet,
    /// "Required" with a date, and the member's deadline has passed while they hold no
    /// working code ([`crate::org_policy::grace`]): lifted by whatever makes them comply
    /// (a new set, or an administrator's exception), whichever session they use.
    CodesRequired,
}

impl SessionLimit {
    /// Every limit, for the tests that sweep each one.
    pub const ALL: [Self; 3] = [Self::MfaSettings, Self::NewSet, Self::CodesRequired];

    /// The limit `policy` sets on a session whose backup-code sign-in left `remaining`
    /// unused codes, for a member who `may_generate` a new set (one who may not is never
    /// asked for one: nothing they could do would lift it). A new set owed outranks the
    /// MFA-settings limit: it is the stricter of the two.
    pub fn after_sign_in(policy: &OrgPolicy, remaining: u32, may_generate: bool) -> Option<Self> {
        let low = remaining <= u32::from(policy.low_codes_threshold);
        if policy.replace_when_low && low && may_generate {
            Some(Self::NewSet)
        } else if policy.restrict_after_backup_sign_in {
            Some(Self::MfaSettings)
        } else {
            None
        }
    }
}

/// The backup-code step of the command's actor, who passed the password step: one of their
/// backup codes, or the recovery code an administrator issued them. Under "a specific
/// numbered code", only the code the page asked for ([`numbered_code_to_ask`]) counts.
pub async fn backup_code(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    typed: &str,
) -> Result<BackupSignIn, StepRefused<BackupCodeError>> {
    let member = cmd.actor;
    let policy = org_policy::current(cmd.db, member.org_id).await?.policy;
    let allowed = policy.lockout_attempts;
    // When the page asked for none (slot 0, which no set has), no code counts.
    let slot = if policy.code_entry == EntryRule::NumberedCode {
        Some(
            backup_codes::asked_slot(cmd.db, member.id)
                .await?
                .unwrap_or(0),
        )
    } else {
        None
    };
    // Asked before the code is spent, so that nothing after it can fail but the database;
    // and only when the answer can matter, not on every attempt.
    let may_generate = policy.replace_when_low
        && backup_codes::usable(cmd.authz, member)
            .await
            .map_err(|error| StepRefused::new(error, false, allowed))?;
    let issued = recovery_codes::sign_in::Issued {
        cmd,
        hasher,
        also_record: vec![signed_in(member, Method::PasswordAndRecoveryCode)],
    };
    let redeemed = backup_codes::redeem(
        cmd,
        hasher,
        &policy.code_policy(),
        &CodeEntry { typed, slot },
        Some(&issued),
        &[signed_in(member, Method::PasswordAndBackupCode)],
    )
    .await
    .map_err(|error| {
        // A code that was looked at is an attempt; input that can never be a code is not.
        let counts = matches!(error, BackupCodeError::Rejected);
        StepRefused::new(error, counts, allowed)
    })?;
    lockout::signed_in(cmd.db, member.id).await?;
    Ok(BackupSignIn {
        redeemed,
        limit: SessionLimit::after_sign_in(&policy, redeemed.remaining, may_generate),
    })
}

/// Which numbered backup code the sign-in page asks `member` for, when the organization
/// wants "a specific numbered code": the one asked before while it is unanswered, kept with
/// the set ([`backup_codes::slot_to_ask`]). `None`: any unused code will do, or they hold
/// none.
pub async fn numbered_code_to_ask(
    db: &DatabaseConnection,
    member: &Member,
    now: DateTime<Utc>,
) -> Result<Option<u32>, BackupCodeError> {
    let policy = org_policy::current(db, member.org_id).await?.policy;
    if policy.code_entry != EntryRule::NumberedCode {
        return Ok(None);
    }
    backup_codes::slot_to_ask(db, member, &policy.code_policy(), now).await
}

/// What "Problem signing in?" offers a member who has just proved the account's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help {
    /// Who to contact: the organization's owners and admins.
    pub contacts: Vec<String>,
    /// The organization's policy lets this member sign in with a backup code.
    pub backup_codes: bool,
}

/// [`Help`] for `member`.
pub async fn help(
    db: &DatabaseConnection,
    authz: &Authz,
    member: &Member,
) -> Result<Help, BackupCodeError> {
    Ok(Help {
        contacts: accounts::admin_contacts(db, member.org_id).await?,
        backup_codes: backup_codes::usable(authz, member).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the two switches, the codes left against a threshold of 3, and
    /// whether the member may generate, with the limit written out as a rule.
    #[test]
    fn the_limit_after_a_backup_code_sign_in_follows_the_policy() {
        for restrict_after_backup_sign_in in [false, true] {
            for replace_when_low in [false, true] {
                for remaining in [0, 2, 3, 4, 9] {
                    for may_generate in [false, true] {
                        let policy = OrgPolicy {
                            low_codes_threshold: 3,
                            restrict_after_backup_sign_in,
                            replace_when_low,
                            ..OrgPolicy::default()
                        };
                        let expected = if replace_when_low && remaining <= 3 && may_generate {
                            Some(SessionLimit::NewSet)
                        } else if restrict_after_backup_sign_in {
                            Some(SessionLimit::MfaSettings)
                        } else {
                            None
                        };
                        assert_eq!(
                            SessionLimit::after_sign_in(&policy, remaining, may_generate),
                            expected,
                            "restrict {restrict_after_backup_sign_in}, replace {replace_when_low}, \
                             {remaining} left, may generate {may_generate}"
                        );
                    }
                }
            }
        }
    }
}
