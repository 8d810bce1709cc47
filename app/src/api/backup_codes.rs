//! The signed-in member's backup verification codes: their status, and generating a new set.
//!
//! Signing in with a code is a sign-in step (`api::sign_in::submit_backup_code`).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The backup-code part of "MFA Recovery Modes", as the account panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStatus {
    pub mfa_enabled: bool,
    /// The organization's policy lets this member use backup codes.
    pub allowed: bool,
    /// The organization requires a valid set and this member has none: show the banner.
    pub missing_required_codes: bool,
    /// The set in force, if any.
    pub codes: Option<CodeSetStatus>,
    /// Generating will ask for the password again (the last sign-in was too long ago).
    pub needs_password: bool,
    /// Who to ask for help: the organization's owners and admins.
    pub admin_contacts: Vec<String>,
    /// The generate form's `replaces` field: the set in force now, so that the form makes
    /// one set and a resend of it is refused ([`domain::backup_codes::Replacing`]).
    pub replaces: String,
    /// Why only MFA settings are open for now, after a sign-in with a backup code, and what
    /// lifts it (`auth::limit_explained`); `None` when the session is not limited.
    pub limited: Option<String>,
    /// The member's latest security events, newest first.
    pub history: Vec<HistoryEntry>,
}

/// One of the member's own security events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: String,
    pub what: String,
    /// Where the request came from, when known.
    pub from: Option<String>,
}

/// How the member's set in force stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSetStatus {
    pub total: u32,
    pub remaining: u32,
    /// When the set was generated, for reading (`28 Nov 2026, 09:15 UTC`).
    pub generated_at: String,
    pub last_used_at: Option<String>,
    /// At or below the organization's low-codes threshold.
    pub low: bool,
    /// When the set stops working under the organization's maximum set age.
    pub expires_at: Option<String>,
    /// Past its maximum age: none of its codes work any more.
    pub expired: bool,
}

/// A set just generated: the only time its codes are sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshBackupCodes {
    pub email: String,
    pub generated_at: String,
    /// `2026-11-28`, for the download's file name.
    pub generated_on: String,
    /// Slot 1 first, grouped for reading: `4821 0937 5516`.
    pub codes: Vec<String>,
}

/// What the plain "Generate New Codes" form posts to `/account/backup-codes`; the server
/// renders that page with it in context, and the page generates from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateForm {
    /// Typed when the last sign-in was more than ten minutes ago.
    #[serde(default)]
    pub password: Option<String>,
    /// The set the form was drawn to replace ([`RecoveryStatus::replaces`]).
    #[serde(default)]
    pub replaces: Option<String>,
}

/// The signed-in member's backup codes: how many remain, whether they may have any, and
/// whether generating will ask for the password.
#[server(endpoint = "account/backup-codes")]
pub async fn get_recovery_status() -> Result<RecoveryStatus, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            session,
            member,
            ..
        } = crate::auth::signed_in().await?;
        let codes =
            domain::org_policy::member_codes(&state.db, &state.authz, &member, chrono::Utc::now())
                .await?;
        Ok(RecoveryStatus {
            mfa_enabled: member.mfa_enabled,
            allowed: codes.usable,
            missing_required_codes: !codes.compliant(member.mfa_enabled),
            codes: codes.set.clone().map(|status| CodeSetStatus {
                total: status.total,
                remaining: status.remaining,
                generated_at: crate::api::readable_time(status.generated_at),
                last_used_at: status.last_used_at.map(crate::api::readable_time),
                low: status.low,
                expires_at: status.expires_at.map(crate::api::readable_time),
                expired: status.expired,
            }),
            needs_password: !crate::auth::recently_authenticated(&state, &session).await?,
            replaces: domain::backup_codes::Replacing::form_value(
                codes.set.as_ref().map(|set| set.set_id),
            ),
            admin_contacts: domain::accounts::admin_contacts(&state.db, member.org_id).await?,
            limited: crate::auth::session_limit(&session)
                .await?
                .or_else(|| crate::auth::codes_required(&codes.deadline))
                .map(|limit| crate::auth::limit_explained(limit).to_owned()),
            history: domain::audit::own_history(&state.db, &member, 10)
                .await?
                .into_iter()
                .map(|event| HistoryEntry {
                    at: crate::api::readable_time(event.at),
                    what: domain::audit::describe(&event.action, &event.outcome),
                    from: event.source.ip,
                })
                .collect(),
        })
    })
    .await
}

/// Generates a new set of backup codes for the signed-in member, replacing the set the form
/// was drawn for (`replaces`: a set id, or `none`); a form posted again after its set was
/// made is refused ("These codes were already shown"). Asks for the password again when the
/// last sign-in is older than the re-authentication window (ten minutes unless configured).
#[server(endpoint = "account/backup-codes/generate")]
pub async fn generate_backup_codes(
    password: Option<String>,
    replaces: Option<String>,
) -> Result<FreshBackupCodes, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            session,
            member,
            source,
        } = crate::auth::signed_in().await?;
        let replacing = domain::backup_codes::Replacing::from_form(replaces.as_deref())?;
        crate::auth::confirm_recent_authentication(&state, &session, &member, password.as_deref())
            .await?;
        let policy = domain::org_policy::current(&state.db, member.org_id).await?;
        let fresh = domain::backup_codes::generate_replacing(
            &crate::auth::command(&state, &member, &source),
            &state.codes,
            &policy.policy.code_policy(),
            replacing,
        )
        .await?;
        // New codes secure the account again after a sign-in with a backup code.
        crate::auth::lift_session_limit(&session, crate::auth::Secured::NewCodes).await?;
        // The codes are in this answer: no cache, shared or private, may keep it.
        crate::api::no_store();
        tracing::info!(
            member = member.id,
            codes = fresh.codes.len(),
            "generated backup verification codes"
        );
        Ok(FreshBackupCodes {
            email: member.email,
            generated_at: crate::api::readable_time(fresh.generated_at),
            generated_on: fresh.generated_at.format("%Y-%m-%d").to_string(),
            codes: fresh.codes.iter().map(|code| code.grouped()).collect(),
        })
    })
    .await
}
