//! What the `lifeline` binary shares with the server's integration tests: the endpoints that
//! check a secret, which `tests/it` holds against the server functions that run argon2.
//!
//! Everything else of the server lives in the binary (`main.rs`); this library has no
//! dependencies, so it costs the build next to nothing.

pub mod guarded;
