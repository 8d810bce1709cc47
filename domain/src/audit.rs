//! The audit log: every security event of an organization, written in the same transaction
//! as the change it records (or, for a refusal, on its own), so that no change is without its
//! event and no event without its change.
//!
//! Each organization's events form a hash chain. Event `seq` stores the SHA-256 of its
//! canonical content together with the previous event's hash; [`verify`] walks the chain and
//! names the first event that was altered, deleted or moved. Appends take the chain head's
//! row lock, so one organization's events are chained one at a time, on every instance.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    accounts::Member,
    entity::{audit_chain_head, audit_event},
};

/// The "previous hash" of an organization's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// Its place in the organization's chain.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<i32>,
    pub actor: Option<String>,
    pub action: String,
    pub target_id: Option<i32>,
    pub target: Option<String>,
    pub outcome: String,
    pub source: Source,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Starts an organization's audit chain (when the organization is created).
pub(crate) async fn start_chain(db: &impl ConnectionTrait, org_id: i32) -> Result<(), DbErr> {
    audit_chain_head::ActiveModel {
        org_id: Set(org_id),
        seq: Set(0),
        hash: Set(GENESIS.to_owned()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Writes `event` for the organization `org_id`, as the next link of its chain. `db` should
/// be the transaction making the change the event records (the append then commits with it);
/// on a plain connection the append is a transaction of its own.
pub async fn record<C>(
    db: &C,
    org_id: i32,
    event: Event<'_>,
    source: &Source,
    at: DateTime<Utc>,
) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    // Microseconds: what both databases keep, so the hash verifies after a round trip.
    let at = at.trunc_subsecs(6);
    let txn = db.begin().await?;
    // Taking the head row first serialises appends to this chain (a row lock on PostgreSQL;
    // SQLite has one writer at a time).
    let bumped = audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::Seq,
            Expr::col(audit_chain_head::Column::Seq).add(1),
        )
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec(&txn)
        .await?;
    if bumped.rows_affected != 1 {
        return Err(DbErr::RecordNotFound(format!(
            "the audit chain of organization {org_id}"
        )));
    }
    let head = audit_chain_head::Entity::find_by_id(org_id)
        .one(&txn)
        .await?
        .ok_or_else(|| {
            DbErr::RecordNotFound(format!("the audit chain of organization {org_id}"))
        })?;
    let mut row = audit_event::Model {
        id: 0,
        org_id,
        at,
        actor_id: event.actor.map(|m| m.id),
        actor: event.actor.map(|m| m.email.clone()),
        action: event.action.to_owned(),
        target_id: event.target.map(|m| m.id),
        target: event.target.map(|m| m.email.clone()),
        outcome: event.outcome.as_str().to_owned(),
        source_ip: source.ip.clone(),
        user_agent: source
            .user_agent
            .as_ref()
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        details: event.details.to_string(),
        seq: head.seq,
        prev_hash: head.hash,
        hash: String::new(),
    };
    row.hash = content_hash(&row);
    let hash = row.hash.clone();
    let mut active: audit_event::ActiveModel = row.into();
    active.id = sea_orm::ActiveValue::NotSet;
    active.insert(&txn).await?;
    audit_chain_head::Entity::update_many()
        .col_expr(audit_chain_head::Column::Hash, Expr::value(hash))
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// The hex SHA-256 of an event's canonical content: every field but its id and its own
/// hash, in a fixed order, as a JSON array (details as the exact stored text).
fn content_hash(row: &audit_event::Model) -> String {
    let canonical = serde_json::json!([
        row.org_id,
        row.seq,
        row.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        row.actor_id,
        row.actor,
        row.action,
        row.target_id,
        row.target,
        row.outcome,
        row.source_ip,
        row.user_agent,
        row.details,
        row.prev_hash,
    ])
    .to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Where an organization's chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainBreak {
    /// The event's content no longer matches its hash.
    Altered { seq: i64, id: i32 },
    /// The event that should come next is not there (deleted, or its number changed).
    Missing { seq: i64 },
    /// The event does not follow the one before it (moved, or one before it replaced).
    OutOfOrder { seq: i64, id: i32 },
    /// Events at the end of the chain are gone.
    Truncated { last_seq: i64, head_seq: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq, id } => write!(f, "event #{seq} (id {id}) was altered"),
            Self::Missing { seq } => write!(f, "event #{seq} is missing"),
            Self::OutOfOrder { seq, id } => write!(
                f,
                "event #{seq} (id {id}) does not follow the event before it"
            ),
            Self::Truncated { last_seq, head_seq } => write!(
                f,
                "events #{} to #{head_seq} are missing from the end",
                last_seq + 1
            ),
        }
    }
}

/// The state of an organization's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Events checked.
    pub events: i64,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

/// Events read per query when walking a chain: memory stays constant however long it is.
const PAGE: u64 = 1000;

/// Walks the organization's chain from its first event and names the first break.
pub async fn verify(db: &impl ConnectionTrait, org_id: i32) -> Result<ChainState, DbErr> {
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_owned();
    let mut checked = 0;
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_event::Column::Seq)
            .order_by_asc(audit_event::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?;
        let last_page = (rows.len() as u64) < PAGE;
        for row in rows {
            let broken = if row.seq != expected_seq {
                Some(ChainBreak::Missing { seq: expected_seq })
            } else if content_hash(&row) != row.hash {
                Some(ChainBreak::Altered {
                    seq: row.seq,
                    id: row.id,
                })
            } else if row.prev_hash != prev_hash {
                Some(ChainBreak::OutOfOrder {
                    seq: row.seq,
                    id: row.id,
                })
            } else {
                None
            };
            if broken.is_some() {
                return Ok(ChainState {
                    events: checked,
                    broken,
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = row.hash;
        }
        if last_page {
            break;
        }
    }
    let head = audit_chain_head::Entity::find_by_id(org_id).one(db).await?;
    let broken = head.and_then(|head| {
        (head.seq != checked || head.hash != prev_hash).then_some(ChainBreak::Truncated {
            last_seq: checked,
            head_seq: head.seq,
        })
    });
    Ok(ChainState {
        events: checked,
        broken,
    })
}

/// The organization's events from `since` on, oldest first, handed to `sink` a page at a
/// time (constant memory, for exports of any size).
pub async fn for_each_event<E>(
    db: &impl ConnectionTrait,
    org_id: i32,
    since: Option<DateTime<Utc>>,
    mut sink: impl FnMut(Recorded) -> Result<(), E>,
) -> Result<(), ExportError<E>> {
    let mut after_seq = 0;
    loop {
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gt(after_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE);
        if let Some(since) = since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        let rows = query.all(db).await.map_err(ExportError::Database)?;
        let last_page = (rows.len() as u64) < PAGE;
        for row in rows {
            after_seq = row.seq;
            sink(recorded(row).map_err(ExportError::Database)?).map_err(ExportError::Sink)?;
        }
        if last_page {
            return Ok(());
        }
    }
}

/// Reading the log or writing an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError<E> {
    #[error(transparent)]
    Database(DbErr),
    #[error("writing the export: {0}")]
    Sink(E),
}

/// The CSV header of [`csv_line`].
pub const CSV_HEADER: &str =
    "seq,at,actor,action,target,outcome,source_ip,user_agent,details,prev_hash,hash";

/// One event as a CSV line (RFC 4180: fields with commas, quotes or line breaks quoted,
/// quotes doubled), without the line break.
pub fn csv_line(event: &Recorded) -> String {
    let field = |value: &str| {
        if value.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value.to_owned()
        }
    };
    [
        event.seq.to_string(),
        event
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        event.actor.clone().unwrap_or_default(),
        event.action.clone(),
        event.target.clone().unwrap_or_default(),
        event.outcome.clone(),
        event.source.ip.clone().unwrap_or_default(),
        event.source.user_agent.clone().unwrap_or_default(),
        event.details.to_string(),
        event.prev_hash.clone(),
        event.hash.clone(),
    ]
    .iter()
    .map(|value| field(value))
    .collect::<Vec<_>>()
    .join(",")
}

fn recorded(row: audit_event::Model) -> Result<Recorded, DbErr> {
    let details = serde_json::from_str(&row.details)
        .map_err(|e| DbErr::Type(format!("audit event {} details: {e}", row.id)))?;
    Ok(Recorded {
        id: row.id,
        org_id: row.org_id,
        seq: row.seq,
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
        prev_hash: row.prev_hash,
        hash: row.hash,
    })
}

/// The organization's latest events, newest first.
pub async fn latest(
    db: &impl ConnectionTrait,
    org_id: i32,
    limit: u64,
) -> Result<Vec<Recorded>, DbErr> {
    audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .order_by_desc(audit_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(recorded)
        .collect()
}
