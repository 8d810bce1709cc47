//! Two-admin approval of admin-issued recovery codes, as it binds at a moment.
//!
//! Turning approval on binds at once. Turning it off binds only [`APPROVAL_OFF_DELAY`] after
//! the save: until then every request still needs a second admin. So one admin cannot switch
//! approval off, issue a code alone and switch it back on (issue 19, item 5: dual control
//! that one person cannot bypass); the other admins see the change on the policy's history
//! and in the audit log, and have the delay to turn it back on.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use crate::entity::org_policy;

/// How long after a save turning two-admin approval off that approval is still required.
pub const APPROVAL_OFF_DELAY: Duration = Duration::hours(24);

/// Whether recovery codes need a second admin at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoAdminApproval {
    /// A request needs a second admin's approval, and a reveal checks it again.
    pub required: bool,
    /// Approval was turned off, and stops binding at this moment.
    pub ends_at: Option<DateTime<Utc>>,
}

/// Two-admin approval in organization `org_id` at `now`: required while the policy in force
/// asks for it, and for [`APPROVAL_OFF_DELAY`] after the save that turned it off.
pub async fn two_admin_approval(
    db: &impl ConnectionTrait,
    org_id: i32,
    now: DateTime<Utc>,
) -> Result<TwoAdminApproval, DbErr> {
    let versions = || org_policy::Entity::find().filter(org_policy::Column::OrgId.eq(org_id));
    // The newest version that asked for approval, if any…
    let Some(last_on) = versions()
        .filter(org_policy::Column::RecoveryCodeApproval.eq(true))
        .order_by_desc(org_policy::Column::Version)
        .one(db)
        .await?
    else {
        return Ok(TwoAdminApproval {
            required: false,
            ends_at: None,
        });
    };
    // …and the one after it, which turned it off (none: it is on now).
    let Some(turned_off) = versions()
        .filter(org_policy::Column::Version.gt(last_on.version))
        .order_by_asc(org_policy::Column::Version)
        .one(db)
        .await?
    else {
        return Ok(TwoAdminApproval {
            required: true,
            ends_at: None,
        });
    };
    let ends_at = turned_off.saved_at + APPROVAL_OFF_DELAY;
    Ok(TwoAdminApproval {
        required: now < ends_at,
        ends_at: (now < ends_at).then_some(ends_at),
    })
}
