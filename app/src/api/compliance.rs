//! The compliance report: where the organization's members stand against its backup-code
//! policy, and how codes were used over the last 30 days.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One category of the report: how many members stand there. Its members are the members
/// page filtered to it (`/admin/members?standing=<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// The standing's name in addresses: `with-mfa`, `non-compliant`, …
    pub id: String,
    pub label: String,
    pub count: u64,
}

impl Category {
    /// The members page listing this category's members.
    pub fn href(&self) -> String {
        format!("/admin/members?standing={}", self.id)
    }
}

/// One day of the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    /// `2026-11-28`.
    pub day: String,
    pub redeemed: u32,
    pub refused: u32,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceView {
    /// "Not allowed", "Allowed" or "Required".
    pub policy: String,
    pub total: u64,
    pub categories: Vec<Category>,
    pub days: Vec<Day>,
}

#[cfg(feature = "ssr")]
impl From<domain::members::ComplianceReport> for ComplianceView {
    fn from(report: domain::members::ComplianceReport) -> Self {
        let counts = report.counts;
        Self {
            policy: domain::org_policy::CodesMode::label(counts.policy).to_owned(),
            total: counts.members,
            categories: counts
                .standings
                .iter()
                .map(|(standing, count)| Category {
                    id: standing.slug().to_owned(),
                    label: standing.label().to_owned(),
                    count: *count,
                })
                .collect(),
            days: report
                .days
                .into_iter()
                .map(|d| Day {
                    day: d.day.format("%Y-%m-%d").to_string(),
                    redeemed: d.redeemed,
                    refused: d.refused,
                })
                .collect(),
        }
    }
}

/// The compliance report for owners and admins: counts, each linking to its members, and
/// the last 30 days of code use. The member list itself downloads from
/// `/admin/compliance/export`.
#[server(endpoint = "admin/compliance")]
pub async fn get_compliance_report() -> Result<ComplianceView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let report =
            domain::members::compliance(&state.db, &state.authz, &member, chrono::Utc::now())
                .await?;
        Ok(report.into())
    })
    .await
}
