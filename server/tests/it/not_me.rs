//! "This wasn't me" through the real binary and a real SMTP server: the link in the message
//! about a backup-code sign-in opens a page naming the account; confirming stops the codes,
//! ends the member's sessions and records `incident.reported`, once; the same link sent 200
//! times at once makes one report; a second click, a tampered link and an unknown one are
//! refused with their reason and write nothing.

use std::time::Duration;

use domain::{
    secrets::SecretKey,
    testing::{TestDatabase, fresh_databases},
};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{
    client::{
        SecondFactor, client, password_step, post, second_factor_step, sign_in_with,
        signed_in_email, succeeded,
    },
    organizations::owner_with_codes,
    process::Server,
    smtp::{ReceivedMail, SmtpSink, has_code_like_run},
};

/// The subject of the message a backup-code sign-in sends.
const SIGN_IN_SUBJECT: &str = "A backup code was used to sign in";

/// One number the database answers.
async fn count(database: &TestDatabase, sql: &str) -> i64 {
    let backend = database.db.get_database_backend();
    database
        .db
        .query_one(Statement::from_string(
            backend,
            format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {sql}"),
        ))
        .await
        .unwrap()
        .expect("a count")
        .try_get("", "n")
        .unwrap()
}

/// The "This wasn't me" link in a message's text part.
fn not_me_link(mail: &ReceivedMail) -> String {
    let text = mail.decoded();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("This wasn't me: "))
        .unwrap_or_else(|| panic!("no link in {text}"));
    line.trim().to_owned()
}

/// The token of a link.
fn token_of(link: &str) -> String {
    link.split_once("token=").expect("a token").1.to_owned()
}

/// Waits for the message whose subject has `subject`, up to ten seconds.
async fn message_about(sink: &SmtpSink, subject: &str) -> ReceivedMail {
    for _ in 0..200 {
        if let Some(mail) = sink
            .messages()
            .into_iter()
            .find(|mail| mail.decoded().contains(subject))
        {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message about {subject:?}: {:?}", sink.messages());
}

async fn report(server: &Server, token: &str) -> reqwest::Response {
    post(
        &client(),
        server,
        "/api/not_me/report",
        None,
        &[("token", token)],
    )
    .await
}

#[tokio::test]
async fn the_link_in_a_sign_in_message_secures_the_account_once() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let sink = SmtpSink::start().await;
        let smtp_url = sink.url();
        let server = Server::start_with_key(
            &database.url,
            &key,
            &[("LIFELINE_SMTP_URL", smtp_url.as_str())],
        )
        .await;
        let http = client();
        let signed_in = sign_in_with(
            &http,
            &server,
            "owner@acme.test",
            SecondFactor::BackupCode(&codes[3]),
        )
        .await;

        let mail = message_about(&sink, SIGN_IN_SUBJECT).await;
        assert_eq!(mail.envelope_to, ["owner@acme.test"]);
        let link = not_me_link(&mail);
        assert!(link.starts_with(&server.url("/not-me?token=")), "{link}");
        assert!(!has_code_like_run(&mail.raw), "{}", mail.raw);
        let token = token_of(&link);

        // The page names the account and asks for nothing secret.
        let page = http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.unwrap();
        assert!(body.contains("owner@acme.test"), "{body}");
        assert!(body.contains("secure my account"), "{body}");
        assert!(!body.contains("type=\"password\""), "{body}");

        // Tampered and unknown links: refused with their reason, nothing written.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [tampered.as_str(), "1.1.nonsense.1.1.x", ""] {
            let refused = report(&server, bad).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{bad}");
            let text = refused.text().await.unwrap();
            assert!(text.contains("not one Lifeline sent"), "{bad}: {text}");
        }
        let page = http
            .get(server.url(&format!("/not-me?token={tampered}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("not one Lifeline sent"), "{page}");
        assert_eq!(count(&database, "incident_report").await, 0);

        // Confirmed: the report is taken once.
        let taken = report(&server, &token).await;
        assert!(succeeded(taken.status()), "{}", taken.status());
        assert_eq!(count(&database, "incident_report").await, 1);
        assert_eq!(
            count(
                &database,
                "audit_event WHERE action = 'incident.reported' AND target_id = 1"
            )
            .await,
            1
        );
        // The session that signed in with the code is over.
        assert_eq!(signed_in_email(&http, &server, &signed_in).await, None);
        // The codes left no longer work.
        let pending =
            password_step(&http, &server, "owner@acme.test", crate::support::PASSWORD).await;
        let refused = second_factor_step(
            &http,
            &server,
            &pending,
            SecondFactor::BackupCode(&codes[5]),
        )
        .await;
        assert!(!succeeded(refused.status()), "{}", refused.status());

        // A second click says it was used, and writes nothing more.
        let again = report(&server, &token).await;
        assert_eq!(again.status(), StatusCode::FORBIDDEN);
        assert!(again.text().await.unwrap().contains("already used"));
        let page = http.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("already used"), "{page}");
        assert_eq!(count(&database, "incident_report").await, 1);

        // The member hears that the report was taken, without a second link.
        let confirmation = message_about(&sink, "You reported that something").await;
        assert!(!confirmation.decoded().contains("This wasn't me: "));
        server.terminate().await;
    }
}

#[tokio::test]
async fn two_hundred_clicks_at_once_make_one_report() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let sink = SmtpSink::start().await;
        let smtp_url = sink.url();
        let server = Server::start_with_key(
            &database.url,
            &key,
            &[("LIFELINE_SMTP_URL", smtp_url.as_str())],
        )
        .await;
        sign_in_with(
            &client(),
            &server,
            "owner@acme.test",
            SecondFactor::BackupCode(&codes[0]),
        )
        .await;
        let mail = message_about(&sink, SIGN_IN_SUBJECT).await;
        let token = token_of(&not_me_link(&mail));

        let answers = futures::future::join_all((0..200).map(|_| report(&server, &token))).await;
        let statuses: Vec<StatusCode> = answers.iter().map(reqwest::Response::status).collect();
        let taken = statuses.iter().filter(|s| succeeded(**s)).count();
        let used = statuses
            .iter()
            .filter(|s| **s == StatusCode::FORBIDDEN)
            .count();
        assert_eq!(
            (taken, used),
            (1, 199),
            "{:?}: {statuses:?}",
            database.backend
        );
        assert_eq!(count(&database, "incident_report").await, 1);
        assert_eq!(
            count(&database, "audit_event WHERE action = 'incident.reported'").await,
            1
        );
        server.terminate().await;
    }
}
