//! `lifeline`: the Lifeline server and its command-line tools.
//!
//! With no sub-command it runs the web server: it reads its configuration from the
//! environment, opens the database, applies pending migrations and serves until SIGTERM or
//! Ctrl-C, finishing the requests in flight.

mod cli;
mod client_ip;
mod config;
mod expiry;
mod keys;
mod security;
mod sessions;
mod throttle;
mod web;

use std::{io::IsTerminal, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "lifeline",
    version,
    about = "Lifeline: organization policy and admin console for MFA backup verification codes",
    after_help = "Configuration comes from environment variables: DATABASE_URL, \
                  LIFELINE_LISTEN_ADDR, LIFELINE_LOG, LIFELINE_LOG_FORMAT, \
                  LIFELINE_SECURE_COOKIES, LIFELINE_PUBLIC_ORIGIN. See the README."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web server (what `lifeline` does with no sub-command).
    Serve,
    /// Create an organization and its owner; the owner's password is read from stdin.
    CreateOrg {
        /// The organization's name, e.g. "Acme"; its slug (`--org acme`) is derived from it.
        #[arg(long)]
        name: String,
        /// The owner's email address.
        #[arg(long)]
        admin_email: String,
    },
    /// Add a member to an organization; the password is read from stdin.
    CreateUser {
        /// The organization's slug, as `create-org` printed it.
        #[arg(long)]
        org: String,
        /// The member's email address.
        #[arg(long)]
        email: String,
        /// member, admin or owner.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// End every lock of a member's sign-in (password, authenticator, backup codes), e.g.
    /// for a sole owner locked out; recorded in the audit log.
    Unlock {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The member's email address.
        #[arg(long)]
        email: String,
    },
    /// Check or export an organization's tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Export an organization's backup-code policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Write the policy in force, its exceptions and the Casbin rules it produces, as JSON.
    Export {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The policy as it stood at this moment instead: a day (YYYY-MM-DD, UTC, as at the
        /// end of that day) or an RFC 3339 time.
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and name the first altered, deleted or reordered event; exits
    /// non-zero when the chain is broken.
    Verify {
        /// The organization's slug.
        #[arg(long)]
        org: String,
    },
    /// Write the events to standard output, oldest first, streamed in constant memory.
    Export {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// `jsonl` (one JSON object per line) or `csv`.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only events on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // The command-line tools speak for themselves; their logs only show trouble unless
    // LIFELINE_LOG asks for more.
    let quiet = !matches!(command, Command::Serve) && std::env::var_os("LIFELINE_LOG").is_none();
    init_logging(&config, quiet);

    let outcome = match command {
        Command::Serve => web::serve(config).await.map_err(|e| e.to_string()),
        Command::CreateOrg { name, admin_email } => {
            cli::create_org(&config, &name, &admin_email).await
        }
        Command::CreateUser { org, email, role } => {
            cli::create_user(&config, &org, &email, &role).await
        }
        Command::Unlock { org, email } => cli::unlock(&config, &org, &email).await,
        Command::Audit {
            command: AuditCommand::Verify { org },
        } => cli::audit_verify(&config, &org).await,
        Command::Audit {
            command: AuditCommand::Export { org, format, since },
        } => cli::audit_export(&config, &org, &format, since.as_deref()).await,
        Command::Policy {
            command: PolicyCommand::Export { org, at },
        } => cli::policy_export(&config, &org, at.as_deref()).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// One line on stderr saying what stopped the program, and a failing exit code.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("lifeline: {error}");
    ExitCode::FAILURE
}

fn init_logging(config: &Config, quiet: bool) {
    let wanted = if quiet { "warn" } else { &config.log_filter };
    // The filter was validated in `Config`; falling back keeps start-up panic-free anyway.
    let filter =
        EnvFilter::try_new(wanted).unwrap_or_else(|_| EnvFilter::new(config::DEFAULT_LOG_FILTER));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => logger.init(),
        LogFormat::Json => logger.json().init(),
    }
}
