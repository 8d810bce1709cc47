//! Reading the log, for people: filters as typed in the audit page, keyset pages, exports
//! in constant memory (CSV and JSON lines), and a member's own history. The `*_seen_by`
//! functions ask the gate first.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::{
    Source,
    chain::{ChainMonitor, ChainReport, PAGE},
};
use crate::{
    authz::{Action, Authz, AuthzError, PolicyError},
    entity::audit_event,
    identity::Member,
    input::{FieldError, single_line},
};

/// Longest actor or action filter accepted.
const MAX_FILTER_CHARS: usize = 254;

/// Why the log could not be read for someone.
#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for AuditReadError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
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
    ) -> Result<Self, FieldError> {
        let text = |value: Option<&str>, field: &str| {
            let value = single_line(field, value.unwrap_or_default(), MAX_FILTER_CHARS)?;
            Ok::<_, FieldError>((!value.is_empty()).then(|| value.to_owned()))
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
                .ok_or_else(|| FieldError::new(field, "Enter a day like 2026-01-31."))
        };
        let outcome = text(outcome, "outcome")?;
        if outcome
            .as_deref()
            .is_some_and(|o| !["success", "failure", "denied"].contains(&o))
        {
            return Err(FieldError::new(
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

/// What an owner or admin reads of their organization's log: one [`page`] of it, after
/// the gate's word.
pub async fn page_seen_by(
    db: &impl ConnectionTrait,
    authz: &Authz,
    viewer: &Member,
    filter: &Filter,
    before_seq: Option<i64>,
    limit: u64,
) -> Result<(Vec<Recorded>, Option<i64>), AuditReadError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
        .await?;
    Ok(page(db, viewer.org_id, filter, before_seq, limit).await?)
}

/// Events in one chunk of [`export_chunk_seen_by`].
pub const EXPORT_CHUNK: u64 = PAGE;

/// One chunk of an owner's or admin's export of their organization's log, after the gate's
/// word (asked for every chunk, so a long download stops when the right is withdrawn).
pub async fn export_chunk_seen_by(
    db: &impl ConnectionTrait,
    authz: &Authz,
    viewer: &Member,
    filter: &Filter,
    after_seq: i64,
) -> Result<Vec<Recorded>, AuditReadError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
        .await?;
    Ok(export_chunk(db, viewer.org_id, filter, after_seq, PAGE).await?)
}

/// The state of the viewer's organization's chain, for the audit page.
pub async fn chain_seen_by(
    db: &DatabaseConnection,
    authz: &Authz,
    monitor: &ChainMonitor,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<ChainReport, AuditReadError> {
    authz
        .require(viewer, viewer.org_id, Action::ViewAudit)
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

/// One event as a CSV line, without the line break ([`crate::spreadsheet::record`]: RFC 4180
/// quoting, and no cell a spreadsheet would evaluate).
pub fn csv_line(event: &Recorded) -> String {
    crate::spreadsheet::record([
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
    ])
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
            device: None,
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
