//! The sign-in steps: email, password, and the authenticator code when MFA is on.
//!
//! Each step is a server function that a plain form can post to; it answers with a redirect
//! to the next step, which the hydrated app follows without a reload.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Where the member is in signing in, for the step pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInProgress {
    /// The email typed at the first step.
    pub email: Option<String>,
    /// The password was right and an authenticator code is owed.
    pub awaiting_code: bool,
}

/// Step 1: remember the email (without saying whether an account has it).
#[server(endpoint = "sign_in/email")]
pub async fn submit_email(email: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let email = domain::accounts::Email::parse(&email)?;
        let session = crate::auth::session().await?;
        crate::auth::remember_email(&session, email.as_str()).await?;
        leptos_axum::redirect("/sign-in/password");
        Ok(())
    })
    .await
}

/// Step 2: check the password; sign in, or ask for the authenticator code.
#[server(endpoint = "sign_in/password")]
pub async fn submit_password(password: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let session = crate::auth::session().await?;
        let Some(email) = crate::auth::remembered_email(&session).await? else {
            return Err(AppError::SignInRequired);
        };
        if password.is_empty() {
            return Err(AppError::Invalid {
                field: "password".into(),
                message: "Enter your password.".into(),
            });
        }
        // No account has a longer password; refusing it spares an argon2 run on megabytes.
        if password.chars().count() > domain::accounts::MAX_PASSWORD_CHARS {
            return Err(AppError::SignInFailed);
        }
        let email = domain::accounts::Email::parse(&email)?;
        let password = domain::secrets::Password::new(password);
        let source = crate::auth::request_source();
        let now = chrono::Utc::now();
        let member = domain::accounts::verify_password(
            &state.db,
            &state.hasher,
            &email,
            &password,
            &source,
            now,
        )
        .await?
        .ok_or(AppError::SignInFailed)?;
        if member.mfa_enabled {
            crate::auth::await_second_factor(&session, &member).await?;
            leptos_axum::redirect("/sign-in/verify");
        } else {
            crate::auth::complete_sign_in(&session, &member).await?;
            domain::accounts::record_sign_in(&state.db, &member, "password", &source, now).await?;
            tracing::info!(member = member.id, "signed in with a password");
            // An admin reset this member's MFA: setting it up again comes first.
            leptos_axum::redirect(if member.mfa_setup_required {
                "/account/mfa/setup"
            } else {
                "/account"
            });
        }
        Ok(())
    })
    .await
}

/// Step 3: check the authenticator code and sign in.
#[server(endpoint = "sign_in/code")]
pub async fn submit_code(code: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::PendingMember {
            state,
            session,
            pending,
            member,
        } = crate::auth::pending_member().await?;
        let policy = domain::org_policy::current(&state.db, member.org_id)
            .await?
            .policy;
        let source = crate::auth::request_source();
        // Wrong codes are recorded and counted on the account (locking the factor on every
        // instance); while it is locked, every code gets the wrong-code answer.
        let verified = domain::mfa::sign_in_with_code(
            &state.db,
            &state.secret_key,
            &member,
            &code,
            policy.code_policy().limits(),
            &source,
            chrono::Utc::now(),
        )
        .await;
        if let Err(error) = verified {
            let error = AppError::from(error);
            // A wrong code (not a malformed one) also uses up one of this step's attempts.
            if error.for_field("code").is_some() && domain::mfa::parse_code(&code).is_ok() {
                spend_attempt(&session, pending, policy.lockout_attempts).await?;
            }
            return Err(error);
        }
        crate::auth::complete_sign_in(&session, &member).await?;
        domain::accounts::record_sign_in(
            &state.db,
            &member,
            "password+totp",
            &source,
            chrono::Utc::now(),
        )
        .await?;
        tracing::info!(member = member.id, "signed in with a password and TOTP");
        leptos_axum::redirect("/account");
        Ok(())
    })
    .await
}

/// Step 3, instead of the authenticator: one of the member's backup verification codes,
/// which is spent. Then a page says how many codes remain.
#[server(endpoint = "sign_in/backup_code")]
pub async fn submit_backup_code(code: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::PendingMember {
            state,
            session,
            pending,
            member,
        } = crate::auth::pending_member().await?;
        let policy = domain::org_policy::current(&state.db, member.org_id)
            .await?
            .policy;
        // Under "a specific numbered code", only the slot the page asked for counts; when
        // none was asked (slot 0, which no set has), no code does.
        let asked_slot = (policy.code_entry == domain::org_policy::CodeEntry::NumberedCode)
            .then(|| pending.asked_slot.unwrap_or(0));
        let redeemed = domain::backup_codes::redeem(
            &state.db,
            &state.authz,
            &state.codes,
            &member,
            &policy.code_policy(),
            &domain::backup_codes::CodeEntry {
                typed: &code,
                slot: asked_slot,
            },
            &crate::auth::request_source(),
            chrono::Utc::now(),
        )
        .await;
        let redeemed = match redeemed {
            Ok(redeemed) => redeemed,
            Err(error) => {
                use domain::backup_codes::BackupCodeError as E;
                // Anything typed is an attempt, malformed or not; a blank field is not.
                if matches!(error, E::Rejected | E::Invalid(_)) && !code.trim().is_empty() {
                    spend_attempt(&session, pending, policy.lockout_attempts).await?;
                }
                return Err(error.into());
            }
        };
        crate::auth::complete_sign_in(&session, &member).await?;
        domain::accounts::record_sign_in(
            &state.db,
            &member,
            // Slot 0: the recovery code an admin issued.
            if redeemed.slot == 0 {
                "password+recovery_code"
            } else {
                "password+backup_code"
            },
            &crate::auth::request_source(),
            chrono::Utc::now(),
        )
        .await?;
        if policy.restrict_after_backup_sign_in {
            crate::auth::set_only_mfa_settings(&session, true).await?;
        }
        tracing::info!(
            member = member.id,
            slot = redeemed.slot,
            remaining = redeemed.remaining,
            "signed in with a password and a backup verification code"
        );
        leptos_axum::redirect("/account/recovered");
        Ok(())
    })
    .await
}

/// Which numbered backup code the sign-in page asks for, when the organization wants "a
/// specific numbered code" (`None`: any unused code will do). Chosen once per sign-in.
#[server(endpoint = "sign_in/backup_code/slot")]
pub async fn backup_code_slot() -> Result<Option<u32>, AppError> {
    crate::api::respond(async {
        let crate::auth::PendingMember {
            state,
            session,
            pending,
            member,
        } = crate::auth::pending_member().await?;
        let policy = domain::org_policy::current(&state.db, member.org_id)
            .await?
            .policy;
        if policy.code_entry != domain::org_policy::CodeEntry::NumberedCode {
            return Ok(None);
        }
        if let Some(slot) = pending.asked_slot {
            return Ok(Some(slot));
        }
        let slot = domain::backup_codes::slot_to_ask(
            &state.db,
            &member,
            &policy.code_policy(),
            chrono::Utc::now(),
        )
        .await?;
        if let Some(slot) = slot {
            crate::auth::remember_asked_slot(&session, pending, slot).await?;
        }
        Ok(slot)
    })
    .await
}

/// Counts a wrong second factor against this password step; when the organization's
/// allowed attempts are used up, the member must start again with the password.
#[cfg(feature = "ssr")]
async fn spend_attempt(
    session: &tower_sessions::Session,
    pending: crate::auth::PendingSignIn,
    allowed_attempts: u8,
) -> Result<(), AppError> {
    if crate::auth::count_wrong_code(session, pending, allowed_attempts).await? {
        Ok(())
    } else {
        Err(AppError::Refused(
            "Too many wrong codes. Sign in again with your password.".into(),
        ))
    }
}

/// Where the member is in signing in.
#[server(endpoint = "sign_in/progress")]
pub async fn get_sign_in_progress() -> Result<SignInProgress, AppError> {
    crate::api::respond(async {
        let session = crate::auth::session().await?;
        Ok(SignInProgress {
            email: crate::auth::remembered_email(&session).await?,
            awaiting_code: crate::auth::pending_second_factor(&session)
                .await?
                .is_some(),
        })
    })
    .await
}

/// What "Problem signing in?" offers a member who has just proved the account's password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpOptions {
    /// Who to contact: the organization's owners and admins.
    pub contacts: Vec<String>,
    /// The organization's policy lets this member sign in with a backup code.
    pub backup_codes: bool,
}

/// Who to contact when the authenticator is lost, and whether backup codes are an option.
/// Only told to someone who has just proved the account's password.
#[server(endpoint = "sign_in/help")]
pub async fn sign_in_help() -> Result<HelpOptions, AppError> {
    crate::api::respond(async {
        let crate::auth::PendingMember { state, member, .. } =
            crate::auth::pending_member().await?;
        Ok(HelpOptions {
            contacts: domain::accounts::admin_contacts(&state.db, member.org_id).await?,
            backup_codes: domain::backup_codes::usable(&state.authz, &member).await?,
        })
    })
    .await
}

/// Signs out, here and in the member's other sessions: they are ended on the server.
#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let session = crate::auth::session().await?;
        crate::auth::sign_out(&state, &session).await?;
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}
