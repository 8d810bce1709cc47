//! The compliance report: where the organization's members stand against its backup-code
//! policy, and how codes were used over the last 30 days.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One category of the report and the members in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// For the page's anchors: `with-mfa`, `non-compliant`, …
    pub id: String,
    pub label: String,
    pub members: Vec<String>,
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
    pub total: usize,
    pub categories: Vec<Category>,
    pub days: Vec<Day>,
    /// Every member's standing as CSV, for the download.
    pub csv: String,
}

/// The compliance report for owners and admins.
#[server(endpoint = "admin/compliance")]
pub async fn get_compliance_report() -> Result<ComplianceView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let report =
            domain::members::compliance(&state.db, &state.authz, &member, chrono::Utc::now())
                .await?;
        let members = &report.members;
        let category =
            |id: &str, label: &str, test: &dyn Fn(&domain::members::MemberStatus) -> bool| {
                Category {
                    id: id.to_owned(),
                    label: label.to_owned(),
                    members: members
                        .iter()
                        .filter(|m| test(m))
                        .map(|m| m.member.email.clone())
                        .collect(),
                }
            };
        let categories = vec![
            category("with-mfa", "With MFA on", &|m| m.member.mfa_enabled),
            category("holding-codes", "Holding backup codes", &|m| {
                m.codes_remaining.is_some_and(|n| n > 0) && !m.set_expired
            }),
            category("low-on-codes", "Low on codes", &|m| {
                m.codes_low && !m.set_expired && m.codes_remaining.is_some()
            }),
            category("expired-sets", "With an expired set", &|m| m.set_expired),
            category("non-compliant", "Non-compliant", &|m| !m.compliant),
            category("exempted", "Exempted (an exception)", &|m| {
                m.exception.is_some()
            }),
        ];
        let mut csv = domain::spreadsheet::record([
            "email",
            "role",
            "mfa",
            "codes_remaining",
            "set_expired",
            "compliant",
            "exception",
        ]);
        csv.push('\n');
        for m in members {
            csv.push_str(&domain::spreadsheet::record([
                m.member.email.clone(),
                m.member.role.as_str().to_owned(),
                m.member.mfa_enabled.to_string(),
                m.codes_remaining.map(|n| n.to_string()).unwrap_or_default(),
                m.set_expired.to_string(),
                m.compliant.to_string(),
                match m.exception {
                    Some(true) => "codes allowed",
                    Some(false) => "no codes",
                    None => "",
                }
                .to_owned(),
            ]));
            csv.push('\n');
        }
        Ok(ComplianceView {
            policy: domain::org_policy::CodesMode::label(report.policy).to_owned(),
            total: members.len(),
            categories,
            days: report
                .days
                .into_iter()
                .map(|d| Day {
                    day: d.day.format("%Y-%m-%d").to_string(),
                    redeemed: d.redeemed,
                    refused: d.refused,
                })
                .collect(),
            csv,
        })
    })
    .await
}
