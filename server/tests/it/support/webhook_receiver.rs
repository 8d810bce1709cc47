//! A webhook receiver for the webhook tests: an HTTP server on a free port of 127.0.0.1, in
//! the test process, that keeps every request it gets (the Standard Webhooks headers, the
//! content type, the body) and answers 200, or 500 when told to: for the next few requests,
//! or for all of them. Also the check of a delivery's signature, with code of its own.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    routing::any,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct ReceivedHook {
    pub path: String,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` and `content-type`, when sent.
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// What the receiver answered it.
    pub answered: u16,
}

impl ReceivedHook {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a delivery's body is not JSON ({e}): {}", self.body))
    }

    /// Whether `webhook-signature` holds a valid `v1` signature of this delivery under
    /// `secret` (`whsec_` and the base64 of the key, as shown once): the base64 of
    /// HMAC-SHA-256 over `id.timestamp.body`, as the Standard Webhooks specification says.
    /// The header may hold several signatures, separated by spaces; one valid is enough.
    pub fn signed_with(&self, secret: &str) -> bool {
        let (Some(id), Some(timestamp), Some(header)) =
            (&self.id, &self.timestamp, &self.signature)
        else {
            return false;
        };
        let expected = signature(secret, id, timestamp, &self.body);
        header
            .split(' ')
            .filter_map(|one| one.strip_prefix("v1,"))
            .any(|given| given == expected)
    }
}

/// The base64 of HMAC-SHA-256 over `id.timestamp.body` under the key in `secret`
/// (`whsec_…`).
pub fn signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = STANDARD
        .decode(
            secret
                .strip_prefix("whsec_")
                .expect("a secret starts with whsec_"),
        )
        .expect("a secret is base64 after whsec_");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// What the receiver keeps and how it answers.
#[derive(Default)]
struct Shared {
    received: Vec<ReceivedHook>,
    /// Requests still to answer with 500 before answering 200 again.
    fail_next: usize,
    /// Answer every request with 500.
    fail_always: bool,
}

/// A running receiver; stopped when dropped.
pub struct WebhookReceiver {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free port of 127.0.0.1, answering 200 to every request.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .fallback(any(receive))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { port, shared, task }
    }

    /// The address of `path` on this receiver (`http://127.0.0.1:<port><path>`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next `n` requests with 500, then 200 again.
    pub fn fail_next(&self, n: usize) {
        self.shared.lock().unwrap().fail_next = n;
    }

    /// Answers every request with 500 (`true`), or 200 again (`false`).
    pub fn fail_always(&self, fail: bool) {
        self.shared.lock().unwrap().fail_always = fail;
    }

    /// Every request so far, in the order they came.
    pub fn received(&self) -> Vec<ReceivedHook> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Waits up to `timeout` for at least `n` requests, and returns all there are; panics if
    /// fewer arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedHook> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} requests reached the webhook receiver within {timeout:?}: \
                 {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps the request and answers as told.
async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let mut shared = shared.lock().unwrap();
    let status = if shared.fail_always {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if shared.fail_next > 0 {
        shared.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    shared.received.push(ReceivedHook {
        path: uri.path().to_owned(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: status.as_u16(),
    });
    status
}
