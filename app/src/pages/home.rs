//! `/`: what Lifeline is, the way in, and a status check anybody can run.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::status::{SystemStatus, check_status};

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

/// A button that asks the server whether it and its database are healthy: a plain form
/// asking for the start page again with `?check=status`, which the server answers with the
/// page and the check's outcome (with or without JavaScript).
#[component]
fn StatusCheck() -> impl IntoView {
    let asked =
        use_query_map().with_untracked(|query| query.get("check").as_deref() == Some("status"));
    let status = Resource::new(
        || (),
        move |()| async move {
            if asked {
                Some(check_status().await)
            } else {
                None
            }
        },
    );
    let outcome = move || {
        status.get().flatten().map(|result| match result {
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
            <form method="get" action="/">
                <input type="hidden" name="check" value="status" />
                <button type="submit">"Check status"</button>
            </form>
            <Suspense>{outcome}</Suspense>
        </section>
    }
}
