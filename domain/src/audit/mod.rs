//! The audit log: every security event of an organization, written in the same transaction
//! as the change it records (or, for a refusal, on its own), so that no change is without its
//! event and no event without its change.
//!
//! - [`actions`]: what an event can record, in words, and the typed details read back.
//! - [`keys`]: the server's secret key as the log uses it, installed once per process.
//! - [`chain`]: writing an event as the next keyed link of its organization's chain,
//!   verifying the chain, and re-linking the plain chains from before the key.
//! - [`daily`]: backup-code use counted per day as the events are written, for the chart.
//! - [`checkpoint`]: signed checkpoints of a chain's head, to hold outside the database.
//! - [`notices`]: who hears of an event (the member, the administrators), written to the
//!   notification outbox in the event's transaction.
//! - [`reading`]: filters, pages, exports and a member's own history, for people.
//!
//! This module is on the first floor: it imports the ground floor ([`crate::identity`],
//! [`crate::input`]) and, for the reading side's permission checks, [`crate::authz`].

pub mod actions;
pub mod chain;
pub mod checkpoint;
pub mod daily;
pub mod keys;
pub mod notices;
pub mod reading;

use serde::{Deserialize, Serialize};

pub(crate) use self::chain::start_chain;
pub use self::{
    actions::{AuditAction, Change, ExceptionDetails, GroupDetails, PolicySavedDetails, describe},
    chain::{
        ChainBreak, ChainMonitor, ChainReport, ChainState, GENESIS, PlainChain,
        chains_await_keying, record, record_to, upgrade_plain_chains, verify,
    },
    checkpoint::{CheckpointError, SignedCheckpoint},
    notices::Audience,
    reading::{
        AuditReadError, CSV_HEADER, ExportError, Filter, Recorded, chain_seen_by, csv_line,
        export_chunk, export_chunk_seen_by, for_each_event, latest, own_history, page,
        page_seen_by,
    },
};
use crate::identity::Member;

/// Where a request came from, as the audit log records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The browser's device cookie, when it holds a valid one: which account's sign-in it
    /// completed before ([`crate::lockout::Attempter`]). Not recorded in the log.
    #[serde(skip)]
    pub device: Option<crate::device::Device>,
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
    pub action: AuditAction,
    pub actor: Option<&'a Member>,
    /// The member acted on; for a member acting on their own account, the same as `actor`.
    pub target: Option<&'a Member>,
    pub outcome: Outcome,
    /// A JSON object with what else an auditor needs; never a secret.
    pub details: serde_json::Value,
}
