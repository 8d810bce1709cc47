//! The one error type that crosses the wire between server functions and the browser.
//!
//! Causes (database errors, file paths, anything internal) are logged on the server and never
//! put in here: the browser gets a plain message and an HTTP status.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What went wrong, in words fit to show a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The request itself was malformed (missing or mistyped arguments).
    #[error("The request could not be understood. Please reload the page and try again.")]
    BadRequest,
    /// A service the request needs (the database) did not answer.
    #[error("Lifeline cannot reach its database right now. Please try again shortly.")]
    Unavailable,
    /// Anything else that failed on the server; the cause is in the server's log.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl AppError {
    /// The HTTP status the response carries.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    /// Logs `cause` on the server and returns `self`, for `map_err` at the edge.
    #[cfg(feature = "ssr")]
    pub fn logged(self, context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "{context}");
        self
    }

    /// Sets this error's status on the HTTP response being built, and returns it.
    #[cfg(feature = "ssr")]
    pub fn with_status(self) -> Self {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
            && let Ok(status) = http::StatusCode::from_u16(self.status_code())
        {
            response.set_status(status);
        }
        self
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => Self::BadRequest,
            // Reaching the server at all failed (offline, timed out): on the client this is
            // the honest reading; on the server these variants do not arise from requests.
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => Self::Unavailable,
            ServerFnErrorErr::Registration(_)
            | ServerFnErrorErr::ServerError(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Serialization(_) => Self::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_client_errors() {
        for cause in [
            ServerFnErrorErr::Args("x".into()),
            ServerFnErrorErr::MissingArg("x".into()),
            ServerFnErrorErr::Deserialization("x".into()),
        ] {
            let error = AppError::from_server_fn_error(cause);
            assert_eq!(error, AppError::BadRequest);
            assert_eq!(error.status_code(), 400);
        }
    }

    #[test]
    fn messages_carry_no_internal_detail() {
        let error =
            AppError::from_server_fn_error(ServerFnErrorErr::ServerError("SELECT * FROM x".into()));
        assert_eq!(error, AppError::Internal);
        assert!(!error.to_string().contains("SELECT"));
    }
}
