//! The daily digest of administrator alerts on every backend: with it chosen, an alert is kept
//! instead of sent; at the digest hour each administrator gets one message listing what was
//! kept, however many instances write digests at once; and nothing is kept twice.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use domain::{
    audit::Source,
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::Role,
    notifications::{AlertSettings, digest},
    org_policy::{self, CodesMode, OrgPolicy, alerts::save_alerts},
    testing::migrated_databases,
};
use sea_orm::{ConnectionTrait, Statement};

use crate::fixtures::{add_member, owner, t0};

#[tokio::test]
async fn a_chosen_digest_keeps_alerts_and_sends_each_administrator_one_message_a_day() {
    for test_db in migrated_databases().await {
        let hasher = PasswordHasher::new(2).unwrap();
        let owner = owner(&test_db, &hasher).await;
        add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "admin@acme.test",
            Role::Admin,
        )
        .await;
        let authz = Authz::load(&test_db.db).await.unwrap();
        let source = Source::default();
        let cmd = |at| Command::new(&test_db.db, &authz, &owner, &source, at);
        let digest_on = AlertSettings {
            daily_digest: true,
            ..AlertSettings::default()
        };
        save_alerts(&cmd(t0()), &digest_on).await.unwrap();
        // Loosened twice: two alerts to the admin (not to the owner, who saved).
        for (version, codes) in [
            (0, CodesMode::NotAllowed),
            (1, CodesMode::Allowed),
            (2, CodesMode::NotAllowed),
            (3, CodesMode::Allowed),
        ] {
            let policy = OrgPolicy {
                codes,
                ..OrgPolicy::default()
            };
            org_policy::save(
                &cmd(t0() + Duration::minutes(version.into())),
                version,
                &policy,
            )
            .await
            .unwrap();
        }
        let backend = test_db.db.get_database_backend();
        let db = Arc::new(test_db);
        let count = |sql: String| {
            let db = db.clone();
            async move {
                db.db
                    .query_one(Statement::from_string(backend, sql))
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get::<i64>("", "n")
                    .unwrap()
            }
        };
        let alerts_sent = || {
            count(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM notification_outbox \
                 WHERE subject LIKE 'Alert:%' OR kind = 'alert.digest'"
                    .to_owned(),
            )
        };
        assert_eq!(alerts_sent().await, 0, "kept, not sent");
        assert_eq!(
            count("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM alert_digest_item".to_owned()).await,
            2
        );

        // t0 is 12:00: nothing is due until 07:00 the next day.
        assert_eq!(
            digest::send_due(&db.db, t0() + Duration::hours(18))
                .await
                .unwrap(),
            0
        );
        assert_eq!(alerts_sent().await, 0);

        // At the hour, instances writing digests at once write one.
        let due = Utc.with_ymd_and_hms(2026, 11, 28, 7, 0, 30).unwrap();
        let runs: Vec<_> = (0..20)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { digest::send_due(&db.db, due).await })
            })
            .collect();
        let mut written = 0;
        for run in runs {
            written += run.await.unwrap().unwrap();
        }
        assert_eq!(written, 1, "{backend:?}");
        let digests = db
            .db
            .query_all(Statement::from_string(
                backend,
                "SELECT recipient, subject, body_text FROM notification_outbox \
                 WHERE kind = 'alert.digest'",
            ))
            .await
            .unwrap();
        assert_eq!(digests.len(), 1);
        let recipient: String = digests[0].try_get("", "recipient").unwrap();
        let subject: String = digests[0].try_get("", "subject").unwrap();
        let text: String = digests[0].try_get("", "body_text").unwrap();
        assert_eq!(recipient, "admin@acme.test");
        assert_eq!(subject, "Lifeline daily digest: 2 alerts");
        assert_eq!(
            text.matches("the backup-code policy was loosened").count(),
            2,
            "{text}"
        );
        // Nothing is sent twice.
        assert_eq!(digest::send_due(&db.db, due).await.unwrap(), 0);
        assert_eq!(alerts_sent().await, 1);
    }
}
