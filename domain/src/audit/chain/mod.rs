//! Each organization's events form a chain of keyed links. Event `seq` stores the
//! HMAC-SHA-256, under a key derived from the server's secret key ([`ChainKey`]), of its
//! canonical content, the previous event's link and the key version; [`verify`] walks the
//! chain and names the first event that was altered, deleted, moved, or re-linked without the
//! key (as a plain hash). Appends take the chain head's row lock, so one organization's events
//! are chained one at a time, on every instance.
//!
//! What the links cover, and what they do not: someone who can write to the database but does
//! not hold the key cannot change, remove or reorder an event in the middle of a chain, or
//! recompute the links after it, without [`verify`] naming it. They can cut events off the
//! end and move the head back to what is left: that only a signed checkpoint held elsewhere
//! shows ([`super::checkpoint`]), or one still in the database when [`verify`] runs. Anyone
//! holding the key can forge links; checkpoints held outside the database still show a
//! rewrite of what they vouched for.
//!
//! Chains from before the key (plain SHA-256 links) are re-linked under the key by
//! [`upgrade_plain_chains`] by the process that applies the keying migration; a plain chain
//! that does not verify is left as it is and reported, never re-linked. After that, plain
//! links are a downgrade, which [`verify`] names.
//!
//! Appending and the link live here; [`verify`] (walking a chain), [`upgrade`] (keying old
//! chains) and [`monitor`] (the audit page's word) are the rooms beside it.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait, sea_query::Expr,
};
use sha2::{Digest, Sha256};

use super::{
    Event, Source,
    keys::{self, ChainKey},
    notices::Audience,
};
use crate::{
    entity::{audit_chain_head, audit_event},
    secrets::KeyVersion,
};

mod monitor;
mod restored;
mod upgrade;
mod verify;

pub(crate) use self::restored::{ArchivedLinks, relink_restored};
pub(super) use self::verify::{ChainKeys, PAGE, Place, event_matches, verify_after};
pub use self::{
    monitor::{ChainMonitor, ChainReport},
    upgrade::{PlainChain, chains_await_keying, upgrade_plain_chains},
    verify::{ChainBreak, ChainState, verify},
};

/// The "previous hash" of an organization's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest user agent kept; the rest is cut off.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Starts an organization's audit chain (when the organization is created), keyed from the
/// start under the installed key's newest version.
pub(crate) async fn start_chain(db: &impl ConnectionTrait, org_id: i32) -> Result<(), DbErr> {
    let version = keys::installed()?.current_version();
    audit_chain_head::ActiveModel {
        org_id: Set(org_id),
        seq: Set(0),
        hash: Set(GENESIS.to_owned()),
        key_version: Set(Some(version)),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Writes `event` for the organization `org_id`, as the next link of its chain, under the
/// installed key ([`keys::install`]). `db` should be the transaction making the change the
/// event records (the append then commits with it); on a plain connection the append is a
/// transaction of its own.
///
/// The link's key version is the newest the key holds, or the chain head's when that is newer
/// (another instance has learned of a rotation first; the key file is then re-read), so a
/// chain's versions never go down. Errors: no key installed, the head names a version the key
/// file does not hold, or the database's.
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
    record_to(db, org_id, event, source, at, None).await
}

/// [`record`], telling of the event those `ahead` names (read before the transaction, see
/// [`Audience`]) instead of reading them in it.
pub async fn record_to<C>(
    db: &C,
    org_id: i32,
    event: Event<'_>,
    source: &Source,
    at: DateTime<Utc>,
    ahead: Option<&Audience>,
) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let secret = keys::installed()?;
    // Microseconds: what both databases keep, so the link verifies after a round trip.
    let at = at.trunc_subsecs(6);
    let txn = db.begin().await?;
    // Taking the head row first serialises appends to this chain (a row lock on PostgreSQL;
    // SQLite has one writer at a time).
    let head = audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::Seq,
            Expr::col(audit_chain_head::Column::Seq).add(1),
        )
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            DbErr::RecordNotFound(format!("the audit chain of organization {org_id}"))
        })?;
    let version = secret
        .current_version()
        .max(head.key_version.unwrap_or(KeyVersion::MIN));
    let chain_key = ChainKey::of(&secret, version).ok_or_else(|| {
        DbErr::Custom(format!(
            "the audit chain of organization {org_id} is linked under secret key version \
             {version}, which this server's key does not hold"
        ))
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
        key_version: Some(version),
    };
    row.hash = chain_key.mac(&Link::of(&row));
    let hash = row.hash.clone();
    let mut active: audit_event::ActiveModel = row.into();
    active.id = sea_orm::ActiveValue::NotSet;
    let recorded = active.insert(&txn).await?;
    audit_chain_head::Entity::update_many()
        .col_expr(audit_chain_head::Column::Hash, Expr::value(hash))
        .col_expr(audit_chain_head::Column::KeyVersion, Expr::value(version))
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec(&txn)
        .await?;
    // The chart's count of the day, in the same transaction: it never disagrees with the log.
    super::daily::count(&txn, org_id, event.action, at).await?;
    // Whoever should hear of it, in the same transaction: no event goes untold.
    super::notices::follow(&txn, org_id, &event, source, at, ahead).await?;
    // And the organization's own systems, through its webhooks.
    let webhooks = Audience::webhooks(ahead, org_id);
    crate::notifications::webhooks::enqueue_event(&txn, &recorded, at, webhooks).await?;
    txn.commit().await
}

/// Links `row` anew after `prev` (the new link of the event before it) under `chain_key`, in
/// `db`: its `prev_hash`, `key_version` and `hash` are rewritten, in memory and in the row.
/// Returns the new link. For the rewrites that re-key a whole chain (the upgrade of plain
/// chains, a chain restored from another installation), which check it first.
pub(super) async fn relink_row(
    db: &impl ConnectionTrait,
    chain_key: &ChainKey,
    row: &mut audit_event::Model,
    prev: String,
) -> Result<String, DbErr> {
    row.prev_hash = prev;
    row.key_version = Some(chain_key.version());
    row.hash = chain_key.mac(&Link::of(row));
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::PrevHash,
            Expr::value(row.prev_hash.clone()),
        )
        .col_expr(audit_event::Column::Hash, Expr::value(row.hash.clone()))
        .col_expr(
            audit_event::Column::KeyVersion,
            Expr::value(chain_key.version()),
        )
        .filter(audit_event::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    Ok(row.hash.clone())
}

/// One link of a chain as it is hashed: every stored field of an event but its id, its own
/// link and its key version (which the keyed link covers separately).
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

impl<'a> Link<'a> {
    /// The link of a stored event.
    pub(crate) fn of(row: &'a audit_event::Model) -> Self {
        Self {
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
    }

    /// The canonical content: the fields in a fixed order as a JSON array, followed by the key
    /// version for a keyed link (`None`: the plain links' content, exactly as before keys).
    pub fn canonical(&self, key_version: Option<KeyVersion>) -> String {
        let mut fields = vec![
            serde_json::json!(self.org_id),
            serde_json::json!(self.seq),
            serde_json::json!(self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            serde_json::json!(self.actor_id),
            serde_json::json!(self.actor),
            serde_json::json!(self.action),
            serde_json::json!(self.target_id),
            serde_json::json!(self.target),
            serde_json::json!(self.outcome),
            serde_json::json!(self.source_ip),
            serde_json::json!(self.user_agent),
            serde_json::json!(self.details),
            serde_json::json!(self.prev_hash),
        ];
        if let Some(version) = key_version {
            fields.push(serde_json::json!(version));
        }
        serde_json::Value::Array(fields).to_string()
    }

    /// The plain link of the chains from before the key: the hex SHA-256 of the canonical
    /// content. Anyone can compute it, so after the upgrade no chain accepts it.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical(None).as_bytes()))
    }
}
