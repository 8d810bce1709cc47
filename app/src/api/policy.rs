//! The organization's backup-code policy, for its owners and admins: the settings, a preview
//! of what a change would do, saving it as a new version, exceptions for named members, and
//! why the gate decides as it does for a member.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The policy form's fields as typed (checked on the server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFields {
    /// `not_allowed`, `allowed` or `required`.
    pub backup_codes: String,
    pub codes_per_set: String,
    pub max_set_age_days: String,
    pub low_codes_threshold: String,
    pub lockout_attempts: String,
    pub lockout_minutes: String,
    /// `any` or `numbered`.
    pub code_entry: String,
    /// A checkbox: `Some` when ticked.
    #[serde(default)]
    pub restrict_after_backup_sign_in: Option<String>,
    /// A checkbox: `Some` when ticked.
    #[serde(default)]
    pub recovery_code_approval: Option<String>,
    /// A checkbox: `Some` when ticked.
    #[serde(default)]
    pub admins_request_backups: Option<String>,
    /// A checkbox: `Some` when ticked.
    #[serde(default)]
    pub replace_when_low: Option<String>,
    /// `YYYY-MM-DD`, or blank.
    #[serde(default)]
    pub required_from: String,
    /// Days.
    #[serde(default)]
    pub grace_days: String,
    /// `nobody`, `owners`, `admins` or `helpdesk`.
    #[serde(default)]
    pub recovery_code_issuers: String,
    /// Lifetimes as people write them: `30m`, `8h`, `7d`.
    #[serde(default)]
    pub recovery_code_shortest: String,
    #[serde(default)]
    pub recovery_code_longest: String,
    #[serde(default)]
    pub recovery_code_default: String,
    /// Uses per code.
    #[serde(default)]
    pub recovery_code_max_uses: String,
}

/// One setting a version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// One saved version, for the history list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub version: i32,
    pub saved_by: String,
    pub saved_at: String,
    /// `saved_at` in RFC 3339, for asking for the policy as it stood then.
    pub saved_at_rfc3339: String,
    pub changes: Vec<SettingChange>,
}

/// An exception, as the policy page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionSummary {
    pub id: i32,
    pub email: String,
    /// Backup codes allowed (true) or not allowed (false) for this member.
    pub allowed: bool,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
}

/// Everything the policy page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOverview {
    pub organization: String,
    /// The version in force (0: the defaults, never saved).
    pub version: i32,
    /// The settings in force, as the form shows them.
    pub fields: PolicyFields,
    /// The settings in force, by name, as people read them.
    pub settings: Vec<(String, String)>,
    pub exceptions: Vec<ExceptionSummary>,
    /// Newest first.
    pub history: Vec<VersionSummary>,
}

/// What saving the previewed settings would change and do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPreview {
    pub changes: Vec<SettingChange>,
    /// One sentence per effect, with the members it is about.
    pub effects: Vec<(String, Vec<String>)>,
}

/// Why the gate allows or denies a member an action the policy governs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub email: String,
    pub act: String,
    pub allowed: bool,
    /// `member:<id>` when an exception decided, else the member's role.
    pub subject: String,
    /// The Casbin rules that matched.
    pub rules: Vec<String>,
}

/// The policy page's content, for owners and admins.
#[server(endpoint = "admin/policy")]
pub async fn get_policy_overview() -> Result<PolicyOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        use domain::org_policy as policy;
        let history = policy::history(&state.db, &state.authz, &member).await?;
        let exceptions = policy::exceptions(&state.db, &state.authz, &member).await?;
        let current = policy::current(&state.db, member.org_id).await?;
        let organization = domain::accounts::organization(&state.db, member.org_id).await?;
        Ok(PolicyOverview {
            organization: organization.name,
            version: current.version,
            fields: fields_of(&policy::PolicyForm::from_policy(&current.policy)),
            settings: current
                .policy
                .settings()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            exceptions: exceptions
                .into_iter()
                .map(|e| ExceptionSummary {
                    id: e.id,
                    email: e.email,
                    allowed: e.allowed,
                    reason: e.reason,
                    created_by: e.created_by.unwrap_or_default(),
                    created_at: crate::api::readable_time(e.created_at),
                })
                .collect(),
            history: history
                .into_iter()
                .map(|v| VersionSummary {
                    version: v.version,
                    saved_by: v.saved_by.unwrap_or_default(),
                    saved_at: v
                        .saved_at
                        .map(crate::api::readable_time)
                        .unwrap_or_default(),
                    saved_at_rfc3339: v
                        .saved_at
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                        .unwrap_or_default(),
                    changes: changes_of(v.changes),
                })
                .collect(),
        })
    })
    .await
}

/// What saving `fields` would change, and what it would do to the members' codes.
#[server(endpoint = "admin/policy/preview")]
pub async fn preview_policy(fields: PolicyFields) -> Result<PolicyPreview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        use domain::org_policy as policy;
        let proposed = form_of(fields).parse()?;
        let current = policy::current(&state.db, member.org_id).await?;
        let impact = policy::impact(
            &state.db,
            &state.authz,
            &member,
            &proposed,
            chrono::Utc::now(),
        )
        .await?;
        Ok(PolicyPreview {
            changes: changes_of(proposed.changes_from(&current.policy)),
            effects: impact.effects.into_iter().zip(impact.members).collect(),
        })
    })
    .await
}

/// Saves `fields` as the next version, if the policy in force is still `expected_version`.
#[server(endpoint = "admin/policy/save")]
pub async fn save_policy(expected_version: i32, fields: PolicyFields) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let proposed = form_of(fields).parse()?;
        let saved = domain::org_policy::save(
            &crate::auth::command(&state, &member, &source),
            expected_version,
            &proposed,
        )
        .await?;
        tracing::info!(
            member = member.id,
            org = member.org_id,
            version = saved.version,
            "saved the backup-code policy"
        );
        leptos_axum::redirect(&format!("/admin/policy?saved={}", saved.version));
        Ok(())
    })
    .await
}

/// Exempts a member from the organization's backup-code setting: `backup_codes` is `allow`
/// or `deny`, whatever the setting says; `reason` is required.
#[server(endpoint = "admin/policy/exceptions/add")]
pub async fn add_policy_exception(
    email: String,
    backup_codes: String,
    reason: String,
) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let allowed = match backup_codes.as_str() {
            "allow" => true,
            "deny" => false,
            _ => {
                return Err(AppError::Invalid {
                    field: "backup_codes".into(),
                    message: "Choose whether this member may use backup codes.".into(),
                });
            }
        };
        domain::org_policy::add_exception(
            &crate::auth::command(&state, &member, &source),
            &email,
            allowed,
            &reason,
        )
        .await?;
        leptos_axum::redirect("/admin/policy#exceptions");
        Ok(())
    })
    .await
}

/// Removes an exception: the member follows the organization's setting again.
#[server(endpoint = "admin/policy/exceptions/remove")]
pub async fn remove_policy_exception(exception_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::org_policy::remove_exception(
            &crate::auth::command(&state, &member, &source),
            exception_id,
        )
        .await?;
        leptos_axum::redirect("/admin/policy#exceptions");
        Ok(())
    })
    .await
}

/// Whether the member with `email` may `act` (`generate` or `redeem` backup codes, or
/// `request_backups` of the organization's data), and the rules that decide it.
#[server(endpoint = "admin/policy/explain")]
pub async fn explain_decision(email: String, act: String) -> Result<Explanation, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let (subject_member, decision) =
            domain::org_policy::explain(&state.db, &state.authz, &member, &email, &act).await?;
        Ok(Explanation {
            email: subject_member.email,
            act,
            allowed: decision.allowed,
            subject: decision.subject,
            rules: decision.rules,
        })
    })
    .await
}

#[cfg(feature = "ssr")]
fn form_of(fields: PolicyFields) -> domain::org_policy::PolicyForm {
    domain::org_policy::PolicyForm {
        backup_codes: fields.backup_codes,
        codes_per_set: fields.codes_per_set,
        max_set_age_days: fields.max_set_age_days,
        low_codes_threshold: fields.low_codes_threshold,
        lockout_attempts: fields.lockout_attempts,
        lockout_minutes: fields.lockout_minutes,
        code_entry: fields.code_entry,
        restrict_after_backup_sign_in: fields.restrict_after_backup_sign_in,
        recovery_code_approval: fields.recovery_code_approval,
        admins_request_backups: fields.admins_request_backups,
        replace_when_low: fields.replace_when_low,
        required_from: fields.required_from,
        grace_days: fields.grace_days,
        recovery_code_issuers: fields.recovery_code_issuers,
        recovery_code_shortest: fields.recovery_code_shortest,
        recovery_code_longest: fields.recovery_code_longest,
        recovery_code_default: fields.recovery_code_default,
        recovery_code_max_uses: fields.recovery_code_max_uses,
    }
}

#[cfg(feature = "ssr")]
fn fields_of(form: &domain::org_policy::PolicyForm) -> PolicyFields {
    PolicyFields {
        backup_codes: form.backup_codes.clone(),
        codes_per_set: form.codes_per_set.clone(),
        max_set_age_days: form.max_set_age_days.clone(),
        low_codes_threshold: form.low_codes_threshold.clone(),
        lockout_attempts: form.lockout_attempts.clone(),
        lockout_minutes: form.lockout_minutes.clone(),
        code_entry: form.code_entry.clone(),
        restrict_after_backup_sign_in: form.restrict_after_backup_sign_in.clone(),
        recovery_code_approval: form.recovery_code_approval.clone(),
        admins_request_backups: form.admins_request_backups.clone(),
        replace_when_low: form.replace_when_low.clone(),
        required_from: form.required_from.clone(),
        grace_days: form.grace_days.clone(),
        recovery_code_issuers: form.recovery_code_issuers.clone(),
        recovery_code_shortest: form.recovery_code_shortest.clone(),
        recovery_code_longest: form.recovery_code_longest.clone(),
        recovery_code_default: form.recovery_code_default.clone(),
        recovery_code_max_uses: form.recovery_code_max_uses.clone(),
    }
}

#[cfg(feature = "ssr")]
fn changes_of(changes: Vec<domain::org_policy::Change>) -> Vec<SettingChange> {
    changes
        .into_iter()
        .map(|c| SettingChange {
            field: c.field,
            before: c.before,
            after: c.after,
        })
        .collect()
}
