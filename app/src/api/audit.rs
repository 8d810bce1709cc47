//! The organization's audit log for owners and admins: filtered, paged by key, with the
//! state of its hash chain. (Downloads are a streamed route of the server: `/admin/audit/export`.)

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Events per page.
pub const PAGE_SIZE: u64 = 50;

/// One event, as the audit page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub source_ip: String,
    pub details: String,
}

#[cfg(feature = "ssr")]
impl From<domain::audit::Recorded> for AuditRow {
    fn from(e: domain::audit::Recorded) -> Self {
        Self {
            seq: e.seq,
            at: crate::api::readable_time(e.at),
            actor: e.actor.unwrap_or_default(),
            action: e.action,
            target: e.target.unwrap_or_default(),
            outcome: e.outcome,
            source_ip: e.source.ip.unwrap_or_default(),
            details: e.details.to_string(),
        }
    }
}

/// One page of the log, and the chain's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    /// Where the next (older) page starts.
    pub next_before: Option<i64>,
    /// The chain is unbroken.
    pub chain_intact: bool,
    /// The chain's state in words.
    pub chain: String,
}

/// The events matching the filter (days as `YYYY-MM-DD`), newest first, before `before`.
#[server(endpoint = "admin/audit")]
pub async fn get_audit_log(
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    before: Option<i64>,
) -> Result<AuditView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let filter = domain::audit::Filter::from_form(
            from.as_deref(),
            to.as_deref(),
            actor.as_deref(),
            action.as_deref(),
            outcome.as_deref(),
        )?;
        let (events, next_before) = domain::audit::page_seen_by(
            &state.db,
            &state.authz,
            &member,
            &filter,
            before,
            PAGE_SIZE,
        )
        .await?;
        let chain = domain::audit::chain_seen_by(
            &state.db,
            &state.authz,
            &state.chain,
            &member,
            chrono::Utc::now(),
        )
        .await?;
        Ok(AuditView {
            rows: events.into_iter().map(AuditRow::from).collect(),
            next_before,
            chain_intact: !matches!(
                &chain,
                domain::audit::ChainReport::Checked { state, .. } if state.broken.is_some()
            ),
            chain: match chain {
                domain::audit::ChainReport::Verifying => {
                    "Being verified from its first event; reload in a moment.".to_owned()
                }
                domain::audit::ChainReport::Checked {
                    state,
                    full_check_at,
                } => match state.broken {
                    None => format!(
                        "Intact: {} events, each linked to the one before (verified whole {}, \
                         and every event since).",
                        state.events,
                        crate::api::readable_time(full_check_at)
                    ),
                    Some(broken) => format!("Broken: {broken}."),
                },
            },
        })
    })
    .await
}
