//! The alerts an organization's administrators get, as the organization chose them
//! ([`crate::org_policy::alerts`] saves the choice): which events, and how many refused
//! backup codes against one member in how many minutes make an alert.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::entity::alert_settings;

/// What administrators can be alerted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// An administrator requested, or a member used, a sign-in code an administrator issued.
    IssuedCode,
    /// An owner or admin signed in with a backup code.
    PrivilegedBackupSignIn,
    /// [`AlertSettings::failed_redemptions_count`] refused backup codes against one member
    /// within [`AlertSettings::failed_redemptions_minutes`].
    FailedRedemptions,
    /// A member's password, authenticator or backup-code sign-in was locked.
    Lock,
    /// The policy was loosened: codes allowed again, the lockout weakened, approval off.
    PolicyLoosened,
    /// A member reported "This wasn't me".
    Incident,
}

impl AlertKind {
    /// Every kind, in the order the settings page lists them.
    pub const ALL: [Self; 6] = [
        Self::IssuedCode,
        Self::PrivilegedBackupSignIn,
        Self::FailedRedemptions,
        Self::Lock,
        Self::PolicyLoosened,
        Self::Incident,
    ];

    /// The form field and stored name, e.g. `issued_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IssuedCode => "issued_code",
            Self::PrivilegedBackupSignIn => "privileged_backup_sign_in",
            Self::FailedRedemptions => "failed_redemptions",
            Self::Lock => "lock",
            Self::PolicyLoosened => "policy_loosened",
            Self::Incident => "incident",
        }
    }

    /// What the settings page says the alert is about.
    pub fn label(self) -> &'static str {
        match self {
            Self::IssuedCode => "A sign-in code issued by an administrator is requested or used",
            Self::PrivilegedBackupSignIn => "An owner or admin signs in with a backup code",
            Self::FailedRedemptions => "Repeated wrong backup codes against one member",
            Self::Lock => "A member's sign-in is locked after wrong attempts",
            Self::PolicyLoosened => {
                "The policy is loosened (codes allowed again, a weaker lockout, approval off)"
            }
            Self::Incident => "A member reports \"This wasn't me\"",
        }
    }
}

/// An organization's alert choices. The default, until an owner or admin saves others,
/// alerts to everything, at 10 refused codes in 10 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    pub issued_code: bool,
    pub privileged_backup_sign_in: bool,
    pub failed_redemptions: bool,
    /// Refused codes against one member that make an alert, 2 to 1000.
    pub failed_redemptions_count: u32,
    /// Within this many minutes, 1 to 1440.
    pub failed_redemptions_minutes: u32,
    pub lock: bool,
    pub policy_loosened: bool,
    pub incident: bool,
    /// Kept for one message a day ([`super::digest`]) instead of sent at once.
    pub daily_digest: bool,
}

/// The bounds of [`AlertSettings::failed_redemptions_count`].
pub const FAILED_COUNT_RANGE: std::ops::RangeInclusive<u32> = 2..=1000;
/// The bounds of [`AlertSettings::failed_redemptions_minutes`].
pub const FAILED_MINUTES_RANGE: std::ops::RangeInclusive<u32> = 1..=1440;

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            issued_code: true,
            privileged_backup_sign_in: true,
            failed_redemptions: true,
            failed_redemptions_count: 10,
            failed_redemptions_minutes: 10,
            lock: true,
            policy_loosened: true,
            incident: true,
            daily_digest: false,
        }
    }
}

impl AlertSettings {
    /// Whether administrators are alerted to `kind`.
    pub fn wants(&self, kind: AlertKind) -> bool {
        match kind {
            AlertKind::IssuedCode => self.issued_code,
            AlertKind::PrivilegedBackupSignIn => self.privileged_backup_sign_in,
            AlertKind::FailedRedemptions => self.failed_redemptions,
            AlertKind::Lock => self.lock,
            AlertKind::PolicyLoosened => self.policy_loosened,
            AlertKind::Incident => self.incident,
        }
    }

    /// `self` with `kind` on or off.
    pub fn with(mut self, kind: AlertKind, on: bool) -> Self {
        let field = match kind {
            AlertKind::IssuedCode => &mut self.issued_code,
            AlertKind::PrivilegedBackupSignIn => &mut self.privileged_backup_sign_in,
            AlertKind::FailedRedemptions => &mut self.failed_redemptions,
            AlertKind::Lock => &mut self.lock,
            AlertKind::PolicyLoosened => &mut self.policy_loosened,
            AlertKind::Incident => &mut self.incident,
        };
        *field = on;
        self
    }
}

/// The organization's alert settings, or the defaults when it saved none.
pub async fn settings(db: &impl ConnectionTrait, org_id: i32) -> Result<AlertSettings, DbErr> {
    Ok(alert_settings::Entity::find_by_id(org_id)
        .one(db)
        .await?
        .map_or_else(AlertSettings::default, |row| AlertSettings {
            issued_code: row.issued_code,
            privileged_backup_sign_in: row.privileged_backup_sign_in,
            failed_redemptions: row.failed_redemptions,
            failed_redemptions_count: u32::try_from(row.failed_redemptions_count)
                .unwrap_or(10)
                .clamp(*FAILED_COUNT_RANGE.start(), *FAILED_COUNT_RANGE.end()),
            failed_redemptions_minutes: u32::try_from(row.failed_redemptions_minutes)
                .unwrap_or(10)
                .clamp(*FAILED_MINUTES_RANGE.start(), *FAILED_MINUTES_RANGE.end()),
            lock: row.lock,
            policy_loosened: row.policy_loosened,
            incident: row.incident,
            daily_digest: row.daily_digest,
        }))
}

/// Writes `settings` for `org_id` in `db` (the caller's transaction, which records the
/// change), replacing any saved before.
pub async fn store(
    db: &impl ConnectionTrait,
    org_id: i32,
    settings: &AlertSettings,
    saved_by: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use sea_orm::{ActiveValue::Set, sea_query::OnConflict};
    let row = alert_settings::ActiveModel {
        org_id: Set(org_id),
        issued_code: Set(settings.issued_code),
        privileged_backup_sign_in: Set(settings.privileged_backup_sign_in),
        failed_redemptions: Set(settings.failed_redemptions),
        failed_redemptions_count: Set(
            i32::try_from(settings.failed_redemptions_count).unwrap_or(i32::MAX)
        ),
        failed_redemptions_minutes: Set(
            i32::try_from(settings.failed_redemptions_minutes).unwrap_or(i32::MAX)
        ),
        lock: Set(settings.lock),
        policy_loosened: Set(settings.policy_loosened),
        incident: Set(settings.incident),
        daily_digest: Set(settings.daily_digest),
        saved_at: Set(now),
        saved_by: Set(Some(saved_by.to_owned())),
    };
    alert_settings::Entity::insert(row)
        .on_conflict(
            OnConflict::column(alert_settings::Column::OrgId)
                .update_columns([
                    alert_settings::Column::IssuedCode,
                    alert_settings::Column::PrivilegedBackupSignIn,
                    alert_settings::Column::FailedRedemptions,
                    alert_settings::Column::FailedRedemptionsCount,
                    alert_settings::Column::FailedRedemptionsMinutes,
                    alert_settings::Column::Lock,
                    alert_settings::Column::PolicyLoosened,
                    alert_settings::Column::Incident,
                    alert_settings::Column::DailyDigest,
                    alert_settings::Column::SavedAt,
                    alert_settings::Column::SavedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
