//! The public status check.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the public status check tells anybody who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// Every migration this build knows has been applied to the database.
    pub schema_current: bool,
}

/// Checks that the database answers and its schema is current.
#[server(endpoint = "check_status")]
pub async fn check_status() -> Result<SystemStatus, AppError> {
    let state = crate::state::app_state()?;
    let status = domain::db::schema_status(&state.db)
        .await
        .map_err(|cause| {
            AppError::Unavailable
                .logged("status check: database did not answer", &cause)
                .with_status()
        })?;
    Ok(SystemStatus {
        schema_current: status.is_current(),
    })
}
