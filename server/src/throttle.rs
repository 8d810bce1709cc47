//! Throttling of the requests that check a secret or run argon2 ([`server::guarded`]): the
//! sign-in steps (password, authenticator code, backup code) and the others that take a
//! password or a code, or hash one.
//!
//! The per-account lockout ([`domain::lockout`]) stops guessing at one account; this stops
//! one address from guessing across many accounts, many addresses from guessing at one
//! account faster than a person types, and both from spending the server's argon2 capacity.
//! Each client address (IPv6 ones by network, `LIFELINE_IPV6_THROTTLE_PREFIX`) and each
//! account gets a bucket of attempts that refills at its rate per minute; beyond it,
//! `429 Too Many Requests` with `Retry-After`, before anything is hashed. Counted per
//! instance, in memory: N instances allow N times the rate, which is still bounded; the
//! lockout, in the database, is the limit that holds across them.

use std::{fmt, net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use app::auth::ClientAddress;
use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, NotUntil, Quota,
    clock::{Clock, DefaultClock},
};
use ipnet::Ipv6Net;
use server::guarded::{AccountOf, account_of};
use tower_sessions::Session;

/// The sign-in step that makes a session: the email step.
const SIGN_IN_START: &str = "/api/sign_in/email";

/// The account a guarded request tries: what the per-account bucket is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Account {
    /// The email typed at the first sign-in step, whether or not an account has it.
    Email(String),
    /// A member, signed in or owing a second factor.
    Member(i32),
}

impl fmt::Display for Account {
    // The email stays out of the log; the member id is no secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Email(_) => f.write_str("an email typed at sign-in"),
            Self::Member(id) => write!(f, "member {id}"),
        }
    }
}

/// An account's bucket: its untrusted sources together (`None`), or one browser that holds
/// the account's device cookie, counted apart as the lockout counts it
/// ([`domain::lockout::Attempter`]), so that a stranger spending an account's attempts does
/// not keep its owner's own browser out.
type AccountBucket = (Account, Option<String>);

/// The buckets, shared by every request of this instance.
#[derive(Clone)]
pub struct Throttle {
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Sign-ins begun per address: each makes a session (a row in the database).
    starts: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_account: Arc<DefaultKeyedRateLimiter<AccountBucket>>,
    ipv6_prefix: u8,
    clock: DefaultClock,
    /// Checks device cookies, and finds whose they are.
    devices: Option<Devices>,
}

/// What telling a member's own browser apart needs.
#[derive(Clone)]
pub struct Devices {
    pub key: domain::secrets::SecretKey,
    pub db: domain::db::DatabaseConnection,
}

/// How many attempts, and how IPv6 addresses are grouped.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts per client address (or IPv6 network) per minute.
    pub per_address: NonZeroU32,
    /// Attempts per account per minute, from however many addresses.
    pub per_account: NonZeroU32,
    /// Sign-ins begun (the email step) per client address per minute.
    pub starts: NonZeroU32,
    /// IPv6 addresses share a bucket per network of this prefix length.
    pub ipv6_prefix: u8,
}

impl Throttle {
    /// Buckets of the `limits`' attempts, at once or spread over the minute; a member's
    /// own browser (by its device cookie, checked with `devices`) has buckets of its own.
    pub fn new(limits: Limits, devices: Option<Devices>) -> Self {
        Self {
            per_address: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                limits.per_address,
            ))),
            per_account: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                limits.per_account,
            ))),
            starts: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                limits.starts,
            ))),
            ipv6_prefix: limits.ipv6_prefix,
            clock: DefaultClock::default(),
            devices,
        }
    }

    /// The bucket of `account` that a request with `device` (its cookie's) counts in: the
    /// account's own browser's, when the device is that account's, otherwise the account's
    /// untrusted one.
    async fn bucket(
        &self,
        account: Account,
        device: Option<domain::device::Device>,
    ) -> AccountBucket {
        let (Some(device), Some(devices)) = (device, &self.devices) else {
            return (account, None);
        };
        let owned = match &account {
            Account::Member(id) => *id == device.member_id,
            Account::Email(email) => domain::identity::member(&devices.db, device.member_id)
                .await
                .ok()
                .flatten()
                .is_some_and(|member| member.email == *email),
        };
        (account, owned.then_some(device.id))
    }

    /// Forgets addresses and accounts whose buckets are full again, every minute, so that
    /// memory stays bounded by those seen in the last minute.
    pub fn spawn_cleanup(&self) {
        let per_address = Arc::clone(&self.per_address);
        let per_account = Arc::clone(&self.per_account);
        let starts = Arc::clone(&self.starts);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                per_address.retain_recent();
                per_address.shrink_to_fit();
                per_account.retain_recent();
                per_account.shrink_to_fit();
                starts.retain_recent();
                starts.shrink_to_fit();
            }
        });
    }

    /// `429 Too Many Requests`, saying when to try again.
    fn refusal(
        &self,
        not_until: &NotUntil<<DefaultClock as Clock>::Instant>,
        whose: &str,
    ) -> Response {
        let seconds = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts {whose}. Try again in {seconds} seconds."),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// The per-address bucket `address` counts in: itself for IPv4, its network of
/// `ipv6_prefix` bits for IPv6, since one client usually holds a whole /64 and can send
/// from any address in it.
fn address_bucket(address: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => Ipv6Net::new(v6, ipv6_prefix)
            .map_or(IpAddr::V6(v6), |network| IpAddr::V6(network.network())),
        v4 => v4,
    }
}

/// The account whose attempts `request` spends, as its session tells (none when the session
/// has not got that far: the server function then refuses before any secret is checked).
async fn account_tried(session: Option<Session>, account_of: AccountOf) -> Option<Account> {
    let session = &session?;
    let account = match account_of {
        AccountOf::RememberedEmail => app::auth::remembered_email(session)
            .await
            .map(|email| email.map(|email| Account::Email(email.to_lowercase()))),
        AccountOf::PendingMember => app::auth::pending_second_factor(session)
            .await
            .map(|pending| pending.map(|pending| Account::Member(pending.member_id))),
        AccountOf::SignedInMember => app::auth::claimed_member_id(session)
            .await
            .map(|id| id.map(Account::Member)),
        AccountOf::NoAccount => return None,
    };
    // The server function reads the same session and answers the error itself.
    account.ok().flatten()
}

/// Refuses a guarded request with 429 when its address, or the account it tries, has no
/// attempt left.
pub async fn throttle_secret_checks(
    State(throttle): State<Throttle>,
    request: Request,
    next: Next,
) -> Response {
    // Beginning a sign-in checks no secret, but makes a session: bounded per address too.
    if request.method() == Method::POST
        && request.uri().path() == SIGN_IN_START
        && let Some(&ClientAddress(ip)) = request.extensions().get::<ClientAddress>()
        && let Err(not_until) = throttle
            .starts
            .check_key(&address_bucket(ip, throttle.ipv6_prefix))
    {
        tracing::warn!(%ip, "sign-ins begun from one address throttled");
        return throttle.refusal(&not_until, "from your network");
    }
    let guarded = account_of(request.uri().path()).filter(|_| request.method() == Method::POST);
    let Some(account_of) = guarded else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if let Some(&ClientAddress(ip)) = request.extensions().get::<ClientAddress>()
        && let Err(not_until) = throttle
            .per_address
            .check_key(&address_bucket(ip, throttle.ipv6_prefix))
    {
        tracing::warn!(%ip, path, "attempts from one address throttled");
        return throttle.refusal(&not_until, "from your network");
    }
    let session = request.extensions().get::<Session>().cloned();
    let device = throttle
        .devices
        .as_ref()
        .and_then(|devices| app::auth::device_of(&devices.key, request.headers()));
    if let Some(account) = account_tried(session, account_of).await
        && let bucket = throttle.bucket(account.clone(), device).await
        && let Err(not_until) = throttle.per_account.check_key(&bucket)
    {
        tracing::warn!(%account, path, "attempts at one account throttled");
        return throttle.refusal(&not_until, "at this account");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_in_one_network_share_a_bucket() {
        let bucket = |text: &str| address_bucket(ip(text), 64);
        assert_eq!(bucket("2001:db8:1:2::1"), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            bucket("2001:db8:1:2::1")
        );
        assert_ne!(bucket("2001:db8:1:3::1"), bucket("2001:db8:1:2::1"));
        assert_eq!(
            address_bucket(ip("2001:db8:1:2ff::1"), 56),
            address_bucket(ip("2001:db8:1:200::1"), 56)
        );
        assert_ne!(
            address_bucket(ip("2001:db8:1:2::1"), 128),
            address_bucket(ip("2001:db8:1:2::2"), 128)
        );
    }

    #[test]
    fn ipv4_addresses_each_have_their_own_bucket() {
        assert_eq!(address_bucket(ip("198.51.100.7"), 64), ip("198.51.100.7"));
        assert_ne!(
            address_bucket(ip("198.51.100.7"), 64),
            address_bucket(ip("198.51.100.8"), 64)
        );
        // An IPv4 address written as IPv6 is that IPv4 address, not a /64 of them.
        assert_eq!(
            address_bucket(ip("::ffff:198.51.100.7"), 64),
            ip("198.51.100.7")
        );
    }

    #[tokio::test]
    async fn an_address_or_an_account_over_its_limit_is_refused_with_retry_after() {
        let throttle = Throttle::new(
            Limits {
                per_address: NonZeroU32::MIN,
                per_account: NonZeroU32::MIN,
                starts: NonZeroU32::MIN,
                ipv6_prefix: 64,
            },
            None,
        );
        let bucket = address_bucket(ip("2001:db8::1"), 64);
        assert!(throttle.per_address.check_key(&bucket).is_ok());
        let Err(not_until) = throttle
            .per_address
            .check_key(&address_bucket(ip("2001:db8::2"), 64))
        else {
            panic!("a second address of the same /64 gets the same bucket");
        };
        let response = throttle.refusal(&not_until, "from your network");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");

        let account = (Account::Member(7), None);
        assert!(throttle.per_account.check_key(&account).is_ok());
        assert!(throttle.per_account.check_key(&account).is_err());
        assert!(
            throttle
                .per_account
                .check_key(&(Account::Member(8), None))
                .is_ok()
        );
        // The member's own browser has a bucket of its own.
        let own_browser = (Account::Member(7), Some("a1b2".to_owned()));
        assert!(throttle.per_account.check_key(&own_browser).is_ok());
    }
}
