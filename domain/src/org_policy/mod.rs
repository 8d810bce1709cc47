//! An organization's policy for backup codes, as its owners and admins set it: whether
//! members may use them ("Not allowed", "Allowed", "Required"), how many codes a set holds,
//! how long a set lives, when to warn, how many wrong codes end a sign-in attempt,
//! whether administrators may request data backups (owners always may), and exceptions for
//! named members.
//!
//! - [`settings`]: the settings, their form, the saved versions, and saving one. The
//!   allow/deny parts (backup codes, data backups) compile to Casbin rules
//!   ([`crate::authz::rules`]) written in the same transaction as the version, its audit
//!   event and the revision bump.
//! - [`form`]: the settings as typed, checked within their bounds.
//! - [`exceptions`]: exceptions for named members, and "Explain".
//! - [`export`]: the policy in force now or at a past moment, as a document.
//! - [`impact`]: what a save would do, before it is saved.
//! - [`issued_codes`]: the rules for recovery codes administrators issue (lifetimes, uses,
//!   who may issue, the last compiled to Casbin rules).
//! - [`approval`]: two-admin approval as it binds at a moment (turning it off binds later).
//! - [`alerts`]: which events the administrators are alerted to.
//! - `notices`: what a save tells the members whose codes stop, and the administrators.

pub mod alerts;
pub mod approval;
pub mod exceptions;
pub mod export;
pub mod form;
pub mod grace;
pub mod impact;
pub mod issued_codes;
mod notices;
pub mod settings;
pub mod webhooks;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};

pub use self::{
    approval::{APPROVAL_OFF_DELAY, TwoAdminApproval, two_admin_approval},
    exceptions::{Exception, add_exception, explain, remove_exception},
    export::{PolicyExport, export, export_at, export_seen_by, parse_as_of},
    form::PolicyForm,
    impact::{Impact, impact},
    issued_codes::{Issuers, RecoveryCodeRules},
    settings::{
        CodeEntry, CodesMode, MAX_CODES_PER_SET, MAX_GRACE_DAYS, MIN_CODES_PER_SET, OrgPolicy,
        PolicyVersion, current, history, save,
    },
};
pub use crate::audit::Change;
use crate::{
    authz::{Authz, AuthzError, PolicyError},
    backup_codes::CodePolicy,
    identity::Member,
    input::FieldError,
};

pub use self::exceptions::exceptions;

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
    #[error("That webhook was already removed.")]
    UnknownWebhook,
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
    for org_id in crate::identity::organization_ids(db).await? {
        let policy = current(db, org_id).await?.policy.code_policy();
        recorded += crate::backup_codes::record_expiries(db, org_id, None, &policy, now).await?;
    }
    Ok(recorded)
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
    /// When they do not comply and "Required" sets a date: their deadline
    /// ([`grace::Deadline`]).
    pub deadline: Option<grace::Deadline>,
}

impl MemberCodes {
    /// Whether the member complies ([`crate::backup_codes::compliant`]).
    pub fn compliant(&self, mfa_enabled: bool) -> bool {
        crate::backup_codes::compliant(self.required, self.usable, mfa_enabled, self.set.as_ref())
    }
}

/// `member`'s codes under their organization's policy.
pub async fn member_codes(
    db: &impl ConnectionTrait,
    authz: &Authz,
    member: &Member,
    now: DateTime<Utc>,
) -> Result<MemberCodes, crate::backup_codes::BackupCodeError> {
    let policy = current(db, member.org_id).await?.policy;
    member_codes_under(db, authz, member, &policy, now).await
}

/// `member`'s codes under `policy`, their organization's in force.
pub(crate) async fn member_codes_under(
    db: &impl ConnectionTrait,
    authz: &Authz,
    member: &Member,
    policy: &OrgPolicy,
    now: DateTime<Utc>,
) -> Result<MemberCodes, crate::backup_codes::BackupCodeError> {
    let rules = policy.code_policy();
    let set = crate::backup_codes::status(db, authz, member, &rules, now).await?;
    let usable = crate::backup_codes::usable(authz, member).await?;
    let mut codes = MemberCodes {
        usable,
        required: policy.codes == CodesMode::Required,
        set,
        rules,
        deadline: None,
    };
    if !codes.compliant(member.mfa_enabled) {
        codes.deadline = grace::deadline_at(policy, member.created_at, now);
    }
    Ok(codes)
}
