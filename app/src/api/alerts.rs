//! The alerts page, for owners and admins: which events the administrators are alerted to by
//! email, and the security messages that could not be delivered.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One alert the page offers, ticked or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertChoice {
    /// The checkbox's name, e.g. `lock`.
    pub name: String,
    pub label: String,
    pub on: bool,
}

/// A message that was given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedMessage {
    pub recipient: String,
    pub subject: String,
    pub written_at: String,
    pub failed_at: String,
    pub attempts: i32,
    pub last_error: String,
}

/// The alerts page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsOverview {
    pub choices: Vec<AlertChoice>,
    pub failed_redemptions_count: u32,
    pub failed_redemptions_minutes: u32,
    /// Alerts go out once a day in a digest instead of at once.
    pub daily_digest: bool,
    /// The hour (UTC) of the digest.
    pub digest_hour: u32,
    /// The viewer may change the settings.
    pub can_change: bool,
    pub failed: Vec<FailedMessage>,
}

/// The organization's alert settings and failed messages.
#[server(endpoint = "admin/alerts")]
pub async fn get_alerts() -> Result<AlertsOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let settings =
            domain::org_policy::alerts::alert_settings(&state.db, &state.authz, &member).await?;
        let failed =
            domain::org_policy::alerts::failed_deliveries(&state.db, &state.authz, &member).await?;
        let can_change = state
            .authz
            .allows(&member, member.org_id, domain::authz::Action::ManagePolicy)
            .await
            .unwrap_or(false);
        Ok(AlertsOverview {
            choices: domain::notifications::AlertKind::ALL
                .into_iter()
                .map(|kind| AlertChoice {
                    name: kind.as_str().to_owned(),
                    label: kind.label().to_owned(),
                    on: settings.wants(kind),
                })
                .collect(),
            failed_redemptions_count: settings.failed_redemptions_count,
            failed_redemptions_minutes: settings.failed_redemptions_minutes,
            daily_digest: settings.daily_digest,
            digest_hour: domain::notifications::digest::DIGEST_HOUR,
            can_change,
            failed: failed
                .into_iter()
                .map(|message| FailedMessage {
                    recipient: message.recipient,
                    subject: message.subject,
                    written_at: crate::api::readable_time(message.created_at),
                    failed_at: crate::api::readable_time(message.failed_at),
                    attempts: message.attempts,
                    last_error: message.last_error.unwrap_or_default(),
                })
                .collect(),
        })
    })
    .await
}

/// The alerts form as posted, each field as `fields[name]`: a checkbox per alert (present
/// when ticked, named as [`AlertChoice::name`]) and the two numbers of the wrong-codes alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFields {
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

/// Saves the alert settings.
#[server(endpoint = "admin/alerts/save")]
pub async fn save_alerts(fields: AlertFields) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let form = domain::org_policy::alerts::AlertsForm {
            issued_code: fields.issued_code,
            privileged_backup_sign_in: fields.privileged_backup_sign_in,
            failed_redemptions: fields.failed_redemptions,
            failed_redemptions_count: fields.failed_redemptions_count,
            failed_redemptions_minutes: fields.failed_redemptions_minutes,
            lock: fields.lock,
            policy_loosened: fields.policy_loosened,
            incident: fields.incident,
            daily_digest: fields.daily_digest,
        };
        let settings = form.parse()?;
        domain::org_policy::alerts::save_alerts(
            &crate::auth::command(&state, &member, &source),
            &settings,
        )
        .await?;
        leptos_axum::redirect("/admin/alerts?saved=1");
        Ok(())
    })
    .await
}
