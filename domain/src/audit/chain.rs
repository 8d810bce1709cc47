//! Each organization's events form a hash chain. Event `seq` stores the SHA-256 of its
//! canonical content together with the previous event's hash; [`verify`] walks the chain and
//! names the first event that was altered, deleted or moved. Appends take the chain head's
//! row lock, so one organization's events are chained one at a time, on every instance.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Event, Source};
use crate::entity::{audit_chain_head, audit_event};

/// The "previous hash" of an organization's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest user agent kept; the rest is cut off.
const MAX_USER_AGENT_CHARS: usize = 256;

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
        action: event.action.as_str().to_owned(),
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

/// One link of a chain as it is hashed: every stored field of an event but its id and its
/// own hash.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub org_id: i32,
    pub seq: i64,
    /// Microseconds are kept; anything finer is not.
    pub at: DateTime<Utc>,
    pub actor_id: Option<i32>,
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub target_id: Option<i32>,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The details exactly as stored (JSON text).
    pub details: &'a str,
    pub prev_hash: &'a str,
}

impl Link<'_> {
    /// The link's hash: the hex SHA-256 of its canonical content, the fields in a fixed
    /// order as a JSON array.
    pub fn hash(&self) -> String {
        let canonical = serde_json::json!([
            self.org_id,
            self.seq,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.actor_id,
            self.actor,
            self.action,
            self.target_id,
            self.target,
            self.outcome,
            self.source_ip,
            self.user_agent,
            self.details,
            self.prev_hash,
        ])
        .to_string();
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The hash a stored event should carry ([`Link::hash`]).
fn content_hash(row: &audit_event::Model) -> String {
    Link {
        org_id: row.org_id,
        seq: row.seq,
        at: row.at,
        actor_id: row.actor_id,
        actor: row.actor.as_deref(),
        action: &row.action,
        target_id: row.target_id,
        target: row.target.as_deref(),
        outcome: &row.outcome,
        source_ip: row.source_ip.as_deref(),
        user_agent: row.user_agent.as_deref(),
        details: &row.details,
        prev_hash: &row.prev_hash,
    }
    .hash()
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
pub(super) const PAGE: u64 = 1000;

/// Walks the organization's chain from its first event and names the first break.
pub async fn verify(db: &impl ConnectionTrait, org_id: i32) -> Result<ChainState, DbErr> {
    Ok(verify_after(db, org_id, Checkpoint::genesis()).await?.0)
}

/// A verified place in a chain: the event `seq` (0: before the first) and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    seq: i64,
    hash: String,
}

impl Checkpoint {
    fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// Walks the chain from the event after `start`, which was verified before, to the head;
/// returns the state (counting from the chain's start) and the last verified checkpoint.
async fn verify_after(
    db: &impl ConnectionTrait,
    org_id: i32,
    start: Checkpoint,
) -> Result<(ChainState, Checkpoint), DbErr> {
    let mut expected_seq = start.seq + 1;
    let mut prev_hash = start.hash;
    let mut checked = start.seq;
    let done = |checked, prev_hash, broken| {
        Ok((
            ChainState {
                events: checked,
                broken,
            },
            Checkpoint {
                seq: checked,
                hash: prev_hash,
            },
        ))
    };
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
                return done(checked, prev_hash, broken);
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
    done(checked, prev_hash, broken)
}

/// Chains up to this many events are verified whole on first sight, before the page shows;
/// longer ones in the background.
const VERIFY_INLINE_UP_TO: i64 = 20_000;
/// How often each chain is verified whole again, from its first event.
const FULL_CHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Keeps the audit page's word on each organization's chain without walking a million
/// events on every load: the chain is verified whole once, then each look verifies only
/// the events appended since (and re-checks the last verified one against its stored hash),
/// and the whole chain is verified again in the background every [`FULL_CHECK_EVERY`].
/// An edit to an old event therefore shows within that period; `lifeline audit verify`
/// always walks the whole chain.
#[derive(Clone, Default)]
pub struct ChainMonitor {
    checked: Arc<Mutex<HashMap<i32, Checked>>>,
    running: Arc<Mutex<HashSet<i32>>>,
}

#[derive(Debug, Clone)]
struct Checked {
    state: ChainState,
    through: Checkpoint,
    full_check_at: DateTime<Utc>,
}

/// What the audit page says of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainReport {
    /// Verified: whole at `full_check_at`, and every event appended since.
    Checked {
        state: ChainState,
        full_check_at: DateTime<Utc>,
    },
    /// A long chain seen for the first time: its verification is running.
    Verifying,
}

impl ChainMonitor {
    /// The chain of `org_id` as of now, verifying what is new since the last look.
    pub async fn report(
        &self,
        db: &DatabaseConnection,
        org_id: i32,
        now: DateTime<Utc>,
    ) -> Result<ChainReport, DbErr> {
        let known = self.lock_checked().get(&org_id).cloned();
        let Some(known) = known else {
            let head = audit_chain_head::Entity::find_by_id(org_id)
                .one(db)
                .await?
                .map_or(0, |head| head.seq);
            if head > VERIFY_INLINE_UP_TO {
                self.check_whole_in_background(db, org_id, now);
                return Ok(ChainReport::Verifying);
            }
            let checked = self.check_whole(db, org_id, now).await?;
            return Ok(ChainReport::Checked {
                state: checked.state,
                full_check_at: checked.full_check_at,
            });
        };
        if now - known.full_check_at >= FULL_CHECK_EVERY {
            self.check_whole_in_background(db, org_id, now);
        }
        if known.state.broken.is_some() {
            return Ok(ChainReport::Checked {
                state: known.state,
                full_check_at: known.full_check_at,
            });
        }
        // The last verified event must still be the one verified; then only the new ones.
        let tip_intact = known.through.seq == 0
            || audit_event::Entity::find()
                .filter(audit_event::Column::OrgId.eq(org_id))
                .filter(audit_event::Column::Seq.eq(known.through.seq))
                .one(db)
                .await?
                .is_some_and(|row| {
                    row.hash == known.through.hash && content_hash(&row) == row.hash
                });
        let (state, through) = if tip_intact {
            verify_after(db, org_id, known.through).await?
        } else {
            // Something changed under the last verified event: find what, from the start.
            verify_after(db, org_id, Checkpoint::genesis()).await?
        };
        let checked = Checked {
            state: state.clone(),
            through,
            full_check_at: known.full_check_at,
        };
        self.store(org_id, checked);
        Ok(ChainReport::Checked {
            state,
            full_check_at: known.full_check_at,
        })
    }

    async fn check_whole(
        &self,
        db: &DatabaseConnection,
        org_id: i32,
        now: DateTime<Utc>,
    ) -> Result<Checked, DbErr> {
        let (state, through) = verify_after(db, org_id, Checkpoint::genesis()).await?;
        let checked = Checked {
            state,
            through,
            full_check_at: now,
        };
        self.store(org_id, checked.clone());
        Ok(checked)
    }

    /// Verifies the whole chain on a task of its own, one at a time per organization.
    fn check_whole_in_background(&self, db: &DatabaseConnection, org_id: i32, now: DateTime<Utc>) {
        if !self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org_id)
        {
            return;
        }
        let (monitor, db) = (self.clone(), db.clone());
        tokio::spawn(async move {
            if let Err(error) = monitor.check_whole(&db, org_id, now).await {
                tracing::warn!(%error, org_id, "verifying the audit chain");
            }
            monitor
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&org_id);
        });
    }

    fn store(&self, org_id: i32, checked: Checked) {
        let mut map = self.lock_checked();
        // A background check that started earlier must not replace a later look's word.
        let newer = map
            .get(&org_id)
            .is_none_or(|known| known.full_check_at <= checked.full_check_at);
        if newer {
            map.insert(org_id, checked);
        }
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Checked>> {
        self.checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
