//! Signed webhooks through the real binary and a receiver in the test process
//! ([`WebhookReceiver`]): an owner adds one with the plain form and sees its secret once (never
//! stored in plaintext); the receiver gets exactly the events of the families it chose, each
//! signed as Standard Webhooks says (checked with the tests' own HMAC) and carrying the audit
//! event's chain fields; a failed delivery is sent again with the same id until it arrives,
//! once, or is given up on, marked failed and recorded; refused forms write nothing; and 200
//! forms at once make exactly the most an organization may have.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use domain::{
    secrets::SecretKey,
    testing::{TestDatabase, fresh_databases, secret_key},
};
use reqwest::{Client, StatusCode, header};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{
    PASSWORD,
    cli::{cli, create_user},
    client::{SecondFactor, client, post, sign_in, sign_in_with},
    organizations::owner_with_codes,
    pages::get_page,
    process::Server,
    webhook_receiver::{ReceivedHook, WebhookReceiver},
};

const OWNER: &str = "owner@acme.test";
/// Acme's organization id: it is made first in a fresh database.
const ACME: i32 = 1;
/// The most webhooks one organization may have
/// (`domain::notifications::webhooks::MAX_PER_ORG`).
const MAX_PER_ORG: usize = 10;
/// How long a delivery may take to arrive (the worker looks every second).
const ARRIVAL: Duration = Duration::from_secs(30);
/// A few rounds of the worker: a delivery sent twice would show by then.
const A_FEW_TICKS: Duration = Duration::from_millis(3500);

/// The server on `database` with `key`, allowed to send to `http://` on this machine (where
/// the receiver is), with these further variables.
async fn start(database: &TestDatabase, key: &SecretKey, extra: &[(&str, &str)]) -> Server {
    let mut vars = vec![("LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP", "true")];
    vars.extend_from_slice(extra);
    Server::start_with_key(&database.url, key, &vars).await
}

/// The answer to the plain "Add webhook" form.
struct Posted {
    status: StatusCode,
    cache_control: String,
    body: String,
}

/// Posts the plain "Add webhook" form (no JavaScript: the answer is the page) to the server
/// at `base_url` as `session`, with these fields (`events` once per ticked box).
async fn post_add_form(
    client: &Client,
    base_url: &str,
    session: &str,
    fields: &[(&str, &str)],
) -> Posted {
    let response = client
        .post(format!("{base_url}/admin/webhooks"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cache_control = response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Posted {
        status,
        cache_control,
        body: response.text().await.unwrap(),
    }
}

/// The secret a page shows in `<code id="webhook-secret">`, if it shows one.
fn secret_on_page(html: &str) -> Option<String> {
    let at = html.find("id=\"webhook-secret\"")?;
    let text = &html[at + html[at..].find('>')? + 1..];
    text.split('<').next().map(str::to_owned)
}

/// Adds a webhook with the plain form as `session`; returns its secret.
async fn add_with_form(
    client: &Client,
    server: &Server,
    session: &str,
    fields: &[(&str, &str)],
) -> String {
    let added = post_add_form(client, &server.base_url, session, fields).await;
    assert_eq!(added.status, StatusCode::OK, "{:.3000}", added.body);
    secret_on_page(&added.body).unwrap_or_else(|| panic!("no secret: {:.5000}", added.body))
}

/// The family of an action: its name before the dot.
fn family(action: &str) -> &str {
    action.split_once('.').map_or(action, |(family, _)| family)
}

/// One number the database answers.
async fn number(database: &TestDatabase, sql: &str) -> i64 {
    let backend = database.db.get_database_backend();
    database
        .db
        .query_one(Statement::from_string(
            backend,
            format!("SELECT CAST(({sql}) AS BIGINT) AS n"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a number")
        .try_get("", "n")
        .unwrap()
}

/// An audit event of Acme's, as the tests compare it with a delivery.
#[derive(Debug, Clone)]
struct AuditRow {
    id: i64,
    action: String,
    outcome: String,
    seq: i64,
    prev_hash: String,
    hash: String,
    details: serde_json::Value,
}

/// Acme's audit events, oldest first.
async fn audit_rows(database: &TestDatabase) -> Vec<AuditRow> {
    let backend = database.db.get_database_backend();
    database
        .db
        .query_all(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(id AS BIGINT) AS id, action, outcome, CAST(seq AS BIGINT) AS seq, \
                 prev_hash, hash, details FROM audit_event WHERE org_id = {ACME} ORDER BY id"
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| AuditRow {
            id: row.try_get("", "id").unwrap(),
            action: row.try_get("", "action").unwrap(),
            outcome: row.try_get("", "outcome").unwrap(),
            seq: row.try_get("", "seq").unwrap(),
            prev_hash: row.try_get("", "prev_hash").unwrap(),
            hash: row.try_get("", "hash").unwrap(),
            details: serde_json::from_str(&row.try_get::<String>("", "details").unwrap())
                .unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

/// The id of the last `webhook.added` event that succeeded.
async fn last_added(database: &TestDatabase) -> i64 {
    audit_rows(database)
        .await
        .iter()
        .rev()
        .find(|row| row.action == "webhook.added" && row.outcome == "success")
        .expect("a webhook.added event")
        .id
}

/// A webhook delivery, as the outbox holds it.
#[derive(Debug, Clone)]
struct DeliveryRow {
    webhook_id: i64,
    kind: String,
    key: String,
    attempts: i64,
    sent: bool,
    failed: bool,
}

/// Every webhook delivery in the outbox, oldest first.
async fn deliveries(database: &TestDatabase) -> Vec<DeliveryRow> {
    let backend = database.db.get_database_backend();
    database
        .db
        .query_all(Statement::from_string(
            backend,
            "SELECT CAST(webhook_id AS BIGINT) AS webhook_id, kind, idempotency_key, \
             CAST(attempts AS BIGINT) AS attempts, \
             CAST(CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS sent, \
             CAST(CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS failed \
             FROM notification_outbox WHERE webhook_id IS NOT NULL ORDER BY id"
                .to_owned(),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| DeliveryRow {
            webhook_id: row.try_get("", "webhook_id").unwrap(),
            kind: row.try_get("", "kind").unwrap(),
            key: row.try_get("", "idempotency_key").unwrap(),
            attempts: row.try_get("", "attempts").unwrap(),
            sent: row.try_get::<i64>("", "sent").unwrap() == 1,
            failed: row.try_get::<i64>("", "failed").unwrap() == 1,
        })
        .collect()
}

/// Waits up to [`ARRIVAL`] until `done` holds for every webhook delivery in the outbox (and
/// there is at least one); returns them.
async fn deliveries_until(
    database: &TestDatabase,
    done: impl Fn(&DeliveryRow) -> bool,
) -> Vec<DeliveryRow> {
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    loop {
        let rows = deliveries(database).await;
        if !rows.is_empty() && rows.iter().all(&done) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}: the deliveries did not get there within {ARRIVAL:?}: {rows:#?}",
            database.backend
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stored secrets of every webhook.
async fn stored_secrets(database: &TestDatabase) -> Vec<Vec<u8>> {
    let backend = database.db.get_database_backend();
    database
        .db
        .query_all(Statement::from_string(
            backend,
            "SELECT secret FROM webhook ORDER BY id".to_owned(),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("", "secret").unwrap())
        .collect()
}

/// How many times the webhooks page lists a delivery in `state` (`Delivered`, `Waiting`,
/// `Failed`).
fn listed(page: &str, state: &str) -> usize {
    page.matches(&format!("<td>{state} ")).count()
}

/// Checks one delivery against the audit event it carries, and its signature and timestamp.
fn assert_delivery_of(hook: &ReceivedHook, secret: &str, event: &AuditRow) {
    assert_eq!(hook.content_type.as_deref(), Some("application/json"));
    assert!(
        hook.signed_with(secret),
        "not signed with {secret}: {hook:#?}"
    );
    let sent: i64 = hook
        .timestamp
        .as_deref()
        .expect("webhook-timestamp")
        .parse()
        .expect("webhook-timestamp is whole seconds");
    assert!(
        (Utc::now().timestamp() - sent).abs() <= 5 * 60,
        "timestamp {sent}"
    );
    let body = hook.json();
    assert_eq!(body["type"], event.action.as_str(), "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], event.id, "{body}");
    assert_eq!(data["action"], event.action.as_str(), "{body}");
    assert_eq!(data["seq"], event.seq, "{body}");
    assert_eq!(data["prev_hash"], event.prev_hash.as_str(), "{body}");
    assert_eq!(data["hash"], event.hash.as_str(), "{body}");
    assert_eq!(data["organization_id"], ACME, "{body}");
}

/// Whether `haystack` holds `needle` anywhere.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn an_owner_adds_a_webhook_and_it_receives_exactly_its_events_signed() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let receiver = WebhookReceiver::start().await;
        let server = start(&database, &key, &[]).await;
        let client = client();
        let owner =
            sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[0])).await;

        // The plain form, as a browser without JavaScript posts it: the answer is the page,
        // with the secret, kept by no cache.
        let address = receiver.url("/hook");
        let added = post_add_form(
            &client,
            &server.base_url,
            &owner,
            &[
                ("name", "SIEM"),
                ("url", &address),
                ("events", "backup_code"),
            ],
        )
        .await;
        assert_eq!(added.status, StatusCode::OK, "{:.3000}", added.body);
        assert_eq!(added.cache_control, "no-store");
        let secret = secret_on_page(&added.body)
            .unwrap_or_else(|| panic!("no secret on the page: {:.5000}", added.body));
        let key_bytes = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_"))
            .expect("base64");
        assert_eq!(key_bytes.len(), 32, "{secret}");

        // Stored sealed: neither its bytes nor its text are in the row.
        let stored = stored_secrets(&database).await;
        assert_eq!(stored.len(), 1);
        assert!(!contains_bytes(&stored[0], &key_bytes));
        assert!(!contains_bytes(&stored[0], secret.as_bytes()));
        // Shown once: not on the page again, not in the page's data, not in the log.
        let page = get_page(&client, &server, &owner, "/admin/webhooks").await;
        assert!(page.contains(&address), "{page:.5000}");
        assert!(!page.contains(&secret[6..]));
        let overview = post(&client, &server, "/api/admin/webhooks", Some(&owner), &[]).await;
        assert_eq!(overview.status(), StatusCode::OK);
        let overview = overview.text().await.unwrap();
        assert!(overview.contains(&address), "{overview}");
        assert!(!overview.contains(&secret[6..]));

        // After it: a sign-in with a backup code (family `backup_code`), and new codes
        // (`backup_codes`, another family, however alike the name).
        let hook_added = last_added(&database).await;
        sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[1])).await;
        let status: serde_json::Value = post(
            &client,
            &server,
            "/api/account/backup-codes",
            Some(&owner),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
        let replaces = status["replaces"]
            .as_str()
            .expect("the set in force")
            .to_owned();
        let generated = post(
            &client,
            &server,
            "/api/account/backup-codes/generate",
            Some(&owner),
            &[("password", PASSWORD), ("replaces", &replaces)],
        )
        .await;
        assert_eq!(generated.status(), StatusCode::OK);
        let events: Vec<AuditRow> = audit_rows(&database)
            .await
            .into_iter()
            .filter(|event| event.id >= hook_added)
            .collect();
        let wanted: Vec<&AuditRow> = events
            .iter()
            .filter(|event| family(&event.action) == "backup_code")
            .collect();
        assert!(
            wanted.iter().any(|e| e.action == "backup_code.redeemed"),
            "{events:#?}"
        );
        for other in ["webhook", "backup_codes"] {
            assert!(
                events.iter().any(|e| family(&e.action) == other),
                "no {other} event: {events:#?}"
            );
        }

        receiver.wait_for(wanted.len(), ARRIVAL).await;
        tokio::time::sleep(A_FEW_TICKS).await;
        let received = receiver.received();
        assert_eq!(
            received.len(),
            wanted.len(),
            "{:?}: {received:#?}",
            database.backend
        );
        let rows = deliveries_until(&database, |row| row.sent).await;
        assert_eq!(rows.len(), wanted.len(), "{rows:#?}");
        for hook in &received {
            // Sent at once, a batch may arrive in any order: matched by the event's id.
            let event = wanted
                .iter()
                .find(|event| hook.json()["data"]["id"] == event.id)
                .unwrap_or_else(|| panic!("a delivery of no wanted event: {hook:#?}"));
            assert_eq!(hook.path, "/hook");
            assert_eq!(hook.answered, 200);
            assert_delivery_of(hook, &secret, event);
            // Its id is its outbox row's key, the same however often it is sent.
            assert!(
                rows.iter()
                    .any(|row| Some(&row.key) == hook.id.as_ref() && row.kind == event.action),
                "{hook:#?} {rows:#?}"
            );
            // The check itself tells a wrong secret apart.
            let other = format!("whsec_{}", STANDARD.encode([7u8; 32]));
            assert!(!hook.signed_with(&other));
        }
        let mut ids: Vec<&String> = received.iter().filter_map(|h| h.id.as_ref()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), wanted.len());

        // The page lists each as delivered.
        let page = get_page(&client, &server, &owner, "/admin/webhooks").await;
        assert_eq!(listed(&page, "Delivered"), wanted.len(), "{page:.8000}");
        assert_eq!(listed(&page, "Waiting") + listed(&page, "Failed"), 0);
        assert!(
            !server.log().iter().any(|line| line.contains(&secret[6..])),
            "the secret is in the server's log"
        );
        server.terminate().await;
    }
}

#[tokio::test]
async fn a_delivery_that_fails_is_sent_again_with_the_same_id_and_arrives_once() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let receiver = WebhookReceiver::start().await;
        receiver.fail_next(2);
        let server = start(&database, &key, &[("LIFELINE_MAIL_RETRY_SECONDS", "1")]).await;
        let client = client();
        let owner =
            sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[0])).await;
        let secret = add_with_form(
            &client,
            &server,
            &owner,
            &[
                ("name", "SIEM"),
                ("url", &receiver.url("/hook")),
                ("events", "backup_code"),
            ],
        )
        .await;
        let hook_added = last_added(&database).await;
        sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[1])).await;
        let wanted: Vec<AuditRow> = audit_rows(&database)
            .await
            .into_iter()
            .filter(|e| e.id > hook_added && family(&e.action) == "backup_code")
            .collect();
        assert_eq!(wanted.len(), 1, "{wanted:#?}");

        // Refused twice, then taken: three requests, one delivery.
        receiver.wait_for(3, ARRIVAL).await;
        tokio::time::sleep(A_FEW_TICKS).await;
        let received = receiver.received();
        assert_eq!(
            received.iter().map(|h| h.answered).collect::<Vec<_>>(),
            [500, 500, 200],
            "{:?}: {received:#?}",
            database.backend
        );
        let id = received[0].id.clone().expect("webhook-id");
        for hook in &received {
            assert_eq!(hook.id.as_ref(), Some(&id), "{received:#?}");
            assert_delivery_of(hook, &secret, &wanted[0]);
        }
        let rows = deliveries_until(&database, |row| row.sent).await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].key, id);
        assert_eq!(rows[0].attempts, 3);
        assert!(!rows[0].failed);

        let page = get_page(&client, &server, &owner, "/admin/webhooks").await;
        assert_eq!(listed(&page, "Delivered"), 1, "{page:.8000}");
        server.terminate().await;
    }
}

#[tokio::test]
async fn a_delivery_given_up_on_is_marked_failed_and_on_the_record() {
    for database in fresh_databases().await {
        // The test key: the chain the worker extends is verified by the CLI, which uses it.
        let key = secret_key();
        let codes = owner_with_codes(&database, &key).await;
        let receiver = WebhookReceiver::start().await;
        receiver.fail_always(true);
        let server = start(
            &database,
            &key,
            &[
                ("LIFELINE_MAIL_RETRY_SECONDS", "1"),
                ("LIFELINE_MAIL_ATTEMPTS", "2"),
            ],
        )
        .await;
        let client = client();
        let owner =
            sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[0])).await;
        // Every event: its own `webhook.added` too, and a sign-in after it.
        let secret = add_with_form(
            &client,
            &server,
            &owner,
            &[("name", "SIEM"), ("url", &receiver.url("/hook"))],
        )
        .await;
        sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[1])).await;

        let rows = deliveries_until(&database, |row| row.failed).await;
        // The last give-up is recorded just after its row is marked.
        let deadline = tokio::time::Instant::now() + ARRIVAL;
        let mut failures = Vec::new();
        while tokio::time::Instant::now() < deadline {
            failures = audit_rows(&database)
                .await
                .into_iter()
                .filter(|e| e.action == "webhook.delivery_failed")
                .collect();
            if failures.len() >= rows.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(A_FEW_TICKS).await;
        let rows = deliveries(&database).await;
        assert!(
            rows.iter().any(|row| row.kind == "webhook.added")
                && rows.iter().any(|row| row.kind == "backup_code.redeemed"),
            "{rows:#?}"
        );
        // A failure of its own is not sent to the webhook that failed.
        assert!(
            rows.iter().all(|row| row.kind != "webhook.delivery_failed"),
            "{rows:#?}"
        );
        let received = receiver.received();
        for row in &rows {
            assert!(row.failed && !row.sent, "{row:#?}");
            assert_eq!(row.attempts, 2, "{row:#?}");
            let sent: Vec<&ReceivedHook> = received
                .iter()
                .filter(|hook| hook.id.as_ref() == Some(&row.key))
                .collect();
            assert_eq!(
                sent.len(),
                2,
                "{:?}: {row:#?} {received:#?}",
                database.backend
            );
            for hook in sent {
                assert_eq!(hook.answered, 500);
                assert!(hook.signed_with(&secret));
            }
            // Recorded once, for the organization, naming the webhook, event and delivery.
            let recorded: Vec<&AuditRow> = failures
                .iter()
                .filter(|e| e.details["delivery"] == row.key.as_str())
                .collect();
            assert_eq!(recorded.len(), 1, "{row:#?} {failures:#?}");
            let details = &recorded[0].details;
            assert_eq!(details["webhook"], row.webhook_id, "{details}");
            assert_eq!(details["event"], row.kind.as_str(), "{details}");
            assert_eq!(details["attempts"], 2, "{details}");
            assert_eq!(recorded[0].outcome, "failure");
        }
        assert_eq!(failures.len(), rows.len(), "{failures:#?}");
        assert_eq!(received.len(), 2 * rows.len(), "{received:#?}");

        let page = get_page(&client, &server, &owner, "/admin/webhooks").await;
        assert_eq!(listed(&page, "Failed"), rows.len(), "{page:.8000}");
        assert_eq!(listed(&page, "Delivered") + listed(&page, "Waiting"), 0);
        // The events the worker wrote are links of the chain like any other.
        let (ok, stdout, stderr) =
            cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(ok && stdout.contains("is intact"), "{stdout}{stderr}");
        server.terminate().await;
    }
}

#[tokio::test]
async fn a_refused_webhook_writes_nothing() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        create_user(&database.url, "acme", "admin@acme.test", "admin").await;
        let server = start(&database, &key, &[]).await;
        let client = client();
        let owner =
            sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[0])).await;
        let admin = sign_in(&client, &server, "admin@acme.test").await;
        let before = audit_rows(&database).await.len();

        // (fields, the field at fault)
        let refused: [(&[(&str, &str)], &str); 5] = [
            (
                &[
                    ("name", "SIEM"),
                    ("url", "http://siem.example.com/"),
                    ("events", "backup_code"),
                ],
                "url",
            ),
            (&[("name", "SIEM"), ("url", "")], "url"),
            (
                &[("name", "   "), ("url", "https://siem.example.com/in")],
                "name",
            ),
            (&[("url", "https://siem.example.com/in")], "name"),
            (
                &[
                    ("name", "SIEM"),
                    ("url", "https://siem.example.com/in"),
                    ("events", "nonsense"),
                ],
                "events",
            ),
        ];
        for (fields, field) in refused {
            let answer = post_add_form(&client, &server.base_url, &owner, fields).await;
            let what = format!("{:?}: {fields:?}", database.backend);
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{what}: {:.3000}",
                answer.body
            );
            assert!(
                answer.body.contains(&format!("id=\"{field}-error\"")),
                "{what}: no error for {field}: {:.8000}",
                answer.body
            );
            assert!(secret_on_page(&answer.body).is_none(), "{what}");
        }
        // The same through the server function, as the hydrated app would call it.
        let answer = post(
            &client,
            &server,
            "/api/admin/webhooks/add",
            Some(&owner),
            &[("name", "SIEM"), ("url", "http://siem.example.com/")],
        )
        .await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let error: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(error["Invalid"]["field"], "url", "{error}");

        // An admin is not an owner: refused, whatever the form holds.
        let answer = post_add_form(
            &client,
            &server.base_url,
            &admin,
            &[("name", "SIEM"), ("url", "https://siem.example.com/in")],
        )
        .await;
        assert!(answer.status.as_u16() < 500, "{}", answer.status);
        assert!(
            answer.body.contains("You are not allowed to do that."),
            "{:.5000}",
            answer.body
        );
        assert!(secret_on_page(&answer.body).is_none());

        assert_eq!(number(&database, "SELECT COUNT(*) FROM webhook").await, 0);
        assert!(deliveries(&database).await.is_empty());
        // Nothing on the record but the admin's refused attempt.
        let after = audit_rows(&database).await;
        let new: Vec<&AuditRow> = after[before..].iter().collect();
        assert_eq!(new.len(), 1, "{new:#?}");
        assert_eq!(
            (new[0].action.as_str(), new[0].outcome.as_str()),
            ("webhook.added", "denied")
        );

        // Without LIFELINE_WEBHOOKS_ALLOW_LOOPBACK_HTTP, `http://` to this machine is refused
        // too. (The session is in the database: the same one signs in there.)
        server.terminate().await;
        let strict = Server::start_with_key(&database.url, &key, &[]).await;
        let answer = post_add_form(
            &client,
            &strict.base_url,
            &owner,
            &[("name", "SIEM"), ("url", "http://127.0.0.1:9/hook")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{:.3000}", answer.body);
        assert!(
            answer.body.contains("id=\"url-error\""),
            "{:.8000}",
            answer.body
        );
        assert_eq!(number(&database, "SELECT COUNT(*) FROM webhook").await, 0);
        let log = strict.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        strict.terminate().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_forms_at_once_add_exactly_the_most_an_organization_may_have() {
    const BURST: usize = 200;
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let server = start(&database, &key, &[]).await;
        let client = client();
        let owner =
            sign_in_with(&client, &server, OWNER, SecondFactor::BackupCode(&codes[0])).await;

        let mut burst = tokio::task::JoinSet::new();
        for i in 0..BURST {
            let (client, base_url, owner) =
                (client.clone(), server.base_url.clone(), owner.clone());
            burst.spawn(async move {
                let name = format!("SIEM {i}");
                let url = format!("https://siem.example.com/in/{i}");
                post_add_form(
                    &client,
                    &base_url,
                    &owner,
                    &[("name", &name), ("url", &url), ("events", "backup_code")],
                )
                .await
            });
        }
        let mut secrets = Vec::new();
        let mut full = 0;
        while let Some(answer) = burst.join_next().await {
            let answer = answer.unwrap();
            assert!(
                answer.status.as_u16() < 500,
                "{:?}: {} {:.2000}",
                database.backend,
                answer.status,
                answer.body
            );
            if let Some(secret) = secret_on_page(&answer.body) {
                secrets.push(secret);
            } else {
                assert!(
                    answer.body.contains("id=\"name-error\"")
                        && answer.body.contains(&format!(
                            "Your organization has {MAX_PER_ORG} webhooks, the most it may have"
                        )),
                    "{:?}: neither added nor refused for being full: {:.8000}",
                    database.backend,
                    answer.body
                );
                full += 1;
            }
        }
        secrets.sort();
        secrets.dedup();
        assert_eq!(secrets.len(), MAX_PER_ORG, "{:?}", database.backend);
        assert_eq!(full, BURST - MAX_PER_ORG);
        assert_eq!(
            number(&database, "SELECT COUNT(*) FROM webhook").await,
            MAX_PER_ORG as i64
        );
        let added = audit_rows(&database)
            .await
            .into_iter()
            .filter(|e| e.action == "webhook.added")
            .count();
        assert_eq!(added, MAX_PER_ORG, "{:?}", database.backend);
        let log = server.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        server.terminate().await;
    }
}
