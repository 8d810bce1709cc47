//! The page for any path Lifeline does not have, served with status 404.

use leptos::prelude::*;
use leptos_meta::Title;

/// "Page not found", with a way back.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }

    view! {
        <Title text="Page not found" />
        <section class="panel">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <a href="/">"Back to the start page"</a>
        </section>
    }
}
