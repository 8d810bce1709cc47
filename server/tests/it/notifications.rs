//! Security mail through the real binary: a backup-code sign-in leaves exactly one message
//! (multipart, with the facts, no code) as an `.eml` file, the default transport; and over
//! SMTP to a real SMTP server ([`SmtpSink`]): a message a worker claimed and never marked (a
//! crash) goes out once after a restart; with the SMTP server down nothing is lost, attempts
//! are counted, and the message goes out once, to its recipient, when the server is back.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::Utc;
use domain::{
    notifications::{self, Message, Rendered},
    secrets::SecretKey,
    testing::{TestDatabase, fresh_databases},
};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::support::{
    client::{SecondFactor, client, sign_in_with},
    organizations::owner_with_codes,
    process::Server,
    smtp::{SmtpSink, decoded, has_code_like_run},
};

/// The `.eml` files in a server's mail folder.
fn mail_files(workdir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(workdir.join("data/mail")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    files
}

/// Waits up to ten seconds for at least one `.eml` file, then a moment more for any second
/// one, and returns them all.
async fn delivered(workdir: &Path) -> Vec<PathBuf> {
    for _ in 0..100 {
        if !mail_files(workdir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more rounds of the worker: a duplicate would show by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    mail_files(workdir)
}

/// Empties the outbox: the set-up (multi-factor turned on, codes generated) writes notices
/// of its own, and these tests are about the messages that come after it.
async fn forget_set_up_notices(database: &TestDatabase) {
    let backend = database.db.get_database_backend();
    database
        .db
        .execute(Statement::from_string(
            backend,
            "DELETE FROM notification_outbox".to_owned(),
        ))
        .await
        .unwrap();
}

/// The id of the one outbox row of this kind.
async fn outbox_id(database: &TestDatabase, kind: &str) -> i32 {
    let backend = database.db.get_database_backend();
    let rows = database
        .db
        .query_all(Statement::from_sql_and_values(
            backend,
            match backend {
                DatabaseBackend::Postgres => "SELECT id FROM notification_outbox WHERE kind = $1",
                _ => "SELECT id FROM notification_outbox WHERE kind = ?",
            },
            [kind.into()],
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "outbox rows of kind {kind}");
    rows[0].try_get("", "id").unwrap()
}

/// One value of the outbox row with this id, as an integer.
async fn outbox_number(database: &TestDatabase, id: i32, expression: &str) -> i64 {
    let backend = database.db.get_database_backend();
    let row = database
        .db
        .query_one(Statement::from_string(
            backend,
            format!(
                "SELECT CAST({expression} AS BIGINT) AS n FROM notification_outbox WHERE id = {id}"
            ),
        ))
        .await
        .unwrap()
        .expect("the outbox row");
    row.try_get("", "n").unwrap()
}

/// The idempotency key of the outbox row with this id: its message's `Message-ID`.
async fn outbox_key(database: &TestDatabase, id: i32) -> String {
    let backend = database.db.get_database_backend();
    let row = database
        .db
        .query_one(Statement::from_string(
            backend,
            format!("SELECT idempotency_key FROM notification_outbox WHERE id = {id}"),
        ))
        .await
        .unwrap()
        .expect("the outbox row");
    row.try_get("", "idempotency_key").unwrap()
}

/// Whether the outbox row with this id is marked sent.
async fn is_sent(database: &TestDatabase, id: i32) -> bool {
    outbox_number(database, id, "CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END").await == 1
}

#[tokio::test]
async fn a_backup_code_sign_in_sends_one_multipart_message_with_the_facts_and_no_code() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        forget_set_up_notices(&database).await;
        let server = Server::start_with_key(&database.url, &key, &[]).await;
        assert!(
            server
                .log()
                .iter()
                .any(|line| line.contains("security mail is written as .eml files under")),
            "{:?}",
            server.log()
        );
        let client = client();
        sign_in_with(
            &client,
            &server,
            "owner@acme.test",
            SecondFactor::BackupCode(&codes[3]),
        )
        .await;

        let files = delivered(server.workdir()).await;
        assert_eq!(files.len(), 1, "{:?}: {files:?}", database.backend);
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        let message = decoded(&raw);
        assert!(message.contains("multipart/alternative"), "{raw}");
        assert!(message.contains("text/plain"), "{raw}");
        assert!(message.contains("text/html"), "{raw}");
        assert!(message.contains("To: owner@acme.test"), "{raw}");
        assert!(
            message.contains("From: Lifeline <lifeline@localhost>"),
            "{raw}"
        );
        assert!(message.contains("Auto-Submitted: auto-generated"), "{raw}");
        assert!(message.contains("Backup code number 4"), "{message}");
        assert!(message.contains("9 unused backup codes"), "{message}");
        assert!(message.contains("127.0.0.1"), "{message}");
        // Its key names the file and is its Message-ID.
        let stem = files[0].file_stem().unwrap().to_str().unwrap();
        assert!(
            message.contains(&format!("Message-ID: <{stem}@localhost>")),
            "{raw}"
        );
        assert!(
            message.contains(&format!("X-Lifeline-Notification-Id: {stem}")),
            "{raw}"
        );
        for text in [&raw, &message] {
            assert!(!has_code_like_run(text), "{text}");
            for code in &codes {
                assert!(!text.contains(code.as_str()));
            }
        }
        server.terminate().await;
    }
}

/// Writes a message to the outbox as a sign-in would have, `minutes_ago`, for member 1.
async fn enqueue(database: &TestDatabase, minutes_ago: i64) -> String {
    notifications::enqueue(
        &database.db,
        Message {
            org_id: 1,
            user_id: Some(1),
            kind: "backup_code.redeemed",
            recipient: "owner@acme.test",
            rendered: Rendered {
                subject: "A backup code was used to sign in to your account".into(),
                text: "Backup code number 2 of your set was used to sign in.\n".into(),
                html: "<p>Backup code number 2 of your set was used to sign in.</p>\n".into(),
            },
        },
        Utc::now() - chrono::Duration::minutes(minutes_ago),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_message_claimed_by_a_worker_that_died_is_delivered_once_after_a_restart() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        owner_with_codes(&database, &key).await;
        forget_set_up_notices(&database).await;
        let written = enqueue(&database, 20).await;
        // A worker claimed it ten minutes ago for one minute, sent it perhaps, and died
        // before marking it: its claim has run out.
        let claimed = notifications::claim_due(
            &database.db,
            Utc::now() - chrono::Duration::minutes(10),
            10,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(claimed.len(), 1);
        let id = claimed[0].id;
        assert!(!is_sent(&database, id).await);

        // Over SMTP a second send would be a second message (a file would be replaced).
        let sink = SmtpSink::start().await;
        let smtp_url = sink.url();
        let server = Server::start_with_key(
            &database.url,
            &key,
            &[("LIFELINE_SMTP_URL", smtp_url.as_str())],
        )
        .await;
        sink.wait_for(1, Duration::from_secs(10)).await;
        // Two more rounds of the worker: a duplicate would show by now.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "{:?}: {messages:?}", database.backend);
        assert_eq!(messages[0].envelope_to, ["owner@acme.test"]);
        let message = messages[0].decoded();
        assert!(
            message.contains(&format!("Message-ID: <{written}@localhost>")),
            "{message}"
        );
        assert!(is_sent(&database, id).await);
        assert_eq!(outbox_number(&database, id, "attempts").await, 1);
        assert!(mail_files(server.workdir()).is_empty());
        server.terminate().await;

        // Started again, it sends nothing more.
        let again = Server::start_with_key(
            &database.url,
            &key,
            &[("LIFELINE_SMTP_URL", smtp_url.as_str())],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(sink.messages().len(), 1);
        again.terminate().await;
    }
}

#[tokio::test]
async fn with_the_smtp_server_unreachable_nothing_is_lost_and_delivery_resumes() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        forget_set_up_notices(&database).await;
        // A real SMTP server, taken down: its port is known and refuses connections.
        let mut sink = SmtpSink::start().await;
        sink.stop().await;
        let smtp_url = sink.url();
        let server = Server::start_with_key(
            &database.url,
            &key,
            &[
                ("LIFELINE_SMTP_URL", smtp_url.as_str()),
                ("LIFELINE_MAIL_RETRY_SECONDS", "1"),
            ],
        )
        .await;
        assert!(
            server
                .log()
                .iter()
                .any(|line| line.contains("security mail is sent by SMTP")),
            "{:?}",
            server.log()
        );
        let client = client();
        sign_in_with(
            &client,
            &server,
            "owner@acme.test",
            SecondFactor::BackupCode(&codes[0]),
        )
        .await;
        let id = outbox_id(&database, "backup_code.redeemed").await;
        // The first attempt at once, the second a second later: both refused, both counted.
        let mut attempts = 0;
        for _ in 0..100 {
            attempts = outbox_number(&database, id, "attempts").await;
            if attempts >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(attempts >= 2, "{:?}: {attempts} attempts", database.backend);
        assert!(!is_sent(&database, id).await);
        assert_eq!(
            outbox_number(
                &database,
                id,
                "CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END"
            )
            .await,
            0
        );
        assert_eq!(
            outbox_number(
                &database,
                id,
                "CASE WHEN last_error IS NULL THEN 0 ELSE 1 END"
            )
            .await,
            1
        );
        assert!(sink.messages().is_empty());
        assert!(mail_files(server.workdir()).is_empty());

        // Back on the same port: the next attempt (two seconds after the second, then four
        // after that) delivers it, once.
        sink.restart().await;
        let written = outbox_key(&database, id).await;
        sink.wait_for(1, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "{:?}: {messages:?}", database.backend);
        assert_eq!(messages[0].envelope_to, ["owner@acme.test"]);
        assert_eq!(messages[0].envelope_from, "lifeline@localhost");
        let raw = &messages[0].raw;
        let message = messages[0].decoded();
        assert!(
            message.contains(&format!("Message-ID: <{written}@localhost>")),
            "{raw}"
        );
        assert!(
            message.contains(&format!("X-Lifeline-Notification-Id: {written}")),
            "{raw}"
        );
        assert!(message.contains("To: owner@acme.test"), "{raw}");
        assert!(message.contains("Backup code number 1"), "{message}");
        for text in [raw, &message] {
            assert!(!has_code_like_run(text), "{text}");
            for code in &codes {
                assert!(!text.contains(code.as_str()));
            }
        }
        assert!(is_sent(&database, id).await);
        assert!(outbox_number(&database, id, "attempts").await > attempts);
        assert!(mail_files(server.workdir()).is_empty());
        server.terminate().await;
    }
}
