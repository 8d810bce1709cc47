//! Ending everything that stands in for a member's second factor at once: the backup-code
//! set in force and any recovery code an administrator issued them (issue 19, item 1).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::Expr,
};

use crate::{
    audit::{AuditAction, Event},
    entity::recovery_code,
    identity::Member,
};

/// What [`end_stand_ins`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandInsEnded {
    /// A backup-code set was in force.
    pub backup_codes: bool,
    /// A recovery code an administrator issued was waiting (requested, approved or revealed,
    /// with uses left).
    pub recovery_code: bool,
}

/// Why a member's stand-ins for the second factor end, as the audit log says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    CodesRevoked,
    MfaReset,
    MfaDisabled,
    MemberRemoved,
    /// An administrator cancelled the issued code alone.
    Cancelled,
    /// The member reported "This wasn't me" from a security notice.
    IncidentReported,
    /// The organization was restored from a backup into an installation whose pepper
    /// differs, so the codes' digests cannot be checked there.
    RestoredElsewhere,
}

impl EndReason {
    pub const ALL: [Self; 7] = [
        Self::CodesRevoked,
        Self::MfaReset,
        Self::MfaDisabled,
        Self::MemberRemoved,
        Self::Cancelled,
        Self::IncidentReported,
        Self::RestoredElsewhere,
    ];

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == stored)
    }

    /// The reason as the recovery page gives it, after "Ended: ".
    pub fn words(self) -> &'static str {
        match self {
            Self::CodesRevoked => "the member's codes were revoked",
            Self::MfaReset => "the member's MFA was reset",
            Self::MfaDisabled => "the member turned MFA off",
            Self::MemberRemoved => "the member was removed",
            Self::Cancelled => "an administrator cancelled it",
            Self::IncidentReported => "the member reported \u{201c}This wasn't me\u{201d}",
            Self::RestoredElsewhere => "the organization was restored into another installation",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodesRevoked => "codes_revoked",
            Self::MfaReset => "mfa_reset",
            Self::MfaDisabled => "mfa_disabled",
            Self::MemberRemoved => "member_removed",
            Self::Cancelled => "cancelled",
            Self::IncidentReported => "incident_reported",
            Self::RestoredElsewhere => "restored_elsewhere",
        }
    }
}

/// Ends everything that stands in for `target`'s second factor — the backup-code set in
/// force and any administrator-issued recovery code not used yet — for `reason`, in `db`,
/// the transaction of the change that ends them. An ended recovery code is recorded
/// (`recovery_code.ended`, with the reason) by `actor` (none: the member themself or the
/// system).
pub(crate) async fn end_stand_ins(
    db: &(impl ConnectionTrait + TransactionTrait),
    actor: Option<&Member>,
    target: &Member,
    reason: EndReason,
    source: &crate::audit::Source,
    now: DateTime<Utc>,
) -> Result<StandInsEnded, DbErr> {
    let backup_codes =
        crate::backup_codes::end_set_in_force(db, target.id, reason.as_str(), now).await?;
    let open: Vec<i32> = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(target.id))
        .filter(super::open_condition(now))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    for id in &open {
        recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::EndedAt, Expr::value(now))
            .col_expr(
                recovery_code::Column::EndReason,
                Expr::value(reason.as_str()),
            )
            .filter(recovery_code::Column::Id.eq(*id))
            .filter(recovery_code::Column::EndedAt.is_null())
            .exec(db)
            .await?;
        crate::audit::record(
            db,
            target.org_id,
            Event {
                action: AuditAction::RecoveryCodeEnded,
                actor: actor.or(Some(target)),
                target: Some(target),
                outcome: crate::audit::Outcome::Success,
                details: serde_json::json!({ "request": id, "reason": reason.as_str() }),
            },
            source,
            now,
        )
        .await?;
    }
    Ok(StandInsEnded {
        backup_codes,
        recovery_code: !open.is_empty(),
    })
}
