//! Which events an organization's administrators are alerted to, as an owner or admin sets
//! them on the alerts page: reading and saving [`AlertSettings`] under the gate (the policy's
//! permissions: who views the policy views the alerts, who manages it changes them), each
//! save on the record as `alerts.saved`.

use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::{PolicyChangeError, form::number};
use crate::{
    audit::{AuditAction, Change},
    authz::{Action, Authz},
    command::{Attempt, Command},
    identity::Member,
    input::FieldError,
    notifications::{
        self, AlertKind, AlertSettings, FailedDelivery,
        alerts::{self, FAILED_COUNT_RANGE, FAILED_MINUTES_RANGE},
    },
};

/// The alerts form as posted: a checkbox per [`AlertKind`] (present when ticked, named by
/// [`AlertKind::as_str`]) and the two numbers of the refused-codes alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsForm {
    #[serde(default)]
    pub issued_code: Option<String>,
    #[serde(default)]
    pub privileged_backup_sign_in: Option<String>,
    #[serde(default)]
    pub failed_redemptions: Option<String>,
    pub failed_redemptions_count: String,
    pub failed_redemptions_minutes: String,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub policy_loosened: Option<String>,
    #[serde(default)]
    pub incident: Option<String>,
    /// A checkbox: one message a day instead of each alert at once.
    #[serde(default)]
    pub daily_digest: Option<String>,
}

impl AlertsForm {
    /// The settings the form asks for; the number that is out of bounds is named.
    pub fn parse(&self) -> Result<AlertSettings, FieldError> {
        Ok(AlertSettings {
            issued_code: self.issued_code.is_some(),
            privileged_backup_sign_in: self.privileged_backup_sign_in.is_some(),
            failed_redemptions: self.failed_redemptions.is_some(),
            failed_redemptions_count: number(
                "failed_redemptions_count",
                &self.failed_redemptions_count,
                *FAILED_COUNT_RANGE.start(),
                *FAILED_COUNT_RANGE.end(),
            )?,
            failed_redemptions_minutes: number(
                "failed_redemptions_minutes",
                &self.failed_redemptions_minutes,
                *FAILED_MINUTES_RANGE.start(),
                *FAILED_MINUTES_RANGE.end(),
            )?,
            lock: self.lock.is_some(),
            policy_loosened: self.policy_loosened.is_some(),
            incident: self.incident.is_some(),
            daily_digest: self.daily_digest.is_some(),
        })
    }
}

/// The organization's alert settings, for an owner or admin. Errors: not allowed, the
/// database's.
pub async fn alert_settings(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<AlertSettings, PolicyChangeError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewPolicy)
        .await?;
    Ok(alerts::settings(db, viewer.org_id).await?)
}

/// How many failed deliveries the alerts page lists.
const LISTED_FAILURES: u64 = 50;

/// The organization's security messages that could not be delivered after every attempt,
/// newest first (at most 50), for an owner or admin: someone was not told, and an
/// administrator should tell them another way. Errors: not allowed, the database's.
pub async fn failed_deliveries(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<Vec<FailedDelivery>, PolicyChangeError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewPolicy)
        .await?;
    Ok(notifications::failed(db, viewer.org_id, LISTED_FAILURES).await?)
}

/// Saves `settings` for the actor's organization, with `alerts.saved` naming each change, in
/// one transaction; nothing is written when nothing changed. Errors: not allowed (on the
/// record), the database's.
pub async fn save_alerts(
    cmd: &Command<'_>,
    settings: &AlertSettings,
) -> Result<AlertSettings, PolicyChangeError> {
    cmd.require(Action::ManagePolicy, Attempt::of(AuditAction::AlertsSaved))
        .await?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    let before = alerts::settings(&txn, org_id).await?;
    let changes = changes(&before, settings);
    if changes.is_empty() {
        return Ok(before);
    }
    alerts::store(&txn, org_id, settings, &cmd.actor.email, cmd.now).await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::AlertsSaved,
            None,
            serde_json::json!({ "changes": changes }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(*settings)
}

/// Each setting that differs, as the audit log records it.
fn changes(before: &AlertSettings, after: &AlertSettings) -> Vec<Change> {
    let on = |value: bool| if value { "On" } else { "Off" }.to_owned();
    let mut changes: Vec<Change> = AlertKind::ALL
        .into_iter()
        .filter(|kind| before.wants(*kind) != after.wants(*kind))
        .map(|kind| Change {
            field: kind.label().to_owned(),
            before: on(before.wants(kind)),
            after: on(after.wants(kind)),
        })
        .collect();
    if before.daily_digest != after.daily_digest {
        let how = |digest: bool| {
            if digest {
                "Once a day, in a digest"
            } else {
                "At once"
            }
            .to_owned()
        };
        changes.push(Change {
            field: "Alerts are sent".to_owned(),
            before: how(before.daily_digest),
            after: how(after.daily_digest),
        });
    }
    for (field, old, new) in [
        (
            "Wrong backup codes that make an alert",
            before.failed_redemptions_count,
            after.failed_redemptions_count,
        ),
        (
            "Within minutes",
            before.failed_redemptions_minutes,
            after.failed_redemptions_minutes,
        ),
    ] {
        if old != new {
            changes.push(Change {
                field: field.to_owned(),
                before: old.to_string(),
                after: new.to_string(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> AlertsForm {
        AlertsForm {
            issued_code: Some("on".into()),
            failed_redemptions_count: "10".into(),
            failed_redemptions_minutes: "10".into(),
            ..AlertsForm::default()
        }
    }

    #[test]
    fn unticked_boxes_are_off_and_numbers_out_of_bounds_name_their_field() {
        let settings = form().parse().unwrap();
        assert!(settings.issued_code);
        assert!(!settings.lock && !settings.incident && !settings.failed_redemptions);
        for (count, minutes, field) in [
            ("1", "10", "failed_redemptions_count"),
            ("1001", "10", "failed_redemptions_count"),
            ("ten", "10", "failed_redemptions_count"),
            ("10", "0", "failed_redemptions_minutes"),
            ("10", "1441", "failed_redemptions_minutes"),
        ] {
            let bad = AlertsForm {
                failed_redemptions_count: count.into(),
                failed_redemptions_minutes: minutes.into(),
                ..form()
            };
            assert_eq!(bad.parse().unwrap_err().field, field);
        }
    }

    #[test]
    fn every_kind_that_changes_is_named() {
        let before = AlertSettings::default();
        for kind in AlertKind::ALL {
            let after = before.with(kind, false);
            let named = changes(&before, &after);
            assert_eq!(named.len(), 1, "{kind:?}");
            assert_eq!(named[0].field, kind.label());
        }
    }
}
