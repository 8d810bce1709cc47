//! Configuration from environment variables, checked once at start-up so that a bad value
//! stops the server with a message naming the variable, never a panic.

use std::{net::SocketAddr, ops::RangeInclusive, path::PathBuf};

use domain::{db::Backend, secrets::SecretKey};
use tracing_subscriber::EnvFilter;

/// Where the data lives when `DATABASE_URL` is not set: an SQLite file, created on first run.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/lifeline.db";
/// Where the server listens when `LIFELINE_LISTEN_ADDR` is not set.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
/// Where the server keeps its secret key when `LIFELINE_SECRET_KEY` is not set.
pub const DEFAULT_SECRET_KEY_FILE: &str = "data/secret.key";
/// How long after a sign-in sensitive changes go through without the password again, when
/// `LIFELINE_REAUTHENTICATE_AFTER_SECONDS` is not set (ten minutes).
pub const DEFAULT_REAUTHENTICATE_AFTER_SECONDS: u32 = 600;
/// `LIFELINE_SESSION_IDLE_SECONDS` when not set: 30 minutes (OWASP ASVS level 2).
pub const DEFAULT_SESSION_IDLE_SECONDS: u32 = 30 * 60;
/// `LIFELINE_SESSION_LIFETIME_SECONDS` when not set: 12 hours (OWASP ASVS level 2).
pub const DEFAULT_SESSION_LIFETIME_SECONDS: u32 = 12 * 60 * 60;
/// `LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE` when not set.
pub const DEFAULT_SIGN_IN_ATTEMPTS_PER_MINUTE: u32 = 30;
/// What is logged when `LIFELINE_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://…` (default) or `postgres://…`.
    pub database_url: String,
    /// The engine `database_url` names.
    pub backend: Backend,
    /// `LIFELINE_LISTEN_ADDR`: the socket address to listen on; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// `LIFELINE_LOG`: a tracing filter such as `info` or `lifeline=debug,tower_http=debug`.
    pub log_filter: String,
    /// `LIFELINE_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `LIFELINE_SECURE_COOKIES`: mark cookies `Secure` (set it when served over HTTPS).
    pub secure_cookies: bool,
    /// `LIFELINE_SECRET_KEY` or `LIFELINE_SECRET_KEY_FILE`: the key that seals stored secrets.
    pub secret_key: SecretKeySource,
    /// `LIFELINE_REAUTHENTICATE_AFTER_SECONDS`: after this long since the last password,
    /// generating backup codes asks for it again.
    pub reauthenticate_after_seconds: u32,
    /// `LIFELINE_SESSION_IDLE_SECONDS`: a session ends after this long without a request.
    pub session_idle_seconds: u32,
    /// `LIFELINE_SESSION_LIFETIME_SECONDS`: a session ends this long after sign-in, however
    /// active.
    pub session_lifetime_seconds: u32,
    /// `LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE`: attempts at a password or code each network
    /// address gets per minute (per instance), before `429 Too Many Requests`.
    pub sign_in_attempts_per_minute: u32,
}

/// Where the key that seals stored secrets comes from.
#[derive(Debug, Clone)]
pub enum SecretKeySource {
    /// Given in `LIFELINE_SECRET_KEY` (what several instances sharing a database need).
    Inline(SecretKey),
    /// Read from this file, which is created with a new random key when missing.
    File(PathBuf),
}

impl SecretKeySource {
    /// The variable that chose this key, for messages about it.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Inline(_) => "LIFELINE_SECRET_KEY",
            Self::File(_) => "LIFELINE_SECRET_KEY_FILE",
        }
    }
}

impl PartialEq for SecretKeySource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Inline(a), Self::Inline(b)) => a.to_hex() == b.to_hex(),
            (Self::File(a), Self::File(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SecretKeySource {}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A variable whose value cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the configuration through `lookup` (the process environment in production, a
    /// table in tests). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |variable: &str| lookup(variable).filter(|value| !value.trim().is_empty());

        let database_url = read("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let backend = Backend::from_url(&database_url).map_err(|e| ConfigError {
            variable: "DATABASE_URL",
            problem: e.to_string(),
        })?;

        let listen_addr = read("LIFELINE_LISTEN_ADDR")
            .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.into())
            .trim()
            .parse()
            .map_err(|_| ConfigError {
                variable: "LIFELINE_LISTEN_ADDR",
                problem: "is not a socket address such as 127.0.0.1:3000 or [::]:8080".into(),
            })?;

        let log_filter = read("LIFELINE_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.into());
        EnvFilter::try_new(&log_filter).map_err(|e| ConfigError {
            variable: "LIFELINE_LOG",
            problem: format!("is not a valid log filter ({e}); try `info` or `lifeline=debug`"),
        })?;

        let log_format = match read("LIFELINE_LOG_FORMAT").as_deref().map(str::trim) {
            None => LogFormat::Text,
            Some(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(_) => {
                return Err(ConfigError {
                    variable: "LIFELINE_LOG_FORMAT",
                    problem: "must be `text` or `json`".into(),
                });
            }
        };

        let secure_cookies = match read("LIFELINE_SECURE_COOKIES") {
            None => false,
            Some(value) => parse_flag(&value).ok_or_else(|| ConfigError {
                variable: "LIFELINE_SECURE_COOKIES",
                problem: "must be `true` or `false`".into(),
            })?,
        };

        let secret_key = match read("LIFELINE_SECRET_KEY") {
            Some(hex) => {
                SecretKeySource::Inline(SecretKey::from_hex(&hex).map_err(|e| ConfigError {
                    variable: "LIFELINE_SECRET_KEY",
                    problem: e.to_string(),
                })?)
            }
            None => SecretKeySource::File(
                read("LIFELINE_SECRET_KEY_FILE")
                    .unwrap_or_else(|| DEFAULT_SECRET_KEY_FILE.into())
                    .into(),
            ),
        };

        let number =
            |variable: &'static str, default: u32, range: RangeInclusive<u32>, unit| match read(
                variable,
            ) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| ConfigError {
                        variable,
                        problem: format!(
                            "must be a number of {unit} from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    }),
            };
        let reauthenticate_after_seconds = number(
            "LIFELINE_REAUTHENTICATE_AFTER_SECONDS",
            DEFAULT_REAUTHENTICATE_AFTER_SECONDS,
            0..=24 * 60 * 60,
            "seconds",
        )?;
        let session_idle_seconds = number(
            "LIFELINE_SESSION_IDLE_SECONDS",
            DEFAULT_SESSION_IDLE_SECONDS,
            1..=24 * 60 * 60,
            "seconds",
        )?;
        let session_lifetime_seconds = number(
            "LIFELINE_SESSION_LIFETIME_SECONDS",
            DEFAULT_SESSION_LIFETIME_SECONDS,
            1..=30 * 24 * 60 * 60,
            "seconds",
        )?;
        let sign_in_attempts_per_minute = number(
            "LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE",
            DEFAULT_SIGN_IN_ATTEMPTS_PER_MINUTE,
            1..=1_000_000,
            "attempts",
        )?;

        Ok(Self {
            database_url,
            backend,
            listen_addr,
            log_filter,
            log_format,
            secure_cookies,
            secret_key,
            reauthenticate_after_seconds,
            session_idle_seconds,
            session_lifetime_seconds,
            sign_in_attempts_per_minute,
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|variable| std::env::var(variable).ok())
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|variable| {
            pairs
                .iter()
                .find(|(name, _)| *name == variable)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.listen_addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(!config.secure_cookies);
        assert_eq!(
            config.secret_key,
            SecretKeySource::File(DEFAULT_SECRET_KEY_FILE.into())
        );
        assert_eq!(config.reauthenticate_after_seconds, 600);
        assert_eq!(config.session_idle_seconds, 1800);
        assert_eq!(config.session_lifetime_seconds, 43_200);
        assert_eq!(config.sign_in_attempts_per_minute, 30);
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
            ("LIFELINE_LISTEN_ADDR", "[::1]:8080"),
            ("LIFELINE_LOG", "lifeline=debug,tower_http=debug"),
            ("LIFELINE_LOG_FORMAT", "JSON"),
            ("LIFELINE_SECURE_COOKIES", "true"),
            ("LIFELINE_SECRET_KEY", &"ab".repeat(32)),
            ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "300"),
        ])
        .unwrap();
        assert_eq!(config.reauthenticate_after_seconds, 300);
        assert_eq!(config.backend, Backend::Postgres);
        assert_eq!(config.listen_addr, "[::1]:8080".parse().unwrap());
        assert_eq!(config.log_filter, "lifeline=debug,tower_http=debug");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(config.secure_cookies);
        assert_eq!(
            config.secret_key,
            SecretKeySource::Inline(SecretKey::from_hex(&"ab".repeat(32)).unwrap())
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[("DATABASE_URL", "  "), ("LIFELINE_LOG_FORMAT", "")]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("DATABASE_URL", "mysql://root@localhost/lifeline"),
            ("DATABASE_URL", "lifeline.db"),
            ("LIFELINE_LISTEN_ADDR", "localhost"),
            ("LIFELINE_LISTEN_ADDR", "127.0.0.1:99999"),
            ("LIFELINE_LOG", "lifeline=loud"),
            ("LIFELINE_LOG_FORMAT", "xml"),
            ("LIFELINE_SECURE_COOKIES", "maybe"),
            ("LIFELINE_SECRET_KEY", "too short"),
            ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "-1"),
            ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "ten"),
            ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "86401"),
            ("LIFELINE_SESSION_IDLE_SECONDS", "0"),
            ("LIFELINE_SESSION_LIFETIME_SECONDS", "2592001"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "many"),
        ] {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
            assert!(error.to_string().starts_with(variable), "{error}");
        }
    }
}
