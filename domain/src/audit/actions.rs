//! The audit log's vocabulary: every action an event can record, its stored name and its
//! words for people, and the typed details of the events that are read back (exceptions
//! and policy saves), so that no reader parses keys another module wrote by convention.

use serde::{Deserialize, Serialize};

/// Declares [`AuditAction`] with each action's stored name and description in one table.
macro_rules! audit_actions {
    ($($variant:ident = $name:literal, $words:literal;)+) => {
        /// What an audit event records. Stored as [`AuditAction::as_str`]; read back with
        /// [`AuditAction::parse`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum AuditAction {
            $(
                #[doc = $words]
                $variant,
            )+
        }

        impl AuditAction {
            /// Every action, in the order of the table above.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name stored in `audit_event.action`, e.g. `backup_code.redeemed`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The action in words, for people reading a history.
            pub fn words(self) -> &'static str {
                match self {
                    $(Self::$variant => $words,)+
                }
            }
        }
    };
}

audit_actions! {
    OrganizationCreated = "organization.created", "Organization created";
    MemberAdded = "member.added", "Account created";
    MemberRemoved = "member.removed", "Account removed";
    MemberRoleChanged = "member.role_changed", "Role changed";
    MemberUnlocked = "member.unlocked", "Sign-in unlocked by an administrator";
    MfaEnabled = "mfa.enabled", "Multi-factor authentication turned on";
    MfaDisabled = "mfa.disabled", "Multi-factor authentication turned off";
    MfaReplaced = "mfa.replaced", "Authenticator replaced (multi-factor authentication stayed on)";
    MfaReset = "mfa.reset", "Multi-factor authentication reset by an administrator";
    SignInSucceeded = "sign_in.succeeded", "Signed in";
    SignInFailed = "sign_in.failed", "A sign-in failed";
    PasswordLocked = "password.locked", "Password sign-in locked after wrong passwords";
    TotpLocked = "totp.locked", "Authenticator sign-in locked after wrong codes";
    BackupCodesGenerated = "backup_codes.generated", "Backup codes generated";
    BackupCodesReplaced = "backup_codes.replaced", "New backup codes generated (the old ones stopped working)";
    BackupCodesRevoked = "backup_codes.revoked", "Backup codes revoked by an administrator";
    BackupCodesExpired = "backup_codes.expired", "Backup codes expired (past the maximum set age)";
    BackupCodesGenerateRefused = "backup_codes.generate_refused", "Generating backup codes was refused";
    BackupCodeRedeemed = "backup_code.redeemed", "Signed in with a backup code";
    BackupCodeRefused = "backup_code.refused", "A backup code was refused";
    BackupCodeLocked = "backup_code.locked", "Backup-code sign-in locked after wrong codes";
    RecoveryCodeRequested = "recovery_code.requested", "Recovery code requested";
    RecoveryCodeApproved = "recovery_code.approved", "Recovery code approved";
    RecoveryCodeRevealed = "recovery_code.revealed", "Recovery code revealed to the requesting administrator";
    RecoveryCodeUsed = "recovery_code.used", "Signed in with a recovery code from an administrator";
    RecoveryCodeEnded = "recovery_code.ended", "A recovery code from an administrator was ended (cancelled, replaced, or with the member's other stand-ins)";
    PolicySaved = "policy.saved", "Backup-code policy saved";
    PolicyExceptionAdded = "policy.exception_added", "Policy exception added";
    PolicyExceptionRemoved = "policy.exception_removed", "Policy exception removed";
    AlertsSaved = "alerts.saved", "Administrator alert settings saved";
    NotificationAddressAdded = "notification_address.added", "Second address for security notifications added (not yet confirmed)";
    NotificationAddressVerified = "notification_address.verified", "Second address for security notifications confirmed";
    NotificationAddressRemoved = "notification_address.removed", "Second address for security notifications removed";
    IncidentReported = "incident.reported", "Reported \"This wasn't me\" from a security notice";
    WebhookAdded = "webhook.added", "Webhook added (the organization's events are sent to it)";
    WebhookRemoved = "webhook.removed", "Webhook removed";
    WebhookDeliveryFailed = "webhook.delivery_failed", "An event could not be delivered to a webhook after every attempt";
    BackupRequested = "backup.requested", "A backup of the organization's data was requested";
    BackupCreated = "backup.created", "A backup of the organization's data was taken";
    BackupFailed = "backup.failed", "A backup of the organization's data could not be made";
    BackupDownloaded = "backup.downloaded", "A backup of the organization's data was downloaded";
    BackupExpired = "backup.expired", "A backup's archive was deleted at the end of its time";
    BackupDeleted = "backup.deleted", "A backup's archive was deleted before its time";
    BackupRestored = "backup.restored", "The organization was restored from a backup";
    ApiTokenCreated = "api_token.created", "Personal access token for the API created";
    ApiTokenRevoked = "api_token.revoked", "Personal access token for the API revoked";
    ApiTokenUsed = "api_token.used", "The API was called with a personal access token";
    GroupCreated = "group.created", "Group of members created";
    GroupDeleted = "group.deleted", "Group of members deleted";
    GroupMembersAdded = "group.members_added", "Members added to a group";
    GroupMemberRemoved = "group.member_removed", "Member taken out of a group";
    GroupExceptionSet = "group.exception_set", "A group's exception from the backup-code setting changed";
    GroupScopeSet = "group.scope_set", "A help-desk member's groups changed (whom they assist)";
}

impl AuditAction {
    /// The action stored as `name`, if Lifeline knows it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|action| action.as_str() == name)
    }

    /// The families of actions, in the order of the table: the part of each name before the
    /// dot (`backup_code`, `mfa`, …), which a webhook subscribes to.
    pub fn families() -> Vec<&'static str> {
        let mut families: Vec<&'static str> = Vec::new();
        for action in Self::ALL {
            let family = action
                .as_str()
                .split_once('.')
                .map_or(action.as_str(), |(f, _)| f);
            if !families.contains(&family) {
                families.push(family);
            }
        }
        families
    }

    /// Whether the action's own name says it was refused (then "Refused: …" would say it twice).
    fn names_a_refusal(self) -> bool {
        self.as_str().ends_with("refused")
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored action and outcome in words, for people reading their history: the action's
/// words, with "Refused: " before an action the gate denied; an action this version does not
/// know is shown by its stored name and outcome.
pub fn describe(action: &str, outcome: &str) -> String {
    let Some(known) = AuditAction::parse(action) else {
        return format!("{action} ({outcome})");
    };
    if outcome == super::Outcome::Denied.as_str() && !known.names_a_refusal() {
        format!("Refused: {}", known.words())
    } else {
        known.words().to_owned()
    }
}

/// The details of `policy.exception_added` and `policy.exception_removed`: what the export
/// of a past date replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionDetails {
    /// The exception's id.
    pub exception: i32,
    /// `allow` or `deny`.
    pub backup_codes: String,
    pub reason: String,
}

impl ExceptionDetails {
    /// Whether the exception allows the member backup codes.
    pub fn allows(&self) -> bool {
        self.backup_codes == "allow"
    }
}

/// The details of every `group.*` event: what the export of a past date replays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDetails {
    /// The group's id (`group.scope_set`: none).
    #[serde(default)]
    pub group: Option<i32>,
    /// The group's name then.
    #[serde(default)]
    pub name: String,
    /// `group.members_added`: the ids of the members added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<i32>,
    /// `group.exception_set`: `allow`, `deny`, or none (the group follows the setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `group.scope_set`: the groups the help-desk member assists now (none: everyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<i32>,
}

/// One setting that a policy save changed, as the save's details record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// The details of `policy.saved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySavedDetails {
    pub version: i32,
    pub changes: Vec<Change>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_stored_name_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
            assert!(names.insert(action.as_str()), "{action} twice");
            assert!(!action.words().is_empty());
        }
    }

    #[test]
    fn refusals_read_as_refused_once_and_unknown_actions_by_name() {
        assert_eq!(
            describe("member.removed", "denied"),
            "Refused: Account removed"
        );
        assert_eq!(
            describe("backup_codes.generate_refused", "denied"),
            "Generating backup codes was refused"
        );
        assert_eq!(
            describe("backup_code.redeemed", "success"),
            "Signed in with a backup code"
        );
        assert_eq!(
            describe("future.thing", "success"),
            "future.thing (success)"
        );
    }
}
