//! Delivery of security notifications: a worker on every instance claims due messages from
//! the outbox ([`domain::notifications`]), sends each, and marks it sent, or counts the
//! failure and lets the outbox try it again later (each wait twice the one before) until the
//! last attempt marks it failed.
//!
//! Two transports: SMTP when `LIFELINE_SMTP_URL` is set (lettre, STARTTLS or TLS through
//! rustls, credentials in the URL); otherwise each message is written as an `.eml` file
//! under `data/mail/` (folder 0700, files 0600), which is what `make run` uses.
//!
//! Deliveries to an organization's webhooks ([`domain::notifications::webhooks`]) are rows of
//! the same outbox, claimed, retried and marked the same way: each is POSTed as JSON, signed
//! as Standard Webhooks says, by [`Webhooks`]; any 2xx answer delivers it. After its last
//! attempt a delivery is marked failed and `webhook.delivery_failed` is recorded.
//!
//! Every message carries its row's idempotency key as its `Message-ID` (and in
//! `X-Lifeline-Notification-Id`), and its `Date` is when it was written to the outbox: a
//! message sent again after a crash between sending and marking is byte for byte the same
//! message, which mail clients and servers treat as one. The file transport names the file
//! after the key, so a resend replaces the file instead of adding one.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::Utc;
use domain::{
    audit::{AuditAction, Event, Outcome, Source},
    db::DatabaseConnection,
    notifications::{
        self, AfterFailure, Pending, RetryPolicy,
        webhooks::{self, UrlRules},
    },
    secrets::SecretKey,
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        header::{Header, HeaderName, HeaderValue},
    },
};

/// Where messages are written when no SMTP server is configured.
pub const MAIL_FOLDER: &str = "data/mail";
/// How often each instance looks for due messages.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Messages claimed at once.
const BATCH: u64 = 10;
/// How long a claim holds a message: a worker that dies holding it gives it back then.
/// Longer than lettre's SMTP timeout (60 s), so that a slow send is not taken over.
const LEASE: Duration = Duration::from_secs(5 * 60);

/// How messages leave the server.
pub enum Transport {
    /// An SMTP server (`LIFELINE_SMTP_URL`).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this folder.
    Files(PathBuf),
}

impl Transport {
    /// SMTP for `smtp_url` (already checked by the configuration), or the files under
    /// [`MAIL_FOLDER`], created 0700.
    pub fn new(smtp_url: Option<&str>) -> Result<Self, String> {
        match smtp_url {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|builder| Self::Smtp(builder.build()))
                .map_err(|e| format!("LIFELINE_SMTP_URL {e}")),
            None => {
                let folder = PathBuf::from(MAIL_FOLDER);
                crate::private_files::create_folder(&folder)?;
                Ok(Self::Files(folder))
            }
        }
    }

    /// Where messages go, for the log at start: never the SMTP credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp(_) => "security mail is sent by SMTP (LIFELINE_SMTP_URL)".to_owned(),
            Self::Files(folder) => {
                let shown = std::path::absolute(folder).unwrap_or_else(|_| folder.clone());
                format!(
                    "security mail is written as .eml files under {} (set LIFELINE_SMTP_URL \
                     to send it by SMTP)",
                    shown.display()
                )
            }
        }
    }

    async fn send(&self, message: Message, key: &str) -> Result<(), String> {
        match self {
            Self::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Files(folder) => {
                let folder = folder.clone();
                let key = key.to_owned();
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_eml(&folder, &key, &bytes))
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
    }
}

/// Writes `<key>.eml` (0600) in `folder` whole or not at all: a temporary file renamed over
/// it, so that a reader never sees half a message and a resend replaces the first.
fn write_eml(folder: &Path, key: &str, bytes: &[u8]) -> Result<(), String> {
    // The key is the outbox's hex and dashes; anything else would not be a file name of ours.
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err("the notification's key is not a file name".to_owned());
    }
    let path = folder.join(format!("{key}.eml"));
    let partial = folder.join(format!(".{key}.partial"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// How webhook deliveries leave the server.
pub struct Webhooks {
    client: reqwest::Client,
    /// Opens each webhook's sealed secret.
    key: SecretKey,
    /// Checked again at each delivery: an address the operator no longer allows is not used.
    rules: UrlRules,
}

/// How long one webhook POST may take, connecting included.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves webhook hosts to the addresses [`UrlRules::allows_ip`] allows only, so that a
/// name pointing at a private network (or re-pointed there after it was checked) is never
/// connected to.
struct PublicAddresses(UrlRules);

/// A webhook host resolved only to addresses deliveries may not reach.
#[derive(Debug)]
struct NotPublic;

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the host resolves only to private, link-local or reserved addresses, which \
             webhooks do not reach",
        )
    }
}

impl std::error::Error for NotPublic {}

impl reqwest::dns::Resolve for PublicAddresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.0;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<std::net::SocketAddr> =
                found.filter(|addr| rules.allows_ip(addr.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(NotPublic) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Webhooks {
    /// An HTTP client that follows no redirect (a receiver cannot send the events elsewhere),
    /// uses no proxy from the environment, connects only to public addresses and, unless
    /// loopback `http://` is allowed, speaks only HTTPS.
    pub fn new(key: SecretKey, rules: UrlRules) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(PublicAddresses(rules)))
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .https_only(!rules.allow_loopback_http)
            .user_agent(concat!("Lifeline-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot start the webhook client: {e}"))?;
        Ok(Self { client, key, rules })
    }

    /// POSTs the delivery `pending` to its webhook, signed; any 2xx answer delivers it. The
    /// error, kept on the row, never holds the address (which may carry the receiver's own
    /// token) or the secret.
    async fn post(
        &self,
        db: &DatabaseConnection,
        pending: &Pending,
        id: i32,
    ) -> Result<(), String> {
        let target = webhooks::target(db, &self.key, id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the webhook was removed".to_owned())?;
        self.rules
            .check(&target.url)
            .map_err(|refusal| format!("the address is no longer allowed: {}", refusal.message))?;
        let timestamp = Utc::now().timestamp();
        let signature = webhooks::sign(
            &target.secret,
            &pending.idempotency_key,
            timestamp,
            &pending.text,
        );
        let response = self
            .client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &pending.idempotency_key)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(pending.text.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered HTTP {}", status.as_u16()))
        }
    }
}

/// What went wrong with a webhook request, in words for its owner: never the address.
fn describe(error: &reqwest::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if inner.is::<NotPublic>() {
            return NotPublic.to_string();
        }
        cause = inner.source();
    }
    if error.is_timeout() {
        format!(
            "the receiver did not answer within {} seconds",
            WEBHOOK_TIMEOUT.as_secs()
        )
    } else if error.is_connect() {
        "could not connect to the receiver (its name, its port or its TLS certificate)".to_owned()
    } else {
        "the request to the receiver failed".to_owned()
    }
}

/// The delivery settings (`LIFELINE_MAIL_*`).
pub struct Delivery {
    pub db: DatabaseConnection,
    pub transport: Transport,
    pub from: Mailbox,
    pub retry: RetryPolicy,
    pub webhooks: Webhooks,
}

/// Which rows of the outbox a worker loop sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Mail,
    Webhooks,
}

impl Delivery {
    /// Runs the workers for the life of the process: one for security mail, one for webhook
    /// deliveries, so that a receiver that is slow or down never holds up a member's notice.
    pub fn spawn(self) {
        let delivery = std::sync::Arc::new(self);
        for channel in [Channel::Mail, Channel::Webhooks] {
            let delivery = std::sync::Arc::clone(&delivery);
            tokio::spawn(async move { delivery.run(channel).await });
        }
    }

    async fn run(&self, channel: Channel) {
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // Daily digests of administrator alerts, once their hour has come: written to
            // the outbox (once, whichever instance gets there first), sent below.
            if channel == Channel::Mail
                && let Err(error) = notifications::digest::send_due(&self.db, Utc::now()).await
            {
                tracing::warn!(%error, "writing alert digests");
            }
            // Until a round finds nothing due: a backlog drains without waiting a tick.
            loop {
                match self.deliver_due(channel).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, ?channel, "claiming notifications");
                        break;
                    }
                }
            }
        }
    }

    /// Claims one batch of due messages and sends them, at once (the SMTP transport keeps a
    /// pool of connections); then marks each. Returns how many were claimed.
    async fn deliver_due(&self, channel: Channel) -> Result<usize, domain::db::DbErr> {
        let claimed = match channel {
            Channel::Mail => notifications::claim_due(&self.db, Utc::now(), BATCH, LEASE).await?,
            Channel::Webhooks => {
                notifications::claim_due_webhooks(&self.db, Utc::now(), BATCH, LEASE).await?
            }
        };
        let outcomes = futures::future::join_all(claimed.iter().map(|pending| async move {
            if let Some(webhook) = pending.webhook_id {
                return self.webhooks.post(&self.db, pending, webhook).await;
            }
            match message(&self.from, pending) {
                Ok(message) => self.transport.send(message, &pending.idempotency_key).await,
                Err(error) => Err(error),
            }
        }))
        .await;
        let mut sent = Vec::with_capacity(claimed.len());
        for (pending, outcome) in claimed.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    tracing::debug!(id = pending.id, kind = %pending.kind, "notification sent");
                    sent.push(pending.id);
                }
                // One row's trouble with the database holds up none of the others: its claim
                // runs out and it is tried again.
                Err(error) => {
                    if let Err(db_error) = self.count_failure(pending, &error).await {
                        tracing::warn!(id = pending.id, error = %db_error, "marking a notification");
                    }
                }
            }
        }
        // The batch's sent messages in one commit; should that fail, one by one, so that one
        // row's trouble holds up none of the others.
        if let Err(db_error) = notifications::mark_all_sent(&self.db, &sent, Utc::now()).await {
            tracing::warn!(error = %db_error, "marking a batch of notifications sent; one by one");
            for id in sent {
                if let Err(db_error) = notifications::mark_sent(&self.db, id, Utc::now()).await {
                    tracing::warn!(id, error = %db_error, "marking a notification");
                }
            }
        }
        Ok(claimed.len())
    }

    /// Counts a failed attempt at `pending`; after the last one, a webhook delivery's failure
    /// is recorded in the same transaction that marks it failed.
    async fn count_failure(&self, pending: &Pending, error: &str) -> Result<(), domain::db::DbErr> {
        use domain::db::TransactionTrait;
        let txn = self.db.begin().await?;
        let after =
            notifications::mark_failed_attempt(&txn, pending, error, &self.retry, Utc::now())
                .await?;
        match after {
            AfterFailure::RetryAt(at) => tracing::info!(
                id = pending.id,
                kind = %pending.kind,
                %error,
                retry_at = %at,
                "notification not sent; will try again"
            ),
            AfterFailure::GaveUp => {
                tracing::warn!(
                    id = pending.id,
                    kind = %pending.kind,
                    %error,
                    attempts = pending.attempts + 1,
                    "notification not sent after its last attempt; marked failed"
                );
                if let Some(webhook) = pending.webhook_id {
                    record_failed_delivery(&txn, pending, webhook, error).await?;
                }
            }
            // Removed with its webhook meanwhile: nothing to count or record.
            AfterFailure::Gone => {}
        }
        txn.commit().await
    }
}

/// Records `webhook.delivery_failed` for a delivery given up on, in `txn`: the organization's
/// owners and auditors see that its receiver missed an event, and which. Sent to no webhook.
async fn record_failed_delivery(
    txn: &domain::db::DatabaseTransaction,
    pending: &Pending,
    webhook: i32,
    error: &str,
) -> Result<(), domain::db::DbErr> {
    let event = Event {
        action: AuditAction::WebhookDeliveryFailed,
        actor: None,
        target: None,
        outcome: Outcome::Failure,
        details: serde_json::json!({
            "webhook": webhook,
            "event": pending.kind,
            "delivery": pending.idempotency_key,
            "attempts": pending.attempts + 1,
            "error": error,
        }),
    };
    domain::audit::record(txn, pending.org_id, event, &Source::default(), Utc::now()).await
}

/// `X-Lifeline-Notification-Id`: the outbox row's idempotency key.
#[derive(Clone)]
struct NotificationId(String);

impl Header for NotificationId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Lifeline-Notification-Id")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(value.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no auto-reply should answer it.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The message of an outbox row: multipart text and HTML, its key as the Message-ID, dated
/// when it was written to the outbox.
fn message(from: &Mailbox, pending: &Pending) -> Result<Message, String> {
    let to: Mailbox = pending
        .recipient
        .parse()
        .map_err(|_| "the recipient is not an email address".to_owned())?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(pending.subject.clone())
        .date(pending.created_at.into())
        .message_id(Some(format!(
            "<{}@{}>",
            pending.idempotency_key,
            from.email.domain()
        )))
        .header(NotificationId(pending.idempotency_key.clone()))
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(
            pending.text.clone(),
            pending.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}
