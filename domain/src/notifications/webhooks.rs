//! Signed webhooks: an organization's own endpoints (a SIEM, a chat) that receive its audit
//! events as JSON, through the same outbox, retries and no-loss rules as security mail.
//!
//! - A webhook has a name, an address and the event families it wants (`backup_code`,
//!   `mfa`, …, the part of an action's name before the dot; none chosen: every event). Its
//!   signing secret is made here, shown once, and stored sealed with the server key.
//! - Every audit event is written to the outbox once per webhook that wants it, in the
//!   event's own transaction ([`enqueue_event`]), keyed by webhook and event: however often
//!   it is sent, it is the same delivery.
//! - Deliveries are signed as the Standard Webhooks specification (standardwebhooks.com)
//!   says, so that receivers can use its libraries: headers `webhook-id` (the delivery's
//!   idempotency key), `webhook-timestamp` (Unix seconds, when it was sent) and
//!   `webhook-signature` (`v1,` then the base64 HMAC-SHA-256 of `id.timestamp.body` under the
//!   secret, which is shown as `whsec_` and its base64) — see [`sign`].
//!
//! Addresses are `https://` only; `http://` to a loopback address only where the operator
//! allows it ([`UrlRules`]), for a receiver on the same machine.

use std::net::IpAddr;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use sha2::Sha256;

use super::{Message, Rendered};
use crate::{
    entity::{audit_event, notification_outbox, webhook},
    input::{FieldError, single_line},
    secrets::{SealError, SecretKey},
};

/// Webhooks one organization may have.
pub const MAX_PER_ORG: u64 = 10;
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// The longest address, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// What a secret is shown with, as the Standard Webhooks specification writes one.
pub const SECRET_PREFIX: &str = "whsec_";
/// The secret's length in bytes (256 bits).
const SECRET_BYTES: usize = 32;
/// The action a failed delivery is recorded under: never sent to any webhook.
pub const DELIVERY_FAILED: &str = "webhook.delivery_failed";

/// Which addresses a webhook may have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlRules {
    /// `http://` to `localhost`, `127.0.0.0/8` or `[::1]` is allowed (a receiver on the same
    /// machine; `LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP`). Off by default: events leave the
    /// server encrypted.
    pub allow_loopback_http: bool,
}

impl UrlRules {
    /// Checks `input` as a webhook's address (field `url`): at most 2048 characters, an
    /// absolute `https://` address with a host and no user name or password (it would be
    /// stored in plaintext), or `http://` to a loopback host when allowed. Returns it parsed.
    ///
    /// # Errors
    /// [`FieldError`] on `url` saying which rule it breaks.
    pub fn check(&self, input: &str) -> Result<url::Url, FieldError> {
        let text = single_line("url", input, MAX_URL_CHARS)?;
        if text.is_empty() {
            return Err(FieldError::new(
                "url",
                "Enter the address to send events to.",
            ));
        }
        let parsed = url::Url::parse(text).map_err(|_| {
            FieldError::new(
                "url",
                "Enter a whole address, starting with https://, such as \
                 https://siem.example.com/hooks/lifeline.",
            )
        })?;
        let Some(host) = parsed.host() else {
            return Err(FieldError::new("url", "The address needs a host name."));
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(FieldError::new(
                "url",
                "Put no user name or password in the address: the signature tells your \
                 receiver the events are from Lifeline.",
            ));
        }
        if parsed.fragment().is_some() {
            return Err(FieldError::new(
                "url",
                "Leave out the part after #: it is never sent.",
            ));
        }
        let literal = match host {
            url::Host::Domain(_) => None,
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        };
        let loopback = match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            _ => literal.is_some_and(|ip| ip.is_loopback()),
        };
        if parsed.as_str().chars().count() > MAX_URL_CHARS {
            return Err(FieldError::new(
                "url",
                format!("Use at most {MAX_URL_CHARS} characters."),
            ));
        }
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
            return Err(FieldError::new(
                "url",
                "Use an https:// address: events are sent only over an encrypted connection.",
            ));
        }
        if loopback && !self.allow_loopback_http || literal.is_some_and(|ip| !self.allows_ip(ip)) {
            return Err(FieldError::new(
                "url",
                "Use an address on the internet: events are not sent to this machine or to \
                 private, link-local or reserved networks.",
            ));
        }
        Ok(parsed)
    }

    /// Whether a delivery may connect to `ip`: a global unicast address, or a loopback one
    /// when loopback http is allowed. Never a private (RFC 1918, unique local), shared
    /// (RFC 6598), link-local (cloud metadata services live there), multicast, documentation,
    /// benchmarking or reserved address, nor one of those inside an IPv4-mapped or NAT64
    /// address: an owner cannot make the server reach its own network (SSRF, OWASP).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback_http;
        }
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                !(v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.is_documentation()
                    || a == 0
                    || a >= 240
                    || (a == 100 && (64..128).contains(&b))
                    || (a == 192 && b == 0 && c == 0)
                    || (a == 198 && (b == 18 || b == 19)))
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                !(v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || (first == 0x2001 && v6.segments()[1] == 0x0db8))
            }
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 address.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [.., a, b, c, d] = v6.octets();
        std::net::Ipv4Addr::new(a, b, c, d)
    })
}

/// A webhook to register, as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub name: String,
    pub url: url::Url,
    /// The event families it receives; empty: every event.
    pub families: Vec<String>,
}

/// The signing secret of a webhook, as raw bytes. Shown once as [`WebhookSecret::reveal`].
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// `whsec_` and the secret's base64: what the owner copies into their receiver.
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }
}

/// What binds a sealed secret to its organization: it opens nowhere else.
pub(crate) fn seal_context(org_id: i32) -> Vec<u8> {
    format!("webhook-secret:{org_id}").into_bytes()
}

/// Inserts `hook` for `org_id` in `txn` (the caller's transaction, which records it and has
/// already checked [`count`]) with a new secret, sealed under `key`. Returns the row and the
/// secret, to be shown this once.
pub async fn insert(
    txn: &impl ConnectionTrait,
    key: &SecretKey,
    org_id: i32,
    hook: &NewWebhook,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<(webhook::Model, WebhookSecret), DbErr> {
    let secret = WebhookSecret::generate();
    let sealed = key
        .seal(&secret.0, &seal_context(org_id))
        .map_err(|SealError| DbErr::Custom("sealing a webhook secret failed".to_owned()))?;
    let row = webhook::ActiveModel {
        org_id: Set(org_id),
        name: Set(hook.name.clone()),
        url: Set(hook.url.to_string()),
        secret: Set(sealed.bytes),
        key_version: Set(sealed.version),
        events: Set(serde_json::to_string(&hook.families).unwrap_or_else(|_| "[]".to_owned())),
        created_at: Set(now),
        created_by: Set(created_by.to_owned()),
        ..Default::default()
    };
    let inserted = webhook::Entity::insert(row)
        .exec_with_returning(txn)
        .await?;
    Ok((inserted, secret))
}

/// The webhooks of organization `org_id`.
pub async fn of_organization(
    db: &impl ConnectionTrait,
    org_id: i32,
) -> Result<Vec<webhook::Model>, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::OrgId.eq(org_id))
        .all(db)
        .await
}

/// How many webhooks `org_id` has.
pub async fn count(db: &impl ConnectionTrait, org_id: i32) -> Result<u64, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::OrgId.eq(org_id))
        .count(db)
        .await
}

/// A registered webhook, as its owner sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i32,
    pub name: String,
    pub url: String,
    /// The event families it receives; empty: every event.
    pub families: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl From<webhook::Model> for Webhook {
    fn from(row: webhook::Model) -> Self {
        Self {
            families: families_of(&row),
            id: row.id,
            name: row.name,
            url: row.url,
            created_at: row.created_at,
            created_by: row.created_by,
        }
    }
}

fn families_of(row: &webhook::Model) -> Vec<String> {
    serde_json::from_str(&row.events).unwrap_or_default()
}

/// The organization's webhooks, oldest first.
pub async fn list(db: &impl ConnectionTrait, org_id: i32) -> Result<Vec<Webhook>, DbErr> {
    Ok(webhook::Entity::find()
        .filter(webhook::Column::OrgId.eq(org_id))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Webhook::from)
        .collect())
}

/// The organization's webhook `id`, if it has one by that id.
pub async fn find(
    db: &impl ConnectionTrait,
    org_id: i32,
    id: i32,
) -> Result<Option<Webhook>, DbErr> {
    Ok(webhook::Entity::find_by_id(id)
        .filter(webhook::Column::OrgId.eq(org_id))
        .one(db)
        .await?
        .map(Webhook::from))
}

/// Deletes the organization's webhook `id` and every delivery it had not made, in `txn`:
/// whether there was one to delete. Sent and failed deliveries go with it.
pub async fn delete(txn: &impl ConnectionTrait, org_id: i32, id: i32) -> Result<bool, DbErr> {
    let deleted = webhook::Entity::delete_many()
        .filter(webhook::Column::Id.eq(id))
        .filter(webhook::Column::OrgId.eq(org_id))
        .exec(txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Ok(false);
    }
    notification_outbox::Entity::delete_many()
        .filter(notification_outbox::Column::WebhookId.eq(id))
        .exec(txn)
        .await?;
    Ok(true)
}

/// The family of an action's name: the part before the dot (`backup_code.redeemed` →
/// `backup_code`).
pub fn family(action: &str) -> &str {
    action.split_once('.').map_or(action, |(family, _)| family)
}

/// Writes one delivery of the audit event `event` (just inserted in `txn`) to each of its
/// organization's webhooks that wants it (`ahead`: those webhooks, read before `txn`);
/// `webhook.delivery_failed` goes to none. Keyed by webhook and event, so it is written once.
pub async fn enqueue_event(
    txn: &impl ConnectionTrait,
    event: &audit_event::Model,
    now: DateTime<Utc>,
    ahead: Option<&[webhook::Model]>,
) -> Result<(), DbErr> {
    let hooks = match ahead {
        Some(hooks) => hooks.to_vec(),
        None => of_organization(txn, event.org_id).await?,
    };
    if hooks.is_empty() {
        return Ok(());
    }
    // A failed delivery is on the record and on the webhooks page, never sent to a webhook:
    // two receivers that are down would otherwise tell each other of their failures forever.
    if event.action == DELIVERY_FAILED {
        return Ok(());
    }
    let details: serde_json::Value =
        serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
    let body = payload(event, &details).to_string();
    for hook in hooks {
        let families = families_of(&hook);
        let wanted = families.is_empty() || families.iter().any(|f| f == family(&event.action));
        if !wanted {
            continue;
        }
        let subject: String = format!("{} to {}", event.action, hook.name)
            .chars()
            .take(200)
            .collect();
        let message = Message {
            org_id: event.org_id,
            user_id: None,
            kind: &event.action,
            recipient: &origin(&hook.url),
            rendered: Rendered {
                subject,
                text: body.clone(),
                html: String::new(),
            },
        };
        let dedupe = format!("webhook {} event {}", hook.id, event.id);
        super::insert(
            txn,
            message,
            &super::dedupe_key(&dedupe),
            now,
            Some(hook.id),
        )
        .await?;
    }
    Ok(())
}

/// The scheme, host and port of `url` (`https://siem.example.com:8443`): what is shown of a
/// webhook's address outside its owners' page and recorded in the audit log, since the path
/// or query may carry the receiver's own token.
pub fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|parsed| parsed.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The JSON body of a delivery, in the Standard Webhooks shape (`type`, `timestamp`,
/// `data`): the event as the audit log holds it, with its chain fields, so that a receiver
/// can check the chain.
fn payload(event: &audit_event::Model, details: &serde_json::Value) -> serde_json::Value {
    json!({
        "type": event.action,
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {
            "id": event.id,
            "organization_id": event.org_id,
            "seq": event.seq,
            "at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "action": event.action,
            "outcome": event.outcome,
            "actor": event.actor,
            "actor_id": event.actor_id,
            "target": event.target,
            "target_id": event.target_id,
            "source_ip": event.source_ip,
            "user_agent": event.user_agent,
            "details": details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "key_version": event.key_version,
        }
    })
}

/// Where and how a delivery is sent.
#[derive(Debug, Clone)]
pub struct Target {
    pub webhook_id: i32,
    pub name: String,
    pub url: String,
    pub secret: WebhookSecret,
}

/// The webhook `id` as the delivery worker needs it, its secret opened with `key`; `None`
/// when it was removed.
///
/// # Errors
/// The database's; [`DbErr::Custom`] when the secret does not open (another installation's
/// key, or a key version no longer held).
pub async fn target(
    db: &impl ConnectionTrait,
    key: &SecretKey,
    id: i32,
) -> Result<Option<Target>, DbErr> {
    let Some(row) = webhook::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let secret = key
        .open(row.key_version, &row.secret, &seal_context(row.org_id))
        .map_err(|_| {
            DbErr::Custom(format!(
                "the secret of webhook {id} does not open with this server's key"
            ))
        })?;
    Ok(Some(Target {
        webhook_id: row.id,
        name: row.name,
        url: row.url,
        secret: WebhookSecret(secret),
    }))
}

/// Whether `key` opens the webhook secrets already stored (true when there are none): checked
/// at start-up beside the TOTP secrets, so that a wrong key stops the server with a clear
/// message instead of failing every delivery.
pub async fn key_opens_secrets(db: &impl ConnectionTrait, key: &SecretKey) -> Result<bool, DbErr> {
    Ok(match webhook::Entity::find().one(db).await? {
        Some(row) => key
            .open(row.key_version, &row.secret, &seal_context(row.org_id))
            .is_ok(),
        None => true,
    })
}

/// Re-seals every webhook secret that another version sealed under `key`'s newest version,
/// for `lifeline rotate-key`; returns how many. Each is replaced only if it is still the one
/// opened, so it may run while servers serve.
///
/// # Errors
/// [`DbErr::Custom`] naming the webhook whose secret does not open with `key`; the
/// database's.
pub async fn reseal_secrets(db: &impl ConnectionTrait, key: &SecretKey) -> Result<usize, DbErr> {
    let version = key.current_version();
    let mut resealed = 0;
    for row in webhook::Entity::find()
        .filter(webhook::Column::KeyVersion.ne(version))
        .all(db)
        .await?
    {
        let context = seal_context(row.org_id);
        let secret = key
            .open(row.key_version, &row.secret, &context)
            .map_err(|_| {
                DbErr::Custom(format!("the secret of webhook {} does not open", row.id))
            })?;
        let fresh = key
            .seal(&secret, &context)
            .map_err(|SealError| DbErr::Custom("sealing a webhook secret failed".to_owned()))?;
        let updated = webhook::Entity::update_many()
            .col_expr(
                webhook::Column::Secret,
                sea_orm::sea_query::Expr::value(fresh.bytes),
            )
            .col_expr(
                webhook::Column::KeyVersion,
                sea_orm::sea_query::Expr::value(fresh.version),
            )
            .filter(webhook::Column::Id.eq(row.id))
            .filter(webhook::Column::Secret.eq(row.secret.clone()))
            .exec(db)
            .await?;
        resealed += usize::try_from(updated.rows_affected).unwrap_or(0);
    }
    Ok(resealed)
}

/// The `webhook-signature` header of `body`, sent as delivery `id` at `timestamp` (Unix
/// seconds): `v1,` and the base64 of HMAC-SHA-256 over `id.timestamp.body` under `secret`
/// (Standard Webhooks, "Signature scheme").
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail; the fallback is unreachable and
    // would only make a signature that does not verify.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0) else {
        return "v1,".to_owned();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Delivered(DateTime<Utc>),
    /// Not yet sent (or tried and to be tried again at this time).
    Pending(DateTime<Utc>),
    /// Given up on after the last attempt.
    Failed(DateTime<Utc>),
}

/// One delivery to a webhook, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's action, e.g. `backup_code.redeemed`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub state: DeliveryState,
    pub attempts: i32,
    /// The receiver's or the connection's last answer.
    pub last_error: Option<String>,
}

/// The latest `limit` deliveries to the organization's webhook `id`, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    org_id: i32,
    id: i32,
    limit: u64,
) -> Result<Vec<Delivery>, DbErr> {
    Ok(notification_outbox::Entity::find()
        .filter(notification_outbox::Column::OrgId.eq(org_id))
        .filter(notification_outbox::Column::WebhookId.eq(id))
        .order_by_desc(notification_outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| Delivery {
            state: match (row.sent_at, row.failed_at) {
                (Some(at), _) => DeliveryState::Delivered(at),
                (None, Some(at)) => DeliveryState::Failed(at),
                (None, None) => DeliveryState::Pending(row.next_attempt_at),
            },
            kind: row.kind,
            created_at: row.created_at,
            attempts: row.attempts,
            last_error: row.last_error,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_https_unless_loopback_http_is_allowed() {
        let strict = UrlRules::default();
        let loose = UrlRules {
            allow_loopback_http: true,
        };
        // (address, allowed when strict, allowed with loopback http)
        let table = [
            ("https://siem.example.com/hooks/lifeline", true, true),
            ("https://203.0.114.5:8443/in", true, true),
            ("https://[2a00:1450:4001:82a::200e]/in", true, true),
            ("https://10.0.0.5:8443/in", false, false),
            ("https://192.168.1.20/in", false, false),
            ("https://169.254.169.254/latest/meta-data", false, false),
            ("https://100.64.0.1/in", false, false),
            ("https://[fd00::1]/in", false, false),
            ("https://[fe80::1]/in", false, false),
            ("https://[::ffff:10.0.0.1]/in", false, false),
            ("https://[64:ff9b::a00:1]/in", false, false),
            ("https://0.0.0.0/in", false, false),
            ("https://127.0.0.1/in", false, true),
            ("https://localhost/in", false, true),
            ("http://siem.example.com/hooks", false, false),
            ("http://127.0.0.1:9000/hook", false, true),
            ("http://localhost/hook", false, true),
            ("http://[::1]:9000/hook", false, true),
            ("http://127.0.0.1.example.com/hook", false, false),
            ("ftp://siem.example.com/", false, false),
            ("https://user:pass@siem.example.com/", false, false),
            ("https://siem.example.com/#part", false, false),
            ("siem.example.com/hook", false, false),
            ("", false, false),
            ("https://siem.example.com/\u{0}", false, false),
        ];
        for (address, strict_ok, loose_ok) in table {
            assert_eq!(
                strict.check(address).is_ok(),
                strict_ok,
                "{address:?} strict"
            );
            assert_eq!(loose.check(address).is_ok(), loose_ok, "{address:?} loose");
            if let Err(error) = strict.check(address) {
                assert_eq!(error.field, "url");
            }
        }
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification ("Signature scheme").
        let secret = WebhookSecret(
            STANDARD
                .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .expect("base64"),
        );
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_family_is_the_name_before_the_dot() {
        assert_eq!(family("backup_code.redeemed"), "backup_code");
        assert_eq!(family("mfa.enabled"), "mfa");
        assert_eq!(family("odd"), "odd");
    }
}
