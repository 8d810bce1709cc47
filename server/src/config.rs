//! Configuration from environment variables, checked once at start-up so that a bad value
//! stops the server with a message naming the variable, never a panic.

use std::{
    net::{IpAddr, SocketAddr},
    ops::RangeInclusive,
    path::PathBuf,
    time::Duration,
};

use domain::{db::Backend, secrets::SecretKey};
use ipnet::IpNet;
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
/// `LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE` when not set: twice the wrong attempts
/// the default policy allows before it locks a factor (5), so that a person who mistypes
/// meets the lock and its message before the throttle.
pub const DEFAULT_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE: u32 = 10;
/// `LIFELINE_SIGN_IN_STARTS_PER_MINUTE` when not set: sign-ins begun (the email step, which
/// makes a session) per network address per minute.
pub const DEFAULT_SIGN_IN_STARTS_PER_MINUTE: u32 = 30;
/// `LIFELINE_API_REQUESTS_PER_MINUTE` when not set: calls one API token may make per minute
/// per instance (a SIEM polling every few seconds and a directory sync fit well within it).
pub const DEFAULT_API_REQUESTS_PER_MINUTE: u32 = 120;
/// `LIFELINE_IPV6_THROTTLE_PREFIX` when not set: one bucket per /64, the smallest network a
/// site is usually given, so one client cannot rotate through its addresses.
pub const DEFAULT_IPV6_THROTTLE_PREFIX: u32 = 64;
/// `LIFELINE_AUDIT_CHECKPOINT_SECONDS` when not set: every 15 minutes, each audit chain whose
/// head moved gets a signed checkpoint.
pub const DEFAULT_AUDIT_CHECKPOINT_SECONDS: u32 = 15 * 60;
/// `LIFELINE_MAIL_FROM` when not set.
pub const DEFAULT_MAIL_FROM: &str = "Lifeline <lifeline@localhost>";
/// `LIFELINE_MAIL_ATTEMPTS` when not set: attempts at sending one notification, in all.
pub const DEFAULT_MAIL_ATTEMPTS: u32 = 8;
/// `LIFELINE_MAIL_RETRY_SECONDS` when not set: the wait after a notification's first failed
/// attempt; each later wait is twice the one before (30 s, 1 min, 2 min, … about an hour).
pub const DEFAULT_MAIL_RETRY_SECONDS: u32 = 30;
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
    /// `LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP`: webhooks may send to `http://` on this
    /// machine (`localhost`, `127.0.0.0/8`, `[::1]`), for a receiver beside the server;
    /// otherwise only to `https://` addresses.
    pub webhooks_allow_loopback_http: bool,
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
    /// `LIFELINE_HASH_CONCURRENCY`: argon2 evaluations run at once (each takes 19 MiB and most
    /// of a core); `None`: one per core.
    pub hash_concurrency: Option<u32>,
    /// `LIFELINE_HASH_QUEUE`: requests that may wait for one of those; past it, `503 Service
    /// Unavailable` with `Retry-After`. `None`: 8 per evaluation run at once.
    pub hash_queue: Option<u32>,
    /// `LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE`: attempts at a password or code each network
    /// address gets per minute (per instance), before `429 Too Many Requests`.
    pub sign_in_attempts_per_minute: u32,
    /// `LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE`: attempts at a password or code
    /// one account gets per minute (per instance), from however many addresses.
    pub sign_in_attempts_per_account_per_minute: u32,
    /// `LIFELINE_SIGN_IN_STARTS_PER_MINUTE`: sign-ins each network address may begin per
    /// minute (per instance); each makes a session.
    pub sign_in_starts_per_minute: u32,
    /// `LIFELINE_API_REQUESTS_PER_MINUTE`: calls each personal access token may make per
    /// minute (per instance), before `429 Too Many Requests` with `Retry-After`.
    pub api_requests_per_minute: u32,
    /// `LIFELINE_IPV6_THROTTLE_PREFIX`: IPv6 clients share one per-address bucket per network
    /// of this prefix length.
    pub ipv6_throttle_prefix: u8,
    /// `LIFELINE_TRUSTED_PROXIES`: the proxies whose `Forwarded` and `X-Forwarded-For`
    /// headers name the client; empty (the default) trusts none.
    pub trusted_proxies: Vec<IpNet>,
    /// `LIFELINE_AUDIT_CHECKPOINT_SECONDS`: how often the server signs a checkpoint of each
    /// audit chain whose head moved since its last one; 0: never (only `lifeline audit
    /// checkpoint` signs them).
    pub audit_checkpoint_seconds: u32,
    /// `LIFELINE_SMTP_URL`: the SMTP server security mail goes to; `None`: `.eml` files
    /// under `data/mail/`.
    pub smtp_url: Option<SmtpUrl>,
    /// `LIFELINE_MAIL_FROM`: the sender of security mail.
    pub mail_from: String,
    /// `LIFELINE_MAIL_ATTEMPTS`: attempts at sending one notification before it is marked
    /// failed.
    pub mail_attempts: u32,
    /// `LIFELINE_MAIL_RETRY_SECONDS`: the wait after a first failed attempt, doubled after
    /// each later one.
    pub mail_retry_seconds: u32,
    /// `LIFELINE_PUBLIC_URL`: the address people reach Lifeline at, which links in security
    /// mail start with (`https://lifeline.example.com`); `None`: `http://` and the address
    /// the server listens on.
    pub public_url: Option<String>,
    /// `LIFELINE_BACKUP_DIR`: the folder backup archives requested in the console are kept
    /// in until they expire (with several instances, one folder they all reach).
    pub backup_dir: std::path::PathBuf,
    /// `LIFELINE_BACKUPS_PER_DAY`: backups one organization may request per 24 hours.
    pub backups_per_day: u32,
    /// `LIFELINE_BACKUP_SCHEDULE` and the variables beside it: an archive of every
    /// organization written to a folder at an interval; `None` (unset): off.
    pub backup_schedule: Option<BackupSchedule>,
}

/// Scheduled backups ([`crate::backup_schedule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    /// `LIFELINE_BACKUP_SCHEDULE`: the time between two runs, within
    /// [`BACKUP_SCHEDULE_RANGE`].
    pub every: Duration,
    /// `LIFELINE_BACKUP_SCHEDULE_DIR`: the folder, with one folder per organization in it.
    pub folder: PathBuf,
    /// `LIFELINE_BACKUP_SCHEDULE_KEEP`: the newest archives kept of each organization.
    pub keep: u32,
    /// `LIFELINE_BACKUP_PASSPHRASE_FILE`: the file whose first line is the passphrase the
    /// archives are encrypted to (checked at start-up: private, and hard to guess).
    pub passphrase_file: PathBuf,
}

/// `LIFELINE_BACKUP_DIR` when not set.
pub const DEFAULT_BACKUP_DIR: &str = "data/backups";
/// `LIFELINE_BACKUP_SCHEDULE_DIR` when not set.
pub const DEFAULT_BACKUP_SCHEDULE_DIR: &str = "data/backups/scheduled";
/// `LIFELINE_BACKUP_SCHEDULE_KEEP` when not set: a week of daily archives.
pub const DEFAULT_BACKUP_SCHEDULE_KEEP: u32 = 7;
/// The intervals `LIFELINE_BACKUP_SCHEDULE` may name: one second (short intervals are for
/// trying it out: each run costs about a second of CPU and a `backup.created` audit event
/// per organization) to 366 days (`1y` reads as 365.25 days).
pub const BACKUP_SCHEDULE_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(366 * 24 * 60 * 60);

/// An SMTP URL as lettre reads it (`smtps://user:pass@host`, `smtp://host:587?tls=required`).
/// Its `Debug` hides the URL, which may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpUrl(..)")
    }
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
    /// table in tests). Empty values count as unset. With `LIFELINE_BACKUP_SCHEDULE` set, it
    /// also reads the passphrase file, to refuse one that is missing, shared or weak.
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

        let webhooks_allow_loopback_http = match read("LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP") {
            None => false,
            Some(value) => parse_flag(&value).ok_or_else(|| ConfigError {
                variable: "LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP",
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
        let optional = |variable: &'static str, range: RangeInclusive<u32>, unit: &'static str| {
            read(variable)
                .map(|_| number(variable, 0, range, unit))
                .transpose()
        };
        let hash_concurrency = optional("LIFELINE_HASH_CONCURRENCY", 1..=1024, "evaluations")?;
        let hash_queue = optional("LIFELINE_HASH_QUEUE", 0..=1_000_000, "requests")?;
        let sign_in_attempts_per_minute = number(
            "LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE",
            DEFAULT_SIGN_IN_ATTEMPTS_PER_MINUTE,
            1..=1_000_000,
            "attempts",
        )?;
        let sign_in_attempts_per_account_per_minute = number(
            "LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE",
            DEFAULT_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE,
            1..=1_000_000,
            "attempts",
        )?;
        let sign_in_starts_per_minute = number(
            "LIFELINE_SIGN_IN_STARTS_PER_MINUTE",
            DEFAULT_SIGN_IN_STARTS_PER_MINUTE,
            1..=1_000_000,
            "sign-ins",
        )?;
        let api_requests_per_minute = number(
            "LIFELINE_API_REQUESTS_PER_MINUTE",
            DEFAULT_API_REQUESTS_PER_MINUTE,
            1..=1_000_000,
            "calls",
        )?;
        let ipv6_throttle_prefix = number(
            "LIFELINE_IPV6_THROTTLE_PREFIX",
            DEFAULT_IPV6_THROTTLE_PREFIX,
            1..=128,
            "bits",
        )?;
        let ipv6_throttle_prefix = u8::try_from(ipv6_throttle_prefix).unwrap_or(128);
        let audit_checkpoint_seconds = number(
            "LIFELINE_AUDIT_CHECKPOINT_SECONDS",
            DEFAULT_AUDIT_CHECKPOINT_SECONDS,
            0..=7 * 24 * 60 * 60,
            "seconds",
        )?;

        let trusted_proxies = match read("LIFELINE_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => parse_networks(&list).map_err(|entry| ConfigError {
                variable: "LIFELINE_TRUSTED_PROXIES",
                problem: format!(
                    "has `{entry}`, which is not an address or network such as 10.0.0.0/8 or \
                     ::1/128 (separate them with commas)"
                ),
            })?,
        };

        let smtp_url = match read("LIFELINE_SMTP_URL") {
            None => None,
            Some(url) => {
                let url = url.trim().to_owned();
                let scheme_ok = ["smtp://", "smtps://"]
                    .iter()
                    .any(|scheme| url.to_ascii_lowercase().starts_with(scheme));
                // Checked the way the transport will read it; the error never repeats the URL.
                let readable = scheme_ok
                    && lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url).is_ok();
                if !readable {
                    return Err(ConfigError {
                        variable: "LIFELINE_SMTP_URL",
                        problem:
                            "is not an SMTP URL such as smtps://user:password@mail.example.com \
                                  (TLS) or smtp://user:password@mail.example.com:587?tls=required \
                                  (STARTTLS)"
                                .into(),
                    });
                }
                Some(SmtpUrl(url))
            }
        };
        let mail_from = read("LIFELINE_MAIL_FROM")
            .unwrap_or_else(|| DEFAULT_MAIL_FROM.into())
            .trim()
            .to_owned();
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError {
                variable: "LIFELINE_MAIL_FROM",
                problem: "is not a mailbox such as `Lifeline <lifeline@example.com>` or \
                          lifeline@example.com"
                    .into(),
            });
        }
        let mail_attempts = number(
            "LIFELINE_MAIL_ATTEMPTS",
            DEFAULT_MAIL_ATTEMPTS,
            1..=100,
            "attempts",
        )?;
        let mail_retry_seconds = number(
            "LIFELINE_MAIL_RETRY_SECONDS",
            DEFAULT_MAIL_RETRY_SECONDS,
            1..=24 * 60 * 60,
            "seconds",
        )?;

        let public_url = match read("LIFELINE_PUBLIC_URL") {
            None => None,
            Some(url) => Some(public_url(url.trim()).ok_or_else(|| {
                ConfigError {
                    variable: "LIFELINE_PUBLIC_URL",
                    problem: "is not an address such as https://lifeline.example.com (http or \
                          https, a host, and no query)"
                        .into(),
                }
            })?),
        };

        let backup_dir = read("LIFELINE_BACKUP_DIR")
            .map(|dir| dir.trim().to_owned())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| DEFAULT_BACKUP_DIR.to_owned())
            .into();
        let backups_per_day = number(
            "LIFELINE_BACKUPS_PER_DAY",
            domain::backup::jobs::DEFAULT_PER_DAY,
            1..=100,
            "backups",
        )?;

        // Checked even with the schedule off, so that a typo shows before it is switched on.
        let backup_schedule_keep = number(
            "LIFELINE_BACKUP_SCHEDULE_KEEP",
            DEFAULT_BACKUP_SCHEDULE_KEEP,
            1..=365,
            "archives",
        )?;
        let backup_schedule = match read("LIFELINE_BACKUP_SCHEDULE") {
            None => None,
            Some(every) => {
                let every = schedule_interval(&every).ok_or_else(|| ConfigError {
                    variable: "LIFELINE_BACKUP_SCHEDULE",
                    problem: format!(
                        "must be an interval such as 24h, 6h, 90m or 7d, from {} to {} (unset: \
                         no scheduled backups)",
                        humantime::format_duration(*BACKUP_SCHEDULE_RANGE.start()),
                        humantime::format_duration(*BACKUP_SCHEDULE_RANGE.end()),
                    ),
                })?;
                let passphrase_file: PathBuf = read("LIFELINE_BACKUP_PASSPHRASE_FILE")
                    .map(|file| file.trim().into())
                    .ok_or_else(|| ConfigError {
                        variable: "LIFELINE_BACKUP_PASSPHRASE_FILE",
                        problem: "must be set when LIFELINE_BACKUP_SCHEDULE is: the file (mode \
                                  0600) whose first line is the passphrase scheduled backups \
                                  are encrypted to"
                            .into(),
                    })?;
                // Read now so that a missing, shared or weak passphrase stops the start; the
                // scheduler reads it again when it starts. The error never holds the text.
                crate::backup_schedule::read_passphrase(&passphrase_file).map_err(|problem| {
                    ConfigError {
                        variable: "LIFELINE_BACKUP_PASSPHRASE_FILE",
                        problem,
                    }
                })?;
                let folder = read("LIFELINE_BACKUP_SCHEDULE_DIR")
                    .map(|dir| dir.trim().to_owned())
                    .unwrap_or_else(|| DEFAULT_BACKUP_SCHEDULE_DIR.to_owned())
                    .into();
                Some(BackupSchedule {
                    every,
                    folder,
                    keep: backup_schedule_keep,
                    passphrase_file,
                })
            }
        };

        Ok(Self {
            backup_dir,
            backups_per_day,
            backup_schedule,
            public_url,
            smtp_url,
            mail_from,
            mail_attempts,
            mail_retry_seconds,
            database_url,
            backend,
            listen_addr,
            log_filter,
            log_format,
            secure_cookies,
            webhooks_allow_loopback_http,
            secret_key,
            reauthenticate_after_seconds,
            session_idle_seconds,
            session_lifetime_seconds,
            hash_concurrency,
            hash_queue,
            sign_in_attempts_per_minute,
            sign_in_attempts_per_account_per_minute,
            sign_in_starts_per_minute,
            api_requests_per_minute,
            ipv6_throttle_prefix,
            trusted_proxies,
            audit_checkpoint_seconds,
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|variable| std::env::var(variable).ok())
    }
}

/// An interval such as `24h`, `90m`, `7d` or `1h 30m` (humantime's units), within
/// [`BACKUP_SCHEDULE_RANGE`].
fn schedule_interval(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|every| BACKUP_SCHEDULE_RANGE.contains(every))
}

/// `url` without a trailing slash, if it is an `http` or `https` address with a host and
/// neither query nor fragment.
fn public_url(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let plain = uri.query().is_none() && !url.contains('#');
    (scheme_ok && uri.host().is_some_and(|host| !host.is_empty()) && plain)
        .then(|| url.trim_end_matches('/').to_owned())
}

/// `10.0.0.0/8, ::1/128, 192.0.2.7`: networks in CIDR notation, or single addresses, separated
/// by commas (empty entries ignored). On error, the entry that is neither.
fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| entry.to_owned())
        })
        .collect()
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
        assert!(!config.webhooks_allow_loopback_http);
        assert_eq!(
            config.secret_key,
            SecretKeySource::File(DEFAULT_SECRET_KEY_FILE.into())
        );
        assert_eq!(config.reauthenticate_after_seconds, 600);
        assert_eq!(config.session_idle_seconds, 1800);
        assert_eq!(config.session_lifetime_seconds, 43_200);
        assert_eq!((config.hash_concurrency, config.hash_queue), (None, None));
        assert_eq!(config.sign_in_attempts_per_minute, 30);
        assert_eq!(config.sign_in_attempts_per_account_per_minute, 10);
        assert_eq!(config.sign_in_starts_per_minute, 30);
        assert_eq!(config.api_requests_per_minute, 120);
        assert_eq!(config.ipv6_throttle_prefix, 64);
        assert!(config.trusted_proxies.is_empty(), "no proxy is trusted");
        assert_eq!(config.audit_checkpoint_seconds, 900);
        assert_eq!(config.smtp_url, None);
        assert_eq!(config.mail_from, "Lifeline <lifeline@localhost>");
        assert_eq!((config.mail_attempts, config.mail_retry_seconds), (8, 30));
        assert_eq!(config.public_url, None);
        assert_eq!(config.backup_schedule, None, "scheduled backups are off");
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
            ("LIFELINE_LISTEN_ADDR", "[::1]:8080"),
            ("LIFELINE_LOG", "lifeline=debug,tower_http=debug"),
            ("LIFELINE_LOG_FORMAT", "JSON"),
            ("LIFELINE_SECURE_COOKIES", "true"),
            ("LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP", "1"),
            ("LIFELINE_SECRET_KEY", &"ab".repeat(32)),
            ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "300"),
            ("LIFELINE_HASH_CONCURRENCY", "3"),
            ("LIFELINE_HASH_QUEUE", "0"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "4"),
            ("LIFELINE_SIGN_IN_STARTS_PER_MINUTE", "7"),
            ("LIFELINE_IPV6_THROTTLE_PREFIX", "56"),
            ("LIFELINE_AUDIT_CHECKPOINT_SECONDS", "0"),
            ("LIFELINE_SMTP_URL", "smtps://user:secret@mail.example.com"),
            ("LIFELINE_MAIL_FROM", "Security <security@example.com>"),
            ("LIFELINE_MAIL_ATTEMPTS", "3"),
            ("LIFELINE_MAIL_RETRY_SECONDS", "5"),
            ("LIFELINE_PUBLIC_URL", "https://lifeline.example.com/"),
            (
                "LIFELINE_TRUSTED_PROXIES",
                "127.0.0.1/32, 10.0.0.0/8,::1/128,192.0.2.7,",
            ),
        ])
        .unwrap();
        assert_eq!(config.sign_in_attempts_per_account_per_minute, 4);
        assert_eq!(config.sign_in_starts_per_minute, 7);
        assert_eq!(config.ipv6_throttle_prefix, 56);
        assert_eq!(config.audit_checkpoint_seconds, 0);
        assert_eq!(
            config.smtp_url.as_ref().map(SmtpUrl::as_str),
            Some("smtps://user:secret@mail.example.com")
        );
        assert!(
            !format!("{config:?}").contains("secret@"),
            "the password is not shown"
        );
        assert_eq!(config.mail_from, "Security <security@example.com>");
        assert_eq!((config.mail_attempts, config.mail_retry_seconds), (3, 5));
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://lifeline.example.com")
        );
        let trusted: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            trusted,
            ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.0.2.7/32"]
        );
        assert_eq!(config.reauthenticate_after_seconds, 300);
        assert_eq!(
            (config.hash_concurrency, config.hash_queue),
            (Some(3), Some(0))
        );
        assert_eq!(config.backend, Backend::Postgres);
        assert_eq!(config.listen_addr, "[::1]:8080".parse().unwrap());
        assert_eq!(config.log_filter, "lifeline=debug,tower_http=debug");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(config.secure_cookies);
        assert!(config.webhooks_allow_loopback_http);
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
            ("LIFELINE_HASH_CONCURRENCY", "0"),
            ("LIFELINE_HASH_QUEUE", "-1"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "many"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "0"),
            ("LIFELINE_IPV6_THROTTLE_PREFIX", "0"),
            ("LIFELINE_IPV6_THROTTLE_PREFIX", "129"),
            ("LIFELINE_AUDIT_CHECKPOINT_SECONDS", "604801"),
            ("LIFELINE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("LIFELINE_TRUSTED_PROXIES", "127.0.0.1/32;10.0.0.0/8"),
            ("LIFELINE_TRUSTED_PROXIES", "proxy.internal"),
            ("LIFELINE_TRUSTED_PROXIES", "10.0.0.0/8,nonsense"),
            ("LIFELINE_SMTP_URL", "mail.example.com"),
            ("LIFELINE_SMTP_URL", "http://mail.example.com"),
            ("LIFELINE_MAIL_FROM", "not an address"),
            ("LIFELINE_MAIL_ATTEMPTS", "0"),
            ("LIFELINE_MAIL_RETRY_SECONDS", "86401"),
            ("LIFELINE_PUBLIC_URL", "lifeline.example.com"),
            ("LIFELINE_PUBLIC_URL", "ftp://lifeline.example.com"),
            ("LIFELINE_PUBLIC_URL", "https://lifeline.example.com/?a=b"),
            ("LIFELINE_PUBLIC_URL", "https://"),
            ("LIFELINE_BACKUP_SCHEDULE", "daily"),
            ("LIFELINE_BACKUP_SCHEDULE", "24"),
            ("LIFELINE_BACKUP_SCHEDULE", "0s"),
            ("LIFELINE_BACKUP_SCHEDULE", "500ms"),
            ("LIFELINE_BACKUP_SCHEDULE", "367d"),
            ("LIFELINE_BACKUP_SCHEDULE", "-1h"),
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "0"),
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "366"),
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "all"),
        ] {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
            assert!(error.to_string().starts_with(variable), "{error}");
        }
    }

    /// A hard-to-guess passphrase.
    const PASSPHRASE: &str = "violet tractor whispers under copper rain";

    /// Writes `text` to a new file `name` in `folder` with `mode`; returns its path.
    fn passphrase_file(folder: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;

        let path = folder.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_backup_schedule_reads_its_variables() {
        let folder = tempfile::tempdir().unwrap();
        let file = passphrase_file(folder.path(), "p", &format!("{PASSPHRASE}\r\nx\n"), 0o600);
        let on = config(&[
            ("LIFELINE_BACKUP_SCHEDULE", "6h"),
            ("LIFELINE_BACKUP_PASSPHRASE_FILE", &file),
        ])
        .unwrap();
        assert_eq!(
            on.backup_schedule,
            Some(BackupSchedule {
                every: Duration::from_secs(6 * 60 * 60),
                folder: DEFAULT_BACKUP_SCHEDULE_DIR.into(),
                keep: DEFAULT_BACKUP_SCHEDULE_KEEP,
                passphrase_file: file.clone().into(),
            })
        );
        let every_variable = config(&[
            ("LIFELINE_BACKUP_SCHEDULE", " 1h 30m "),
            ("LIFELINE_BACKUP_SCHEDULE_DIR", "/srv/lifeline/backups"),
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "30"),
            ("LIFELINE_BACKUP_PASSPHRASE_FILE", &file),
        ])
        .unwrap()
        .backup_schedule
        .unwrap();
        assert_eq!(every_variable.every, Duration::from_secs(90 * 60));
        assert_eq!(
            every_variable.folder,
            PathBuf::from("/srv/lifeline/backups")
        );
        assert_eq!(every_variable.keep, 30);
        for (every, seconds) in [
            ("7d", 7 * 86_400),
            ("90m", 5_400),
            ("2s", 2),
            ("1y", 31_557_600),
        ] {
            let schedule = config(&[
                ("LIFELINE_BACKUP_SCHEDULE", every),
                ("LIFELINE_BACKUP_PASSPHRASE_FILE", &file),
            ])
            .unwrap()
            .backup_schedule
            .unwrap();
            assert_eq!(schedule.every, Duration::from_secs(seconds), "{every}");
        }
        // Without the schedule the passphrase file is not read, and the folder not needed.
        let off = config(&[
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "3"),
            ("LIFELINE_BACKUP_PASSPHRASE_FILE", "/nonexistent/passphrase"),
        ])
        .unwrap();
        assert_eq!(off.backup_schedule, None);
    }

    #[test]
    fn a_schedule_without_a_private_strong_passphrase_is_refused_without_showing_it() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        let missing = dir.join("missing").display().to_string();
        let cases = [
            (None, "must be set when LIFELINE_BACKUP_SCHEDULE is"),
            (Some(missing.clone()), "cannot read it"),
            (
                Some(passphrase_file(
                    dir,
                    "shared",
                    &format!("{PASSPHRASE}\n"),
                    0o640,
                )),
                "chmod 600",
            ),
            (
                Some(passphrase_file(dir, "weak", "password1234\n", 0o600)),
                "harder to guess",
            ),
            (
                Some(passphrase_file(dir, "short", "x7#q\n", 0o600)),
                "at least 12 characters",
            ),
            (
                Some(passphrase_file(dir, "empty", "\nviolet tractor\n", 0o600)),
                "first line is empty",
            ),
        ];
        for (file, problem) in cases {
            let mut vars = vec![("LIFELINE_BACKUP_SCHEDULE", "24h")];
            if let Some(file) = &file {
                vars.push(("LIFELINE_BACKUP_PASSPHRASE_FILE", file));
            }
            let error = config(&vars).unwrap_err();
            assert_eq!(
                error.variable, "LIFELINE_BACKUP_PASSPHRASE_FILE",
                "{file:?}"
            );
            let message = error.to_string();
            assert!(message.contains(problem), "{file:?}: {message}");
            for secret in [PASSPHRASE, "password1234", "x7#q", "violet"] {
                assert!(!message.contains(secret), "{message}");
            }
        }
    }
}
