//! The one test-support harness every integration test uses: the `lifeline` process, a
//! browser-like HTTP client with the sign-in steps, the command line, reading pages, the
//! organizations and members tests start from, the workspace's sources read as text, and a
//! receiver of webhooks. Test modules import from here, never from one another.

pub mod cli;
pub mod client;
pub mod organizations;
pub mod pages;
pub mod process;
pub mod smtp;
pub mod sources;
pub mod webhook_receiver;

/// The password of every account the tests create.
pub const PASSWORD: &str = "correct horse battery staple";
