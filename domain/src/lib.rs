//! Lifeline's business rules, kept free of HTTP and UI types so that the compiler holds the
//! line: `app` calls into this crate under its `ssr` feature, `server` calls it directly, and
//! the wasm `frontend` never sees it.
//!
//! Functions here take a database connection (or transaction), the actor, the input and the
//! current time, and return typed results; they know nothing of axum or Leptos.

pub mod accounts;
pub mod audit;
pub mod authz;
pub mod backup_codes;
pub mod db;
mod entity;
pub mod hashing;
pub mod lockout;
pub mod members;
pub mod mfa;
pub mod org_policy;
pub mod recovery_codes;
pub mod secrets;

#[cfg(feature = "testing")]
pub mod testing;
