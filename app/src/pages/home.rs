//! `/`: what Lifeline is, the way in, and a status check anybody can run.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::status::{CheckStatus, SystemStatus};

/// The landing page.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="" />
        <section class="hero">
            <h1>"Lifeline"</h1>
            <p class="lead">
                "Backup verification codes for your organization's multi-factor authentication. "
                "Lost your authenticator? Sign in with one of your one-time 12-digit codes."
            </p>
            <a class="button primary" href="/sign-in">
                "Sign in"
            </a>
        </section>
        <section class="panel">
            <h2>"How backup verification codes work"</h2>
            <ol class="steps">
                <li>"Turn on multi-factor authentication with an authenticator app."</li>
                <li>"Generate a set of one-time 12-digit codes, then save or print them."</li>
                <li>"Lost your device? Sign in with one code; each code works only once."</li>
            </ol>
            <p class="muted">
                "Your organization's administrators decide whether backup codes are available, how many you get and how long they last."
            </p>
        </section>
        <StatusCheck />
    }
}

/// A button that asks the server whether it and its database are healthy. An island: with
/// JavaScript the answer appears in place; without, the button is a plain form's.
#[island]
fn StatusCheck() -> impl IntoView {
    let check = ServerAction::<CheckStatus>::new();
    let result = crate::forms::last_result(check);
    let outcome = move || {
        result.get().map(|result| match result {
            Ok(SystemStatus {
                schema_current: true,
            }) => view! { <p class="status ok">"All systems operational: the database is reachable and up to date."</p> }.into_any(),
            Ok(SystemStatus {
                schema_current: false,
            }) => view! { <p class="status warn">"The database is reachable but its schema is behind this version of Lifeline."</p> }.into_any(),
            Err(error) => view! { <p class="status error">{error.to_string()}</p> }.into_any(),
        })
    };

    view! {
        <section class="panel status-check" aria-live="polite">
            <h2>"System status"</h2>
            <ActionForm action=check>
                <button type="submit" disabled=move || check.pending().get()>
                    {move || if check.pending().get() { "Checking…" } else { "Check status" }}
                </button>
            </ActionForm>
            {outcome}
        </section>
    }
}
