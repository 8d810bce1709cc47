//! Per-IP throttling of the requests that check a secret: the sign-in steps (password,
//! authenticator code, backup code) and the others that take a password or a code.
//!
//! The per-account lockout ([`domain::lockout`]) stops guessing at one account; this stops
//! one address from guessing across many accounts, and from spending the server's argon2
//! capacity. Each address gets a bucket of `per_minute` attempts that refills at that rate;
//! beyond it, `429 Too Many Requests` with `Retry-After`, before anything is read or
//! hashed. Counted per instance, in memory: N instances allow N times the rate, which is
//! still bounded; the lockout, in the database, is the limit that holds across them.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};

/// The server functions and forms that check a password, an authenticator code or a
/// backup code.
const GUARDED_PATHS: [&str; 7] = [
    "/api/sign_in/password",
    "/api/sign_in/code",
    "/api/sign_in/backup_code",
    "/api/account/mfa/confirm",
    "/api/account/mfa/disable",
    "/api/account/backup-codes/generate",
    "/account/backup-codes",
];

/// The per-address buckets, shared by every request of this instance.
#[derive(Clone)]
pub struct Throttle {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl Throttle {
    /// `per_minute` attempts per address, at once or spread over the minute.
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                per_minute,
            ))),
            clock: DefaultClock::default(),
        }
    }

    /// Forgets addresses whose buckets are full again, every minute, so that memory stays
    /// bounded by the addresses seen in the last minute.
    pub fn spawn_cleanup(&self) {
        let limiter = Arc::clone(&self.limiter);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
}

/// Refuses a guarded request with 429 when its address has no attempt left.
pub async fn throttle_secret_checks(
    State(throttle): State<Throttle>,
    request: Request,
    next: Next,
) -> Response {
    let guarded = request.method() == Method::POST && GUARDED_PATHS.contains(&request.uri().path());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let (true, Some(ip)) = (guarded, peer)
        && let Err(not_until) = throttle.limiter.check_key(&ip)
    {
        let wait = not_until.wait_time_from(throttle.clock.now());
        let seconds = wait.as_secs().max(1);
        tracing::warn!(%ip, path = request.uri().path(), "sign-in attempts throttled");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts from your network. Try again in {seconds} seconds."),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    next.run(request).await
}
