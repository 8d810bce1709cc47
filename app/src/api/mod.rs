//! Server functions: thin edges that resolve the caller, make one domain call and map its
//! error. Their bodies run only on the server; the browser gets a typed stub that posts.
//!
//! Each has a fixed endpoint under `/api/` so that forms post to stable addresses.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod api_tokens;
pub mod audit;
pub mod backup_codes;
pub mod backups;
pub mod compliance;
pub mod groups;
pub mod members;
pub mod not_me;
pub mod notifications;
pub mod policy;
pub mod recovery;
pub mod setup;
pub mod sign_in;
pub mod status;
pub mod webhooks;

/// Runs a server function's body and puts the error's status on the response.
#[cfg(feature = "ssr")]
pub(crate) async fn respond<T>(
    body: impl Future<Output = Result<T, crate::error::AppError>>,
) -> Result<T, crate::error::AppError> {
    body.await.map_err(crate::error::AppError::with_status)
}

/// Marks the response as not to be kept by any cache: it carries a secret shown once.
#[cfg(feature = "ssr")]
pub(crate) fn no_store() {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
    }
}

/// `28 Nov 2026, 09:15 UTC`: how times read on every page.
#[cfg(feature = "ssr")]
pub(crate) fn readable_time(at: chrono::DateTime<chrono::Utc>) -> String {
    domain::input::readable_time(at)
}
