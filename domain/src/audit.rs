//! The audit log: every security event of an organization, written in the same transaction
//! as the change it records (or, for a refusal, on its own), so that no change is without its
//! event and no event without its change.
//!
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

/// Which events an auditor is looking at. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// On or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Part of the actor's email address.
    pub actor: Option<String>,
    /// An action, or the start of one (`backup_code.` matches every backup-code event).
    pub action: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
}

impl Filter {
    /// Reads a filter as typed in the audit page's form: days as `YYYY-MM-DD` (UTC, "to"
    /// inclusive), the rest as text. Blank fields match everything.
    pub fn from_form(
        from: Option<&str>,
        to: Option<&str>,
        actor: Option<&str>,
        action: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<Self, crate::accounts::FieldError> {
        let text = |value: Option<&str>, field: &str| {
            let value = value.map(str::trim).filter(|v| !v.is_empty());
            // No actor or action holds a control character, and PostgreSQL refuses a NUL in
            // text outright.
            match value {
                Some(v) if v.chars().count() > 254 || v.chars().any(char::is_control) => {
                    Err(crate::accounts::FieldError::new(
                        field,
                        "Use at most 254 characters on one line.",
                    ))
                }
                other => Ok(other.map(str::to_owned)),
            }
        };
        let day = |value: Option<&str>, field: &str, next: bool| {
            let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|date| if next { date.succ_opt() } else { Some(date) })
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|start| Some(start.and_utc()))
                .ok_or_else(|| {
                    crate::accounts::FieldError::new(field, "Enter a day like 2026-01-31.")
                })
        };
        let outcome = text(outcome, "outcome")?;
        if outcome
            .as_deref()
            .is_some_and(|o| !["success", "failure", "denied"].contains(&o))
        {
            return Err(crate::accounts::FieldError::new(
                "outcome",
                "Choose success, failure or denied.",
            ));
        }
        Ok(Self {
            from: day(from, "from", false)?,
            to: day(to, "to", true)?,
            actor: text(actor, "actor")?,
            action: text(action, "action")?,
            outcome,
        })
    }

    fn apply(
        &self,
        query: sea_orm::Select<audit_event::Entity>,
    ) -> sea_orm::Select<audit_event::Entity> {
        let mut query = query;
        if let Some(from) = self.from {
            query = query.filter(audit_event::Column::At.gte(from));
        }
        if let Some(to) = self.to {
            query = query.filter(audit_event::Column::At.lt(to));
        }
        if let Some(actor) = self.actor.as_deref().filter(|a| !a.is_empty()) {
            query = query.filter(audit_event::Column::Actor.contains(actor.to_lowercase()));
        }
        if let Some(action) = self.action.as_deref().filter(|a| !a.is_empty()) {
            query = query.filter(audit_event::Column::Action.starts_with(action));
        }
        if let Some(outcome) = self.outcome.as_deref().filter(|o| !o.is_empty()) {
            query = query.filter(audit_event::Column::Outcome.eq(outcome));
        }
        query
    }
}

/// One page of the organization's events matching `filter`, newest first, before the event
/// `before_seq` (keyset pagination on the chain's own index); and where the next page starts.
pub async fn page(
    db: &impl ConnectionTrait,
    org_id: i32,
    filter: &Filter,
    before_seq: Option<i64>,
    limit: u64,
) -> Result<(Vec<Recorded>, Option<i64>), DbErr> {
    let mut query = filter
        .apply(audit_event::Entity::find())
        .filter(audit_event::Column::OrgId.eq(org_id))
        .order_by_desc(audit_event::Column::Seq)
        .limit(limit + 1);
    if let Some(before) = before_seq {
        query = query.filter(audit_event::Column::Seq.lt(before));
    }
    let mut rows = query.all(db).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.last().map(|row| row.seq)
    } else {
        None
    };
    Ok((
        rows.into_iter().map(recorded).collect::<Result<_, _>>()?,
        next,
    ))
}

/// The organization's events matching `filter` after the event `after_seq`, oldest first,
/// at most `limit` of them: one chunk of an export.
pub async fn export_chunk(
    db: &impl ConnectionTrait,
    org_id: i32,
    filter: &Filter,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<Recorded>, DbErr> {
    filter
        .apply(audit_event::Entity::find())
        .filter(audit_event::Column::OrgId.eq(org_id))
        .filter(audit_event::Column::Seq.gt(after_seq))
        .order_by_asc(audit_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(recorded)
        .collect()
}

/// The latest security events about `member` (as actor or as target), newest first: what
/// they see of their own history.
pub async fn own_history(
    db: &impl ConnectionTrait,
    member: &Member,
    limit: u64,
) -> Result<Vec<Recorded>, DbErr> {
    audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(member.org_id))
        .filter(
            sea_orm::Condition::any()
                .add(audit_event::Column::ActorId.eq(member.id))
                .add(audit_event::Column::TargetId.eq(member.id)),
        )
        .order_by_desc(audit_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(recorded)
        .collect()
}

/// An action in words, for people reading their history.
pub fn describe(action: &str, outcome: &str) -> String {
    let words = match action {
        "backup_codes.generated" => "Backup codes generated",
        "backup_codes.replaced" => "New backup codes generated (the old ones stopped working)",
        "backup_codes.revoked" => "Backup codes revoked by an administrator",
        "backup_codes.expired" => "Backup codes expired (past the maximum set age)",
        "backup_codes.generate_refused" => "Generating backup codes was refused",
        "backup_code.redeemed" => "Signed in with a backup code",
        "backup_code.refused" => "A backup code was refused",
        "backup_code.locked" => "Backup-code sign-in locked after wrong codes",
        "password.locked" => "Password sign-in locked after wrong passwords",
        "totp.locked" => "Authenticator sign-in locked after wrong codes",
        "member.unlocked" => "Sign-in unlocked by an administrator",
        "recovery_code.requested" => "Recovery code requested",
        "recovery_code.approved" => "Recovery code approved",
        "recovery_code.revealed" => "Recovery code revealed to the requesting administrator",
        "recovery_code.used" => "Signed in with a recovery code from an administrator",
        "mfa.enabled" => "Multi-factor authentication turned on",
        "mfa.disabled" => "Multi-factor authentication turned off",
        "mfa.reset" => "Multi-factor authentication reset by an administrator",
        "sign_in.succeeded" => "Signed in",
        "sign_in.failed" => "A sign-in failed",
        "member.added" => "Account created",
        "member.removed" => "Account removed",
        "member.role_changed" => "Role changed",
        "policy.saved" => "Backup-code policy saved",
        "policy.exception_added" => "Policy exception added",
        "policy.exception_removed" => "Policy exception removed",
        "organization.created" => "Organization created",
        other => return format!("{other} ({outcome})"),
    };
    if outcome == Outcome::Denied.as_str() && !action.ends_with("refused") {
        format!("Refused: {words}")
    } else {
        words.to_owned()
    }
}

/// What an owner or admin reads of their organization's log: one [`page`] of it, after
/// the gate's word.
pub async fn page_seen_by(
    db: &impl ConnectionTrait,
    authz: &crate::authz::Authz,
    viewer: &Member,
    filter: &Filter,
    before_seq: Option<i64>,
    limit: u64,
) -> Result<(Vec<Recorded>, Option<i64>), crate::accounts::AccountError> {
    authz
        .require(viewer, viewer.org_id, crate::authz::Action::ViewAudit)
        .await?;
    Ok(page(db, viewer.org_id, filter, before_seq, limit).await?)
}

/// One chunk of an owner's or admin's export of their organization's log, after the gate's
/// word (asked for every chunk, so a long download stops when the right is withdrawn).
pub async fn export_chunk_seen_by(
    db: &impl ConnectionTrait,
    authz: &crate::authz::Authz,
    viewer: &Member,
    filter: &Filter,
    after_seq: i64,
) -> Result<Vec<Recorded>, crate::accounts::AccountError> {
    authz
        .require(viewer, viewer.org_id, crate::authz::Action::ViewAudit)
        .await?;
    Ok(export_chunk(db, viewer.org_id, filter, after_seq, PAGE).await?)
}

/// The state of the viewer's organization's chain, for the audit page.
pub async fn chain_seen_by(
    db: &DatabaseConnection,
    authz: &crate::authz::Authz,
    monitor: &ChainMonitor,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<ChainReport, crate::accounts::AccountError> {
    authz
        .require(viewer, viewer.org_id, crate::authz::Action::ViewAudit)
        .await?;
    Ok(monitor.report(db, viewer.org_id, now).await?)
}

/// The organization's events from `since` on, oldest first, handed to `sink` a page at a
/// time (constant memory, for exports of any size).
pub async fn for_each_event<E>(
    db: &impl ConnectionTrait,
    org_id: i32,
    since: Option<DateTime<Utc>>,
    mut sink: impl FnMut(Recorded) -> Result<(), E>,
) -> Result<(), ExportError<E>> {
    let filter = Filter {
        from: since,
        ..Filter::default()
    };
    let mut after_seq = 0;
    loop {
        let events = export_chunk(db, org_id, &filter, after_seq, PAGE)
            .await
            .map_err(ExportError::Database)?;
        let last_page = (events.len() as u64) < PAGE;
        for event in events {
            after_seq = event.seq;
            sink(event).map_err(ExportError::Sink)?;
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

#[cfg(test)]
mod tests {
    use super::Filter;

    #[test]
    fn filters_refuse_control_characters_and_overlong_text_next_to_their_field() {
        for (actor, action, field) in [
            ("a\u{0}b", "", "actor"),
            ("", "backup_code.\r\nredeemed", "action"),
            (&*"x".repeat(255), "", "actor"),
        ] {
            let error = Filter::from_form(None, None, Some(actor), Some(action), None).unwrap_err();
            assert_eq!(error.field, field);
        }
        let kept = Filter::from_form(None, None, Some(" Owner@Acme.test "), None, None).unwrap();
        assert_eq!(kept.actor.as_deref(), Some("Owner@Acme.test"));
    }
}
