//! Webhooks on every backend: every audit event reaches each webhook that wants its family
//! exactly once, with the audit row's chain fields; the secret is stored sealed and opens only
//! with the server's key; only owners manage webhooks, and a refusal writes nothing; the
//! per-organization maximum and "remove once" hold when 200 requests arrive at once.

use std::sync::Arc;

use domain::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    notifications::webhooks::{self, MAX_PER_ORG, NewWebhook, UrlRules},
    org_policy::{
        PolicyChangeError,
        webhooks::{WebhookForm, add_webhook, remove_webhook},
    },
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::fixtures::{add_member, owner, t0};

/// The webhook form for `name` at `url`, subscribed to `families` (none: every event).
fn hook(name: &str, families: &[&str]) -> NewWebhook {
    WebhookForm {
        name: name.to_owned(),
        url: "https://siem.example.com/hooks/lifeline".to_owned(),
        events: families.iter().map(|f| (*f).to_owned()).collect(),
    }
    .parse(&UrlRules::default())
    .unwrap()
}

fn placeholder(test_db: &TestDatabase, n: usize) -> String {
    if test_db.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

/// The deliveries written for webhook `id`: (kind, JSON body), oldest first.
async fn deliveries(test_db: &TestDatabase, id: i32) -> Vec<(String, serde_json::Value)> {
    let backend = test_db.db.get_database_backend();
    test_db
        .db
        .query_all(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT kind, body_text FROM notification_outbox WHERE webhook_id = {} ORDER BY id",
                placeholder(test_db, 1)
            ),
            [Value::from(id)],
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let body: String = row.try_get("", "body_text").unwrap();
            (
                row.try_get("", "kind").unwrap(),
                serde_json::from_str(&body).unwrap(),
            )
        })
        .collect()
}

/// The latest audit event of `action`: (hash, prev_hash, seq).
async fn latest_event(test_db: &TestDatabase, action: &str) -> (String, String, i64) {
    let backend = test_db.db.get_database_backend();
    let row = test_db
        .db
        .query_one(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT hash, prev_hash, seq FROM audit_event WHERE action = {} \
                 ORDER BY id DESC LIMIT 1",
                placeholder(test_db, 1)
            ),
            [Value::from(action)],
        ))
        .await
        .unwrap()
        .unwrap();
    let seq: i64 = row
        .try_get::<i64>("", "seq")
        .or_else(|_| row.try_get::<i32>("", "seq").map(i64::from))
        .unwrap();
    (
        row.try_get("", "hash").unwrap(),
        row.try_get("", "prev_hash").unwrap(),
        seq,
    )
}

async fn count(test_db: &TestDatabase, sql: &str) -> i64 {
    let backend = test_db.db.get_database_backend();
    let row = test_db
        .db
        .query_one(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n")
        .or_else(|_| row.try_get::<i32>("", "n").map(i64::from))
        .unwrap()
}

async fn set_up(test_db: &TestDatabase) -> (Member, Authz) {
    let owner = owner(test_db, &PasswordHasher::new(2).unwrap()).await;
    (owner, Authz::load(&test_db.db).await.unwrap())
}

#[tokio::test]
async fn every_event_reaches_each_webhook_that_wants_its_family_once() {
    for test_db in migrated_databases().await {
        let (owner, authz) = set_up(&test_db).await;
        let source = Source::default();
        let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
        let all = add_webhook(&cmd, &hook("SIEM", &[])).await.unwrap();
        let codes = add_webhook(&cmd, &hook("Codes only", &["backup_codes", "backup_code"]))
            .await
            .unwrap();
        let (all_id, codes_id) = (all.webhook.id, codes.webhook.id);
        // Each registration is an event: the first webhook hears of its own (its first
        // delivery says it is connected) and of the second's.
        let before_all = deliveries(&test_db, all_id).await.len();
        assert_eq!(before_all, 2, "{:?}", test_db.backend);
        assert!(deliveries(&test_db, codes_id).await.is_empty());

        // Every action Lifeline records, one event each: a new action joins by itself.
        let (mut seen_all, mut seen_codes) = (before_all, 0);
        for action in AuditAction::ALL.iter().copied() {
            let failed_delivery = action == AuditAction::WebhookDeliveryFailed;
            let details = if failed_delivery {
                serde_json::json!({ "webhook": all_id, "event": "mfa.enabled" })
            } else {
                serde_json::json!({})
            };
            let event = Event {
                action,
                actor: Some(&owner),
                target: Some(&owner),
                outcome: Outcome::Success,
                details,
            };
            audit::record(&test_db.db, owner.org_id, event, &source, t0())
                .await
                .unwrap();
            let to_all = deliveries(&test_db, all_id).await;
            let to_codes = deliveries(&test_db, codes_id).await;
            // A failed delivery is never told to the webhook that failed: it would fail again.
            let wanted_all = usize::from(!failed_delivery);
            let family = webhooks::family(action.as_str());
            let wanted_codes = usize::from(family == "backup_codes" || family == "backup_code");
            let on = &test_db.backend;
            assert_eq!(to_all.len() - seen_all, wanted_all, "{action:?} on {on:?}");
            assert_eq!(
                to_codes.len() - seen_codes,
                wanted_codes,
                "{action:?} on {on:?}"
            );
            (seen_all, seen_codes) = (to_all.len(), to_codes.len());
            if wanted_all == 1 {
                let (kind, body) = to_all.last().unwrap();
                assert_eq!(kind, action.as_str());
                let (hash, prev_hash, seq) = latest_event(&test_db, action.as_str()).await;
                assert_eq!(body["type"], action.as_str());
                assert_eq!(body["data"]["action"], action.as_str());
                assert_eq!(body["data"]["hash"], hash.as_str());
                assert_eq!(body["data"]["prev_hash"], prev_hash.as_str());
                assert_eq!(body["data"]["seq"], seq);
                assert_eq!(body["data"]["actor"], "owner@acme.test");
            }
            if wanted_codes == 1 {
                assert_eq!(to_codes.last().unwrap().0, action.as_str());
            }
        }
        // One delivery per event and webhook: the events above plus the registrations.
        let delivered_all = deliveries(&test_db, all_id).await.len();
        assert_eq!(
            delivered_all,
            before_all + AuditAction::ALL.len() - 1,
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn the_secret_is_sealed_and_opens_only_with_the_server_key() {
    for test_db in migrated_databases().await {
        let (owner, authz) = set_up(&test_db).await;
        let source = Source::default();
        let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
        let added = add_webhook(&cmd, &hook("SIEM", &[])).await.unwrap();
        let shown = added.secret.reveal();
        assert!(shown.starts_with("whsec_"), "{shown}");

        // The stored bytes are not the secret's.
        let backend = test_db.db.get_database_backend();
        let row = test_db
            .db
            .query_one(Statement::from_string(
                backend,
                "SELECT secret FROM webhook".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        let stored: Vec<u8> = row.try_get("", "secret").unwrap();
        let raw = base64_decode(shown.trim_start_matches("whsec_"));
        assert!(
            !stored
                .windows(raw.len())
                .any(|window| window == raw.as_slice()),
            "the secret is stored in plaintext"
        );

        let key = domain::audit::keys::installed().unwrap();
        let target = webhooks::target(&test_db.db, &key, added.webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(target.secret.reveal(), shown);
        let other = SecretKey::generate();
        assert!(
            webhooks::target(&test_db.db, &other, added.webhook.id)
                .await
                .is_err()
        );

        // `lifeline rotate-key`: re-sealed under the new version, the same secret.
        let rotated = key.with_new_version();
        assert_eq!(
            webhooks::reseal_secrets(&test_db.db, &rotated)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            webhooks::reseal_secrets(&test_db.db, &rotated)
                .await
                .unwrap(),
            0
        );
        let target = webhooks::target(&test_db.db, &rotated, added.webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(target.secret.reveal(), shown);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn only_owners_manage_webhooks_and_a_refusal_writes_nothing() {
    for test_db in migrated_databases().await {
        let (owner, authz) = set_up(&test_db).await;
        let hasher = PasswordHasher::new(2).unwrap();
        let source = Source::default();
        for role in [Role::Admin, Role::Member] {
            let email = format!("{}@acme.test", role.as_str());
            let actor = add_member(&test_db, &hasher, owner.org_id, &email, role).await;
            let cmd = Command::new(&test_db.db, &authz, &actor, &source, t0());
            assert!(matches!(
                add_webhook(&cmd, &hook("SIEM", &[])).await,
                Err(PolicyChangeError::NotAllowed)
            ));
        }
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) AS n FROM webhook").await,
            0
        );
        assert_eq!(
            count(
                &test_db,
                "SELECT COUNT(*) AS n FROM audit_event \
                 WHERE action = 'webhook.added' AND outcome = 'denied'"
            )
            .await,
            2,
            "each refusal is on the record"
        );

        let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
        let added = add_webhook(&cmd, &hook("SIEM", &[])).await.unwrap();
        let admin = add_member(&test_db, &hasher, owner.org_id, "a2@acme.test", Role::Admin).await;
        let as_admin = Command::new(&test_db.db, &authz, &admin, &source, t0());
        assert!(matches!(
            remove_webhook(&as_admin, added.webhook.id).await,
            Err(PolicyChangeError::NotAllowed)
        ));
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) AS n FROM webhook").await,
            1
        );
    }
}

#[tokio::test]
async fn the_maximum_and_remove_once_hold_under_200_requests_at_once() {
    for test_db in migrated_databases().await {
        let (owner, authz) = set_up(&test_db).await;
        let test_db = Arc::new(test_db);
        let owner = Arc::new(owner);
        let authz = Arc::new(authz);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (test_db, owner, authz) = (test_db.clone(), owner.clone(), authz.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
                    add_webhook(&cmd, &hook(&format!("Hook {i}"), &[])).await
                })
            })
            .collect();
        let mut added = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(registered) => added.push(registered.webhook.id),
                Err(PolicyChangeError::Invalid(field)) => {
                    assert_eq!(field.field, "name");
                    assert!(
                        field.message.contains("remove one first"),
                        "{}",
                        field.message
                    );
                }
                Err(other) => panic!("{:?}: {other:?}", test_db.backend),
            }
        }
        assert_eq!(added.len() as u64, MAX_PER_ORG, "{:?}", test_db.backend);
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) AS n FROM webhook").await,
            MAX_PER_ORG as i64
        );
        assert_eq!(
            count(
                &test_db,
                "SELECT COUNT(*) AS n FROM audit_event \
                 WHERE action = 'webhook.added' AND outcome = 'success'"
            )
            .await,
            MAX_PER_ORG as i64
        );

        // 200 removals of one webhook at once: one removes it, the rest are told it is gone.
        let doomed = added[0];
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (test_db, owner, authz) = (test_db.clone(), owner.clone(), authz.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
                    remove_webhook(&cmd, doomed).await
                })
            })
            .collect();
        let mut removed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => removed += 1,
                Err(PolicyChangeError::UnknownWebhook) => {}
                Err(other) => panic!("{:?}: {other:?}", test_db.backend),
            }
        }
        assert_eq!(removed, 1, "{:?}", test_db.backend);
        assert_eq!(
            count(
                &test_db,
                "SELECT COUNT(*) AS n FROM audit_event WHERE action = 'webhook.removed'"
            )
            .await,
            1
        );
        // What it had still to deliver went with it.
        assert!(deliveries(&test_db, doomed).await.is_empty());
    }
}
