//! What the server hands every page render and server function.

use axum::extract::FromRef;
use domain::{
    authz::Authz, db::DatabaseConnection, hashing::PasswordHasher, lookup_secret::BackupCodeHasher,
    secrets::SecretKey,
};
use leptos::prelude::*;

use crate::error::AppError;

/// The router's state, provided as context to server functions by `leptos_axum`.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: DatabaseConnection,
    pub hasher: PasswordHasher,
    pub secret_key: SecretKey,
    /// Digests backup codes (argon2id with the pepper derived from `secret_key`).
    pub codes: BackupCodeHasher,
    /// The one place permission decisions are made.
    pub authz: Authz,
    /// What the audit page says of each organization's hash chain, kept up to date
    /// incrementally.
    pub chain: domain::audit::ChainMonitor,
    /// How long after the last password sensitive changes (generating backup codes) go
    /// through without asking for it again.
    pub reauthenticate_after: chrono::Duration,
    /// How long a session lasts after sign-in, however active (the idle limit is the
    /// session layer's).
    pub session_lifetime: chrono::Duration,
    /// Cookies carry `Secure` (served over HTTPS).
    pub secure_cookies: bool,
    /// Which addresses a webhook may have.
    pub webhook_urls: domain::notifications::webhooks::UrlRules,
    /// Where requested backups are kept, and how many an organization may request a day.
    pub backups: BackupSettings,
    /// The first-run link (`/setup?token=…`) while it works; none when the installation had an
    /// organization at start-up.
    pub setup: std::sync::Arc<domain::accounts::setup::SetupLink>,
}

/// The server's settings for backups requested in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// The folder archives are written to and downloaded from (`LIFELINE_BACKUP_DIR`).
    pub folder: std::path::PathBuf,
    /// Requests one organization may make per 24 hours (`LIFELINE_BACKUPS_PER_DAY`).
    pub per_day: u32,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The state inside a server function; an internal error if the server forgot to provide it.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        AppError::Internal
            .logged("server function", &"AppState missing from context")
            .with_status()
    })
}
