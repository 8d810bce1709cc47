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
    /// One input field is not acceptable; the message belongs next to that field.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Email and password do not match an account (the same for an unknown email).
    #[error("Incorrect email address or password.")]
    SignInFailed,
    /// The request needs a signed-in member, or a sign-in step that has not been done.
    #[error("Please sign in to continue.")]
    SignInRequired,
    /// The member may not do this; the message says why in the product's words.
    #[error("{0}")]
    Refused(String),
    /// A change that needs the password again: the last one was too long ago.
    #[error("For your security, confirm your password before making changes.")]
    ReauthenticationRequired,
    /// The request itself was malformed (missing or mistyped arguments).
    #[error("The request could not be understood. Please reload the page and try again.")]
    BadRequest,
    /// A service the request needs (the database) did not answer.
    #[error("Lifeline cannot reach its database right now. Please try again shortly.")]
    Unavailable,
    /// The server is checking as many passwords and codes as it can take; nothing was done.
    #[error("Lifeline is busy right now. Please try again in a moment.")]
    Busy,
    /// Anything else that failed on the server; the cause is in the server's log.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

/// How long a client is asked to wait (`Retry-After`, seconds) when the server is busy: the
/// hasher's queue drains in well under that.
pub const BUSY_RETRY_AFTER_SECONDS: u32 = 1;

impl AppError {
    /// The HTTP status the response carries.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 422,
            Self::SignInFailed | Self::SignInRequired => 401,
            Self::Refused(_) | Self::ReauthenticationRequired => 403,
            Self::BadRequest => 400,
            Self::Unavailable | Self::Busy => 503,
            Self::Internal => 500,
        }
    }

    /// The message for one form field, when the error is about that field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }

    /// The message for the form as a whole: every error that is not about one field.
    pub fn for_form(&self) -> Option<String> {
        match self {
            Self::Invalid { .. } => None,
            other => Some(other.to_string()),
        }
    }

    /// Logs `cause` on the server and returns `self`, for `map_err` at the edge.
    #[cfg(feature = "ssr")]
    pub fn logged(self, context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "{context}");
        self
    }

    /// Sets this error's status on the HTTP response being built, and returns it.
    ///
    /// A plain form post (no JavaScript) is answered with a redirect back to the form, which
    /// shows the error; its status must stay the redirect's, so it is left alone then.
    #[cfg(feature = "ssr")]
    pub fn with_status(self) -> Self {
        use leptos::prelude::use_context;
        let plain_form_post = use_context::<http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"))
        });
        let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
            return self;
        };
        if !plain_form_post && let Ok(status) = http::StatusCode::from_u16(self.status_code()) {
            response.set_status(status);
        }
        // Busy: when to try again (also on a plain form's redirect, where it does no harm).
        if self == Self::Busy {
            response.insert_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
            );
        }
        self
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // On the server this runs inside the request (arguments that did not decode), so the
        // response can carry the right status instead of the framework's default 500.
        #[cfg(feature = "ssr")]
        {
            framework_error(value).with_status()
        }
        #[cfg(not(feature = "ssr"))]
        {
            framework_error(value)
        }
    }
}

/// What a failure inside the server-function machinery means for the person.
fn framework_error(value: ServerFnErrorErr) -> AppError {
    use AppError as E;
    match value {
        ServerFnErrorErr::Args(_)
        | ServerFnErrorErr::MissingArg(_)
        | ServerFnErrorErr::Deserialization(_)
        | ServerFnErrorErr::UnsupportedRequestMethod(_) => E::BadRequest,
        // Reaching the server at all failed (offline, timed out): on the client this is
        // the honest reading; on the server these variants do not arise from requests.
        ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => E::Unavailable,
        ServerFnErrorErr::Registration(_)
        | ServerFnErrorErr::ServerError(_)
        | ServerFnErrorErr::MiddlewareError(_)
        | ServerFnErrorErr::Serialization(_) => E::Internal,
    }
}

#[cfg(feature = "ssr")]
mod from_domain {
    //! How each domain error reaches the browser: input problems and refusals keep their
    //! words; storage and crypto failures are logged here and become a generic message.
    use domain::{accounts::AccountError, db::DbErr, hashing::HashError, mfa::MfaError};

    use super::AppError;

    impl From<domain::input::FieldError> for AppError {
        fn from(error: domain::input::FieldError) -> Self {
            Self::Invalid {
                field: error.field,
                message: error.message,
            }
        }
    }

    impl From<DbErr> for AppError {
        fn from(error: DbErr) -> Self {
            match error {
                // No connection came free in time: the database is overloaded or gone, not
                // broken by this request. 503, and the cause in the log.
                DbErr::ConnectionAcquire(_) => {
                    tracing::warn!(%error, "database");
                    Self::Unavailable
                }
                _ => Self::Internal.logged("database", &error),
            }
        }
    }

    impl From<HashError> for AppError {
        fn from(error: HashError) -> Self {
            match error {
                // At capacity, not broken: 503 with Retry-After, and no error in the log.
                HashError::Busy => Self::Busy,
                HashError::Failed(_) => Self::Internal.logged("hashing", &error),
            }
        }
    }

    impl From<AccountError> for AppError {
        fn from(error: AccountError) -> Self {
            match error {
                AccountError::Invalid(field) => field.into(),
                AccountError::UnknownOrganization(_)
                | AccountError::UnknownMember
                | AccountError::NotAllowed
                | AccountError::LastOwner
                | AccountError::AlreadySetUp
                | AccountError::SetupLinkInvalid => Self::Refused(error.to_string()),
                AccountError::Hash(cause) => cause.into(),
                AccountError::Policy(cause) => Self::Internal.logged("authorization", &cause),
                AccountError::Database(cause) => cause.into(),
            }
        }
    }

    impl From<domain::audit::AuditReadError> for AppError {
        fn from(error: domain::audit::AuditReadError) -> Self {
            use domain::audit::AuditReadError as E;
            match error {
                E::Invalid(field) => field.into(),
                E::NotAllowed => Self::Refused(error.to_string()),
                E::Policy(cause) => Self::Internal.logged("authorization", &cause),
                E::Database(cause) => cause.into(),
            }
        }
    }

    impl From<MfaError> for AppError {
        fn from(error: MfaError) -> Self {
            match error {
                MfaError::Invalid(field) => field.into(),
                MfaError::WrongCode => Self::Invalid {
                    field: "code".into(),
                    message: error.to_string(),
                },
                MfaError::WrongPassword => Self::Invalid {
                    field: "password".into(),
                    message: error.to_string(),
                },
                MfaError::AlreadyEnabled
                | MfaError::NotEnrolling
                | MfaError::NotEnabled
                | MfaError::UnknownAccount => Self::Refused(error.to_string()),
                MfaError::Secret(_) => Self::Internal.logged("TOTP secret", &error),
                MfaError::Database(cause) => cause.into(),
                MfaError::PasswordCheck(cause) => cause.into(),
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::backup_codes::BackupCodeError> for AppError {
    fn from(error: domain::backup_codes::BackupCodeError) -> Self {
        use domain::backup_codes::BackupCodeError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::Rejected => Self::Invalid {
                field: "code".into(),
                message: error.to_string(),
            },
            E::NotAllowed | E::MfaOff | E::Conflict | E::AlreadyShown | E::UnknownAccount => {
                Self::Refused(error.to_string())
            }
            E::Hash(cause) => cause.into(),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::org_policy::PolicyChangeError> for AppError {
    fn from(error: domain::org_policy::PolicyChangeError) -> Self {
        use domain::org_policy::PolicyChangeError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::NotAllowed
            | E::Conflict
            | E::UnknownMember
            | E::UnknownException
            | E::UnknownWebhook => Self::Refused(error.to_string()),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::groups::GroupError> for AppError {
    fn from(error: domain::groups::GroupError) -> Self {
        use domain::groups::GroupError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::NotAllowed
            | E::UnknownGroup
            | E::UnknownMember
            | E::FileHasProblems { .. }
            | E::InUseByScope(_) => Self::Refused(error.to_string()),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::backup::jobs::BackupJobError> for AppError {
    fn from(error: domain::backup::jobs::BackupJobError) -> Self {
        use domain::backup::jobs::BackupJobError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::NotAllowed | E::DailyLimit { .. } | E::UnknownBackup | E::NotReady | E::NotYours => {
                Self::Refused(error.to_string())
            }
            E::Folder(cause) => Self::Internal.logged("backup folder", &cause),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::notification_addresses::AddressError> for AppError {
    fn from(error: domain::notification_addresses::AddressError) -> Self {
        use domain::notification_addresses::AddressError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::UnknownLink | E::Expired => Self::Refused(error.to_string()),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::incidents::ReportError> for AppError {
    fn from(error: domain::incidents::ReportError) -> Self {
        use domain::incidents::ReportError as E;
        match error {
            E::Link(_) | E::AlreadyUsed | E::NoAccount => Self::Refused(error.to_string()),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::api_tokens::TokenError> for AppError {
    fn from(error: domain::api_tokens::TokenError) -> Self {
        use domain::api_tokens::TokenError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::NotAllowed | E::Unknown => Self::Refused(error.to_string()),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<domain::recovery_codes::RecoveryError> for AppError {
    fn from(error: domain::recovery_codes::RecoveryError) -> Self {
        use domain::recovery_codes::RecoveryError as E;
        match error {
            E::Invalid(field) => field.into(),
            E::NotAllowed
            | E::UnknownMember
            | E::UnknownRequest
            | E::ForYourself
            | E::CodesNotAllowed
            | E::CodesOff
            | E::OwnRequest
            | E::ApproveForYourself
            | E::ApproverWithoutMfa
            | E::AlreadyApproved
            | E::NotApproved
            | E::NotRequester
            | E::Closed => Self::Refused(error.to_string()),
            E::Hash(cause) => cause.into(),
            E::Policy(cause) => Self::Internal.logged("authorization", &cause),
            E::Database(cause) => cause.into(),
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
    fn a_busy_server_answers_503_in_plain_words() {
        assert_eq!(AppError::Busy.status_code(), 503);
        assert!(AppError::Busy.to_string().contains("try again"));
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_busy_hasher_is_503_wherever_it_surfaces() {
        use domain::{accounts::AccountError, hashing::HashError, mfa::MfaError};
        assert_eq!(AppError::from(HashError::Busy), AppError::Busy);
        assert_eq!(
            AppError::from(AccountError::Hash(HashError::Busy)),
            AppError::Busy
        );
        assert_eq!(
            AppError::from(MfaError::PasswordCheck(AccountError::Hash(HashError::Busy))),
            AppError::Busy
        );
        assert_eq!(
            AppError::from(domain::backup_codes::BackupCodeError::Hash(HashError::Busy)),
            AppError::Busy
        );
        assert_eq!(
            AppError::from(HashError::Failed("argon2: bad salt".into())),
            AppError::Internal
        );
    }

    #[test]
    fn messages_carry_no_internal_detail() {
        let error =
            AppError::from_server_fn_error(ServerFnErrorErr::ServerError("SELECT * FROM x".into()));
        assert_eq!(error, AppError::Internal);
        assert!(!error.to_string().contains("SELECT"));
    }
}
