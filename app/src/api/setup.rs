//! The first run in the browser: `/setup?token=…`, from the link the server prints while no
//! organization exists (`domain::accounts::setup`). Nobody is signed in: the link is the
//! credential, and it works once.

use leptos::prelude::*;

use crate::error::AppError;

/// Whether the setup form may be shown for `token`. Errors: the installation is already set
/// up, or the link does not work (used, or from before a restart), each in words.
#[server(endpoint = "setup/check")]
pub async fn check_setup_link(token: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        domain::accounts::setup::check(&state.db, &state.setup, &token).await?;
        Ok(())
    })
    .await
}

/// Creates the first organization and its owner, signs the owner in and goes on to setting
/// up MFA. Errors: those of [`check_setup_link`], and field errors on `name`, `email`,
/// `password` and `confirm` (the link still works then).
#[server(endpoint = "setup/create")]
pub async fn set_up_installation(
    token: String,
    name: String,
    email: String,
    password: String,
    confirm: String,
) -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let session = crate::auth::session().await?;
        let (password, confirm) = (
            domain::secrets::Password::new(password),
            domain::secrets::Password::new(confirm),
        );
        let (org, owner) = domain::accounts::setup::set_up(
            &state.db,
            &state.hasher,
            &state.setup,
            &token,
            domain::accounts::setup::FirstOrganization {
                name: &name,
                owner_email: &email,
                password: &password,
                confirm: &confirm,
            },
            chrono::Utc::now(),
        )
        .await?;
        tracing::info!(
            org = org.id,
            owner = owner.id,
            "installation set up in the browser"
        );
        let source = crate::auth::request_source();
        crate::auth::complete_sign_in(&state, &session, &owner, &source).await?;
        leptos_axum::redirect("/account/mfa/setup");
        Ok(())
    })
    .await
}
