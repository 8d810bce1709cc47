//! "This wasn't me", from the link in a security notice: what the link is about, and taking
//! the report. Nobody needs to be signed in: the link is the credential, and it can only take
//! things away (`domain::incidents`).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the confirmation page says the link is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotMeLink {
    /// The account the report would secure.
    pub email: String,
    /// Until when the link works (`6 Dec 2026, 09:15 UTC`).
    pub expires_at: String,
}

/// What a link is about, if it still works. Errors: a link that is altered, expired, used,
/// or about a removed account, each in words.
#[server(endpoint = "not_me/check")]
pub async fn check_not_me_link(token: String) -> Result<NotMeLink, AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let now = chrono::Utc::now();
        let link = domain::incidents::check(&state.db, &state.secret_key, &token, now).await?;
        Ok(NotMeLink {
            email: link.member.email,
            expires_at: crate::api::readable_time(link.expires_at),
        })
    })
    .await
}

/// Takes the report the link makes: the member's backup codes and any issued sign-in code
/// stop, every session of theirs ends, and their administrators are alerted. Once per link.
#[server(endpoint = "not_me/report")]
pub async fn report_not_me(token: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let source = crate::auth::request_source();
        domain::incidents::report(
            &state.db,
            &state.secret_key,
            &token,
            &source,
            chrono::Utc::now(),
        )
        .await?;
        leptos_axum::redirect("/not-me/reported");
        Ok(())
    })
    .await
}
