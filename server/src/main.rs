//! `lifeline`: the Lifeline server and its command-line tools.
//!
//! With no sub-command it runs the web server: it reads its configuration from the
//! environment, opens the database, applies pending migrations and serves until SIGTERM or
//! Ctrl-C, finishing the requests in flight.

mod config;
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
                  LIFELINE_SECURE_COOKIES. See the README."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web server (what `lifeline` does with no sub-command).
    Serve,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    init_logging(&config);

    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => web::serve(config).await,
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

fn init_logging(config: &Config) {
    // The filter was validated in `Config`; falling back keeps start-up panic-free anyway.
    let filter = EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(config::DEFAULT_LOG_FILTER));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => logger.init(),
        LogFormat::Json => logger.json().init(),
    }
}
