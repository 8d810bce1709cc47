//! The administration home (`/admin`): the organization at a glance, each part for whom the
//! gate opens its area to.
//! Each part is the area's own reading, cut short (counts the database makes, the newest
//! events, the open requests), so the page reads in the same few statements at any size.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    api::{audit::AuditRow, compliance::ComplianceView},
    error::AppError,
};

/// Events the home page lists.
pub const RECENT_EVENTS: u64 = 10;

/// Something an administrator should look at, with the page where it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    /// For the page's classes: `approvals`, `locked`, `failed-notifications`.
    pub id: String,
    /// "2 sign-in codes waiting for approval".
    pub text: String,
    pub href: String,
}

/// The administration home: each part only for a viewer the gate opens its area to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminHome {
    /// The compliance report's numbers and chart (`audit/view`).
    pub report: Option<ComplianceView>,
    /// What needs attention now, of what the viewer may deal with; empty when nothing does.
    pub attention: Vec<Attention>,
    /// The newest security events, newest first (`audit/view`).
    pub recent: Option<Vec<AuditRow>>,
}

/// "1 thing" or "2 things".
#[cfg(feature = "ssr")]
fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The administration home, for a member the gate opens any administration area to.
#[server(endpoint = "admin/home")]
pub async fn get_admin_home() -> Result<AdminHome, AppError> {
    crate::api::respond(async {
        use crate::api::account::Area;
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let (db, authz, now) = (&state.db, &state.authz, chrono::Utc::now());
        let may = crate::api::account::Area::open_to(authz, &member).await?;
        if may.is_empty() {
            return Err(domain::accounts::AccountError::NotAllowed.into());
        }
        let report = if may.contains(&Area::ViewAudit) {
            Some(domain::members::compliance(db, authz, &member, now).await?)
        } else {
            None
        };
        let waiting = if may.contains(&Area::IssueRecoveryCodes) {
            domain::recovery_codes::recent(db, authz, &member, now)
                .await?
                .into_iter()
                .filter(|request| {
                    request.state == domain::recovery_codes::RecoveryState::AwaitingApproval
                })
                .count()
        } else {
            0
        };
        let failed = if may.contains(&Area::ViewPolicy) {
            domain::org_policy::alerts::failed_deliveries(db, authz, &member)
                .await?
                .len()
        } else {
            0
        };
        let locked = report.as_ref().map_or(0, |report| {
            usize::try_from(report.counts.of(domain::members::Standing::Locked))
                .unwrap_or(usize::MAX)
        });
        // (id, how many, what they are, where they are dealt with): listed when any.
        let items = [
            (
                "approvals",
                waiting,
                ("sign-in code", "sign-in codes"),
                "waiting for a second administrator's approval",
                "/admin/recovery".to_owned(),
            ),
            (
                "locked",
                locked,
                ("member", "members"),
                "locked out after wrong attempts",
                format!(
                    "/admin/members?standing={}",
                    domain::members::Standing::Locked.slug()
                ),
            ),
            (
                "failed-notifications",
                failed,
                ("security message", "security messages"),
                "could not be delivered: tell the members another way",
                "/admin/alerts".to_owned(),
            ),
        ];
        let attention = items
            .into_iter()
            .filter(|(_, count, ..)| *count > 0)
            .map(|(id, count, (one, many), what, href)| Attention {
                id: id.to_owned(),
                text: format!("{} {what}", counted(count, one, many)),
                href,
            })
            .collect();

        let recent = if may.contains(&Area::ViewAudit) {
            let (events, _) = domain::audit::page_seen_by(
                db,
                authz,
                &member,
                &domain::audit::Filter::default(),
                None,
                RECENT_EVENTS,
            )
            .await?;
            Some(events.into_iter().map(AuditRow::from).collect())
        } else {
            None
        };
        Ok(AdminHome {
            report: report.map(Into::into),
            attention,
            recent,
        })
    })
    .await
}
