//! Lifeline's business rules, kept free of HTTP and UI types so that the compiler holds the
//! line: `app` calls into this crate under its `ssr` feature, `server` calls it directly, and
//! the wasm `frontend` never sees it.
//!
//! The modules stand on floors; each imports only from the floors below it (a test in
//! `tests/it/layers.rs` fails on any import circle):
//!
//! 0. Ground: [`input`] (field errors, the single-line rule), [`identity`] (organization,
//!    member, role, email), the tables, and the infrastructure ([`db`], [`secrets`],
//!    [`hashing`], [`device`] cookies, [`spreadsheet`] exports, [`notifications`]: the
//!    security-mail outbox, its words and its signed links).
//! 1. The gate and the record: [`authz`] (Casbin, and the rules policies compile to) and
//!    [`audit`] (the hash-chained log, which writes each event's notices to the outbox; its
//!    reading side asks the gate).
//! 2. [`command`] (who does what, from where, when; refusals on the record), [`lockout`]
//!    (per-account factor locks), [`lookup_secret`] (12-digit codes and their digests),
//!    [`notification_addresses`] (a member's second, verified address for notices).
//! 3. [`backup_codes`] (sets, redemption, and how a set stands under a policy),
//!    [`api_tokens`] (personal access tokens for the JSON API, and the record of their calls)
//!    and [`groups`] (groups of members, their exceptions, the help desk's scope).
//! 4. [`org_policy`] (the organization's settings and exceptions, compiled to rules).
//! 5. [`accounts`] (organizations, members, passwords under the lockout) and
//!    [`recovery_codes`] (codes administrators issue, under the policy).
//! 6. [`mfa`] (the authenticator) and [`incidents`] ("This wasn't me" from a notice).
//! 7. What people do across all of them: [`sign_in`] (one path for every factor) and
//!    [`members`] (the console and the compliance report).
//! 8. [`backup`]: an organization's data backed up in one snapshot, and restored.
//!
//! Functions take a [`command::Command`] (database, gate, actor, source, time) or, for reads,
//! a connection, the viewer and the time, and return typed results.

pub mod accounts;
pub mod api_tokens;
pub mod audit;
pub mod authz;
pub mod backup;
pub mod backup_codes;
pub mod command;
pub mod db;
pub mod device;
mod entity;
pub mod groups;
pub mod hashing;
pub mod identity;
pub mod incidents;
pub mod input;
pub mod lockout;
pub mod lookup_secret;
pub mod members;
pub mod mfa;
pub mod notification_addresses;
pub mod notifications;
pub mod org_policy;
pub mod recovery_codes;
pub mod secrets;
pub mod sign_in;
pub mod spreadsheet;

#[cfg(feature = "testing")]
pub mod testing;
