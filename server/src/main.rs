//! `lifeline`: the Lifeline server and its command-line tools.
//!
//! With no sub-command it runs the web server: it reads its configuration from the
//! environment, opens the database, applies pending migrations and serves until SIGTERM or
//! Ctrl-C, finishing the requests in flight.

mod api;
mod backup_schedule;
mod backups;
mod checkpoints;
mod cli;
mod client_ip;
mod config;
mod expiry;
mod form_errors;
mod keys;
mod mail;
mod private_files;
mod restriction;
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
                  LIFELINE_SECURE_COOKIES, LIFELINE_PUBLIC_ORIGIN, LIFELINE_SECRET_KEY or \
                  LIFELINE_SECRET_KEY_FILE (default data/secret.key, mode 0600), \
                  LIFELINE_AUDIT_CHECKPOINT_SECONDS; security mail: LIFELINE_SMTP_URL \
                  (smtps://user:password@host, or smtp://…:587?tls=required for STARTTLS; \
                  unset: .eml files under data/mail/), LIFELINE_MAIL_FROM (default \
                  \"Lifeline <lifeline@localhost>\"), LIFELINE_MAIL_ATTEMPTS (default 8), \
                  LIFELINE_MAIL_RETRY_SECONDS (default 30, doubled after each failure); \
                  scheduled backups: LIFELINE_BACKUP_SCHEDULE (an interval such as 24h or \
                  90m; unset: off), LIFELINE_BACKUP_SCHEDULE_DIR (default \
                  data/backups/scheduled), LIFELINE_BACKUP_SCHEDULE_KEEP (archives kept per \
                  organization, default 7), LIFELINE_BACKUP_PASSPHRASE_FILE (required with a \
                  schedule: its first line is the passphrase; mode 0600). \
                  The command-line tools need the same \
                  secret key as the server. See the README."
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
        /// member, auditor, helpdesk, admin or owner.
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
    /// Add a version to the secret key file and re-seal every stored TOTP secret under it;
    /// new audit events are linked and checkpoints signed under it. Servers reading the same
    /// file take it up without a restart; old versions stay in the file.
    RotateKey,
    /// Check, checkpoint or export an organization's tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Export an organization's backup-code policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Take an encrypted backup of an organization's data, or restore one.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Write a backup of everything the organization owns, read at one instant, encrypted to
    /// a passphrase (age). The passphrase is read from standard input (prompted twice
    /// without echo on a terminal) and must be hard to guess.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The archive to write (e.g. acme.age); an existing file is not overwritten.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Restore an archive from `backup create` (or the console): into this database when it
    /// holds no organization yet, ids kept; or, with --as-new-org, as a new organization
    /// beside the ones it holds (this installation or another), under new ids. The
    /// passphrase is read from standard input (prompted without echo on a terminal). A
    /// damaged or changed archive, a taken slug, and accounts whose email addresses accounts
    /// here have are refused, and nothing is written.
    Restore {
        /// The archive to read.
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
        /// Restore as a new organization beside the ones this database holds: every row under
        /// a new id, the audit log linked anew. Its members' email addresses must be free
        /// here (they are unique across an installation).
        #[arg(long)]
        as_new_org: bool,
        /// With --as-new-org: the new organization's slug (lowercase letters, digits and
        /// dashes), when the archive's is taken here.
        #[arg(long, value_name = "SLUG", requires = "as_new_org")]
        as_slug: Option<String>,
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
    /// Walk the chain under the server's key and name the first altered, deleted, reordered
    /// or re-linked event; exits non-zero when the chain is broken.
    Verify {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// A checkpoint file from `lifeline audit checkpoint`, kept outside the database:
        /// also check that the event it signed is still there, unchanged (events cut off
        /// the end, or a rewritten chain, show even with the chain's head moved to match).
        #[arg(long, value_name = "CHECKPOINT_JSON")]
        against: Option<std::path::PathBuf>,
    },
    /// Verify the chain and sign a checkpoint of its head (Ed25519, under a key derived from
    /// the server's secret key); writes it as JSON, to keep where the database's writers
    /// cannot reach it.
    Checkpoint {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// Write the JSON to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
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

/// The stack of each runtime thread. Rendering a large page (the policy page with its
/// preview and history) nests deeply in a debug build, past the 2 MiB a thread gets by
/// default, and a stack overflow aborts the whole server: 8 MiB leaves room to spare.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// How long the process waits, once the command or the server is done, for work still on the
/// runtime's threads (a password hash under way) before it exits anyway.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(run());
            // Not an unbounded wait: sqlx 0.8.6's pool housekeeping task can spin without
            // yielding once its idle count wraps below zero, and dropping the runtime would
            // then wait for that thread forever (seen: `lifeline create-org` at 100 % CPU
            // after it had finished, holding up the browser tests).
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
            code
        }
        Err(error) => fail(&error),
    }
}

/// What `main` runs on the runtime: the command, or the server.
async fn run() -> ExitCode {
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
        Command::RotateKey => cli::rotate_key(&config).await,
        Command::Audit {
            command: AuditCommand::Verify { org, against },
        } => cli::audit_verify(&config, &org, against.as_deref()).await,
        Command::Audit {
            command: AuditCommand::Checkpoint { org, out },
        } => cli::audit_checkpoint(&config, &org, out.as_deref()).await,
        Command::Audit {
            command: AuditCommand::Export { org, format, since },
        } => cli::audit_export(&config, &org, &format, since.as_deref()).await,
        Command::Policy {
            command: PolicyCommand::Export { org, at },
        } => cli::policy_export(&config, &org, at.as_deref()).await,
        Command::Backup {
            command: BackupCommand::Create { org, out },
        } => cli::backup_create(&config, &org, &out).await,
        Command::Backup {
            command:
                BackupCommand::Restore {
                    file,
                    as_new_org,
                    as_slug,
                },
        } => cli::backup_restore(&config, &file, as_new_org, as_slug.as_deref()).await,
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
