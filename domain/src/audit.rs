//! The audit log: every security event of an organization, written in the same transaction
//! as the change it records (or, for a refusal, on its own), so that no change is without its
//! event and no event without its change.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::{accounts::Member, entity::audit_event};

/// Longest user agent kept; the rest is cut off.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Where a request came from, as the audit log records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was tried and failed (a wrong code, for example).
    Failure,
    /// The authorization gate refused it.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// e.g. `backup_code.redeemed`.
    pub action: &'static str,
    pub actor: Option<&'a Member>,
    /// The member acted on; for a member acting on their own account, the same as `actor`.
    pub target: Option<&'a Member>,
    pub outcome: Outcome,
    /// A JSON object with what else an auditor needs; never a secret.
    pub details: serde_json::Value,
}

/// An event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: i32,
    pub org_id: i32,
    pub at: DateTime<Utc>,
    pub actor_id: Option<i32>,
    pub actor: Option<String>,
    pub action: String,
    pub target_id: Option<i32>,
    pub target: Option<String>,
    pub outcome: String,
    pub source: Source,
    pub details: serde_json::Value,
}

/// Writes `event` for the organization `org_id` on `db`, which should be the transaction
/// making the change the event records.
pub async fn record(
    db: &impl ConnectionTrait,
    org_id: i32,
    event: Event<'_>,
    source: &Source,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit_event::ActiveModel {
        org_id: Set(org_id),
        at: Set(at),
        actor_id: Set(event.actor.map(|m| m.id)),
        actor: Set(event.actor.map(|m| m.email.clone())),
        action: Set(event.action.to_owned()),
        target_id: Set(event.target.map(|m| m.id)),
        target: Set(event.target.map(|m| m.email.clone())),
        outcome: Set(event.outcome.as_str().to_owned()),
        source_ip: Set(source.ip.clone()),
        user_agent: Set(source
            .user_agent
            .as_ref()
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect())),
        details: Set(event.details.to_string()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The organization's latest events, newest first.
pub async fn latest(
    db: &impl ConnectionTrait,
    org_id: i32,
    limit: u64,
) -> Result<Vec<Recorded>, DbErr> {
    audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let details = serde_json::from_str(&row.details)
                .map_err(|e| DbErr::Type(format!("audit event {} details: {e}", row.id)))?;
            Ok(Recorded {
                id: row.id,
                org_id: row.org_id,
                at: row.at,
                actor_id: row.actor_id,
                actor: row.actor,
                action: row.action,
                target_id: row.target_id,
                target: row.target,
                outcome: row.outcome,
                source: Source {
                    ip: row.source_ip,
                    user_agent: row.user_agent,
                },
                details,
            })
        })
        .collect()
}
