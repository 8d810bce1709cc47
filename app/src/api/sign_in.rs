//! The sign-in steps: email, password, and the authenticator code when MFA is on.
//!
//! Each step is a server function that the step's plain form posts to; it answers with a
//! redirect to the next step.

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
        let email = domain::identity::Email::parse(&email)?;
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
        let email = domain::identity::Email::parse(&email)?;
        let password = domain::secrets::Password::new(password);
        let source = crate::auth::request_source();
        let step = domain::sign_in::password(
            &state.db,
            &state.hasher,
            &email,
            &password,
            &source,
            chrono::Utc::now(),
        )
        .await?
        .ok_or(AppError::SignInFailed)?;
        match step {
            domain::sign_in::PasswordStep::SecondFactorOwed(member) => {
                crate::auth::await_second_factor(&session, &member).await?;
                leptos_axum::redirect("/sign-in/verify");
            }
            domain::sign_in::PasswordStep::SignedIn(member) => {
                crate::auth::complete_sign_in(&state, &session, &member, &source).await?;
                tracing::info!(member = member.id, "signed in with a password");
                // An admin reset this member's MFA: setting it up again comes first.
                leptos_axum::redirect(if member.mfa_setup_required {
                    "/account/mfa/setup"
                } else {
                    "/account"
                });
            }
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
            source,
        } = crate::auth::pending_member().await?;
        // Wrong codes are recorded and counted on the account (locking the factor on every
        // instance); while it is locked, every code gets the wrong-code answer.
        let cmd = crate::auth::command(&state, &member, &source);
        if let Err(refused) =
            domain::sign_in::authenticator_code(&cmd, &state.secret_key, &code).await
        {
            return Err(refused_step(&session, pending, refused).await);
        }
        crate::auth::complete_sign_in(&state, &session, &member, &source).await?;
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
            source,
        } = crate::auth::pending_member().await?;
        let cmd = crate::auth::command(&state, &member, &source);
        let signed_in = match domain::sign_in::backup_code(&cmd, &state.codes, &code).await {
            Ok(signed_in) => signed_in,
            Err(refused) => return Err(refused_step(&session, pending, refused).await),
        };
        crate::auth::complete_sign_in(&state, &session, &member, &source).await?;
        if let Some(limit) = signed_in.limit {
            crate::auth::limit_session(&session, limit).await?;
        }
        tracing::info!(
            member = member.id,
            slot = signed_in.redeemed.slot,
            remaining = signed_in.redeemed.remaining,
            "signed in with a password and a backup verification code"
        );
        leptos_axum::redirect("/account/recovered");
        Ok(())
    })
    .await
}

/// Which numbered backup code the sign-in page asks for, when the organization wants "a
/// specific numbered code" (`None`: any unused code will do). Kept with the set until it
/// is answered, so starting again asks for the same one.
#[server(endpoint = "sign_in/backup_code/slot")]
pub async fn backup_code_slot() -> Result<Option<u32>, AppError> {
    crate::api::respond(async {
        let crate::auth::PendingMember { state, member, .. } =
            crate::auth::pending_member().await?;
        domain::sign_in::numbered_code_to_ask(&state.db, &member, chrono::Utc::now())
            .await
            .map_err(AppError::from)
    })
    .await
}

/// The error of a refused second-factor step; when the step counts it as an attempt, it
/// uses up one of this password step's attempts, and once they are all used up the member
/// must start again with the password.
#[cfg(feature = "ssr")]
async fn refused_step<E: Into<AppError>>(
    session: &tower_sessions::Session,
    pending: crate::auth::PendingSignIn,
    refused: domain::sign_in::StepRefused<E>,
) -> AppError {
    if refused.counts_as_attempt {
        match crate::auth::count_wrong_code(session, pending, refused.attempts_allowed).await {
            Ok(true) => {}
            Ok(false) => {
                return AppError::Refused(
                    "Too many wrong codes. Sign in again with your password.".into(),
                );
            }
            Err(error) => return error,
        }
    }
    refused.error.into()
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
        let help = domain::sign_in::help(&state.db, &state.authz, &member).await?;
        Ok(HelpOptions {
            contacts: help.contacts,
            backup_codes: help.backup_codes,
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
