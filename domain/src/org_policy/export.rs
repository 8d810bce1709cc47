//! The policy as a document an auditor keeps: the settings, exceptions and Casbin rules in
//! force now (backup codes and data backups alike), or at any past moment (replayed from
//! the versions and the audit log).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};

use super::{Exception, OrgPolicy, PolicyChangeError, current, exceptions, settings};
use crate::{
    authz::{
        Action, Authz,
        rules::{self, MemberException},
    },
    identity::{Member, Organization},
    input::FieldError,
};

/// The policy in force with everything that decides with it, as a document an auditor can
/// keep and compare between two dates: the settings, the exceptions, and the Casbin rules
/// the gate applies in this organization (the baseline's and the organization's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyExport {
    pub organization: String,
    pub slug: String,
    pub exported_at: DateTime<Utc>,
    pub version: i32,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
    pub settings: OrgPolicy,
    pub exceptions: Vec<Exception>,
    /// Each as `p, subject, domain, object, action, effect` (a group's member as
    /// `g, member:<id>, group:<id>, org:<id>`), baseline first, then sorted.
    pub rules: Vec<String>,
}

/// [`PolicyExport`] of the organization `org_id`, for the operator's command line: the
/// policy in force and the rules the gate loads for it, read from where the gate reads them.
pub async fn export(
    db: &DatabaseConnection,
    org_id: i32,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    let organization = organization_of(db, org_id).await?;
    let current = current(db, org_id).await?;
    let exceptions = exceptions::in_force(db, org_id).await?;
    let own = rules::stored_lines(db, org_id).await?;
    Ok(PolicyExport {
        organization: organization.name,
        slug: organization.slug,
        exported_at: now,
        version: current.version,
        saved_by: current.saved_by,
        saved_at: current.saved_at,
        settings: current.policy,
        exceptions,
        rules: rules::with_baseline(own),
    })
}

/// A moment to export the policy as of, as typed: a day (`2026-01-01`, meaning the end of
/// that day, UTC) or an RFC 3339 time (`2026-01-01T09:30:00Z`).
pub fn parse_as_of(input: &str) -> Result<DateTime<Utc>, FieldError> {
    let input = input.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(input, "%Y-%m-%d")
        && let Some(end) = day.succ_opt().and_then(|next| next.and_hms_opt(0, 0, 0))
    {
        return Ok(end.and_utc() - Duration::microseconds(1));
    }
    DateTime::parse_from_rfc3339(input)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                "at",
                "Give a day like 2026-01-01 or a time like 2026-01-01T09:30:00Z.",
            )
        })
}

/// [`PolicyExport`] of the policy as it stood at `at`, for an auditor comparing two dates:
/// the version in force then, the exceptions in force then (replayed from the audit log,
/// whose chain vouches for them), and the rules those compile to, as [`export`] would have
/// given them at that moment.
pub async fn export_at(
    db: &DatabaseConnection,
    org_id: i32,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    let organization = organization_of(db, org_id).await?;
    let version = settings::version_at(db, org_id, Some(at)).await?;
    let exceptions = exceptions::exceptions_at(db, org_id, at).await?;
    // The rules those compile to: the same functions that saving them writes with.
    let named: Vec<MemberException> = exceptions
        .iter()
        .map(|exception| MemberException {
            member_id: exception.member_id,
            allowed: exception.allowed,
        })
        .collect();
    let policy = &version.policy;
    let own = rules::compile(org_id, policy.codes.withholds_codes(), &named)
        .into_iter()
        .chain(rules::backup_rules(org_id, policy.admins_request_backups))
        .chain(rules::issuer_rules(
            org_id,
            policy.recovery_codes.issuers.barred(),
        ))
        .map(|rule| rule.line())
        .chain(crate::groups::lines_at(db, org_id, at).await?)
        .collect();
    Ok(PolicyExport {
        organization: organization.name,
        slug: organization.slug,
        exported_at: now,
        version: version.version,
        saved_by: version.saved_by,
        saved_at: version.saved_at,
        settings: version.policy,
        exceptions,
        rules: rules::with_baseline(own),
    })
}

async fn organization_of(
    db: &DatabaseConnection,
    org_id: i32,
) -> Result<Organization, PolicyChangeError> {
    crate::identity::organization(db, org_id)
        .await?
        .ok_or_else(|| {
            PolicyChangeError::Database(DbErr::RecordNotFound(format!("organization {org_id}")))
        })
}

/// [`export`], or [`export_at`] a past moment, for an owner or admin of the organization.
pub async fn export_seen_by(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<PolicyExport, PolicyChangeError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewPolicy)
        .await?;
    match at {
        Some(at) => export_at(db, viewer.org_id, at, now).await,
        None => export(db, viewer.org_id, now).await,
    }
}
