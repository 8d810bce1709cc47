//! One command's context: the database, the gate, the acting member, where the request came
//! from and the current time, passed together to every administrative or member command
//! instead of five loose arguments (kanidm passes a transaction, an identity and a time the
//! same way).
//!
//! It also owns the one rule for a refused change: the gate's refusal is written to the
//! audit log (outcome `denied`) before it is returned, so an auditor sees who tried what
//! they may not do.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, Authz, AuthzError, Denied, PolicyError},
    identity::Member,
};

/// Who is doing what, from where, when; see the module docs.
#[derive(Clone, Copy)]
pub struct Command<'a> {
    pub db: &'a DatabaseConnection,
    pub authz: &'a Authz,
    /// The signed-in member giving the command.
    pub actor: &'a Member,
    /// Where the request came from, as the audit log records it.
    pub source: &'a Source,
    /// The time the command is judged at: every check and every write of it uses this one.
    pub now: DateTime<Utc>,
}

/// A change the actor attempts, as the audit log records it if the gate refuses it.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The event the change would have recorded, e.g. [`AuditAction::MemberRemoved`].
    pub action: AuditAction,
    pub target: Option<&'a Member>,
    /// What was asked for (a role, an email); never a secret.
    pub details: serde_json::Value,
}

impl<'a> Attempt<'a> {
    /// An attempt at `action` on nobody in particular, with no details.
    pub fn of(action: AuditAction) -> Self {
        Self {
            action,
            target: None,
            details: serde_json::json!({}),
        }
    }
}

impl<'a> Command<'a> {
    pub fn new(
        db: &'a DatabaseConnection,
        authz: &'a Authz,
        actor: &'a Member,
        source: &'a Source,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            db,
            authz,
            actor,
            source,
            now,
        }
    }

    /// Whether the gate lets the actor do `action` in their own organization.
    pub async fn allows(&self, action: Action) -> Result<bool, PolicyError> {
        self.authz
            .allows(self.actor, self.actor.org_id, action)
            .await
    }

    /// `Ok` if the gate lets the actor do `action` in their organization; otherwise the
    /// attempt is recorded as denied and [`AuthzError::Denied`] returned.
    pub async fn require(&self, action: Action, attempt: Attempt<'_>) -> Result<(), AuthzError> {
        self.require_all(&[action], attempt).await
    }

    /// [`Command::require`] for every one of `actions` (a role's permission and whom it
    /// reaches, say), asked of one revision of the rules: one look at the database for all.
    pub async fn require_all(
        &self,
        actions: &[Action],
        attempt: Attempt<'_>,
    ) -> Result<(), AuthzError> {
        let gate = match actions {
            [_] => self.authz.clone(),
            _ => self.authz.refreshed().await?,
        };
        let mut allowed = true;
        for action in actions {
            allowed = allowed && gate.allows(self.actor, self.actor.org_id, *action).await?;
        }
        if allowed {
            return Ok(());
        }
        self.record(
            self.db,
            Event {
                action: attempt.action,
                actor: Some(self.actor),
                target: attempt.target,
                outcome: Outcome::Denied,
                details: attempt.details,
            },
        )
        .await?;
        Err(AuthzError::Denied(Denied))
    }

    /// Writes `event` to the actor's organization's log, from this command's source at its
    /// time; `db` is the transaction making the change the event records.
    pub async fn record<C>(&self, db: &C, event: Event<'_>) -> Result<(), DbErr>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        audit::record(db, self.actor.org_id, event, self.source, self.now).await
    }

    /// [`Command::record`], telling of the event those `ahead` names, read before `db`
    /// began ([`audit::Audience`]).
    pub async fn record_to<C>(
        &self,
        db: &C,
        event: Event<'_>,
        ahead: Option<&audit::Audience>,
    ) -> Result<(), DbErr>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        audit::record_to(db, self.actor.org_id, event, self.source, self.now, ahead).await
    }

    /// The event of a change the actor made to `target` (themself when `None` is not
    /// meant): outcome success.
    pub fn event<'e>(
        &'e self,
        action: AuditAction,
        target: Option<&'e Member>,
        details: serde_json::Value,
    ) -> Event<'e> {
        Event {
            action,
            actor: Some(self.actor),
            target,
            outcome: Outcome::Success,
            details,
        }
    }
}
