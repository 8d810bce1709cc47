//! Globex's owner, admin, member, help desk and auditor call every server function, and
//! open every admin page and download, with Acme's ids and emails: nothing of Acme's comes
//! back, and nothing of it changes. The backup Globex's owner requests holds nothing of Acme's either.

use chrono::Utc;
use domain::{
    audit::Source,
    backup::Passphrase,
    secrets::SecretKey,
    testing::{TestDatabase, fresh_databases, secret_key},
};
use reqwest::{Client, StatusCode, header};
use sea_orm::{ConnectionTrait, Statement};
use sha2::{Digest, Sha256};

use super::{
    Arg, Kind, LIMITED_PER_MEMBER, SERVER_FUNCTIONS, ServerFunction,
    answers::{Answer, assert_sound, call, form, get},
    baseline_with, pairs,
    snapshot::{
        ACME_SECOND_ADDRESS, ACME_TOKEN_ID, ACME_WEBHOOK_HOST, AcmeBackups, BACKUP_PASSPHRASE,
        BackupFolder, acme_snapshot, add_acme_backups, add_acme_notification_rows,
        assert_acme_chain_intact, assert_acme_unchanged,
    },
};
use crate::support::{
    client::{client, sign_in, signed_in_email},
    organizations::{ACME_ORG, ACME_REASON, Acme, two_organizations},
    process::Server,
};

/// Acme's emails that Globex types into forms in the cross-organization calls. Acme also
/// has `hidden@acme.test`, whom Globex never names.
const TYPED_ACME_EMAILS: [&str; 3] = ["owner@acme.test", "admin@acme.test", "member@acme.test"];

/// Fails if `text` carries anything of Acme's: `markers` are strings only Acme's data has,
/// and no JSON id field may hold an Acme row's id.
fn assert_nothing_of_acme(what: &str, text: &str, markers: &[&str], acme_ids: &[i64]) {
    for marker in markers {
        assert!(
            !text.contains(marker),
            "{what}: Acme's {marker:?} in a Globex answer: {text:.3000}"
        );
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let mut found = Vec::new();
        ids_in(&json, acme_ids, &mut found);
        assert!(
            found.is_empty(),
            "{what}: Acme's ids {found:?} in a Globex answer: {text:.3000}"
        );
    }
}

/// Collects the values of id fields in `json` that are among `acme_ids`. (Globex's own
/// members and backups have ids after Acme's, and Globex has no exceptions or requests, so
/// any Acme id in an id field is Acme's row.)
fn ids_in(json: &serde_json::Value, acme_ids: &[i64], found: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let id_field = ["id", "member_id", "request_id", "exception_id", "backup_id"];
                if id_field.contains(&key.as_str())
                    && value.as_i64().is_some_and(|id| acme_ids.contains(&id))
                {
                    found.push(format!("{key}: {value}"));
                }
                ids_in(value, acme_ids, found);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                ids_in(item, acme_ids, found);
            }
        }
        _ => {}
    }
}

/// The audit page's rows may show what a Globex caller typed (a refused attempt records the
/// email asked for in its details): an echo of the caller's own input, not Acme's data. The
/// actor and target of every row must still be Globex's; the details are checked with
/// `markers` that no Globex caller ever typed, and then left out of the general check.
fn audit_rows_without_typed_details(what: &str, body: &str, untyped_markers: &[&str]) -> String {
    let Ok(mut view) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    if let Some(rows) = view.get_mut("rows").and_then(|rows| rows.as_array_mut()) {
        for row in rows {
            for field in ["actor", "target"] {
                let who = row[field].as_str().unwrap_or_default();
                assert!(!who.contains("acme"), "{what}: an Acme {field}: {row}");
            }
            let details = row["details"].as_str().unwrap_or_default().to_owned();
            for marker in untyped_markers {
                assert!(!details.contains(marker), "{what}: {marker:?} in {row}");
            }
            row["details"] = serde_json::Value::Null;
        }
    }
    view.to_string()
}

/// The values a Globex caller tries for `arg` to reach Acme's rows (none: the baseline's);
/// `webhooks` are Acme's webhooks' ids, `backups` its backups'.
fn acme_values(arg: &Arg, acme: &Acme, webhooks: &[i32], backups: &[i32]) -> Vec<String> {
    let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect();
    match (arg.kind, arg.name) {
        (Kind::Id, "member_id") => ids(&acme.member_ids),
        (Kind::Id, "exception_id") => ids(&acme.exception_ids),
        (Kind::Id, "request_id") => ids(&acme.request_ids),
        (Kind::Id, "group_id") => ids(&acme.group_ids),
        // A list filtered to Acme's group: Acme's members, were they not filtered.
        (Kind::After, "group") => ids(&acme.group_ids),
        (Kind::Id, "webhook_id") => ids(webhooks),
        (Kind::Id, "backup_id") => ids(backups),
        (Kind::Id, "token_id") => ids(&[ACME_TOKEN_ID]),
        (Kind::Version, _) => vec![acme.policy_version.to_string()],
        // From the first member on: a page that would show Acme's, were they not filtered.
        (Kind::After, _) => vec!["0".into()],
        (Kind::Before, _) => vec![i64::from(i32::MAX).to_string()],
        (_, "email" | "actor") => TYPED_ACME_EMAILS.iter().map(|e| (*e).to_owned()).collect(),
        (_, "q") => vec!["acme".into()],
        (_, "role") => vec!["owner".into()],
        _ => Vec::new(),
    }
}

/// What stands in for an Acme target that does not exist at all, for the functions where
/// Acme's row must read exactly like no row. `members/add` is left out: emails are unique
/// across organizations, and an unknown email would add a member.
fn unknown_target(function: &ServerFunction, arg: &Arg) -> Option<&'static str> {
    match (arg.kind, arg.name) {
        (Kind::Id, _) => Some(UNKNOWN_ID),
        (_, "email") if function.endpoint != "members/add" => Some("nobody@nowhere.test"),
        _ => None,
    }
}

/// Strings only Acme's data has, for answers in which no Globex caller's input is echoed.
const EVERYTHING_OF_ACME: [&str; 4] = ["@acme.test", "Acme", "acme", ACME_REASON];

/// An id no row has, which an Acme row's id must read exactly like.
const UNKNOWN_ID: &str = "2000000000";

/// The download of backup `id`.
fn backup_download(id: &str) -> String {
    format!("/admin/backup/{id}/download")
}

/// The admin console's pages and downloads, and the members page filtered to each of the
/// compliance report's standings.
fn admin_pages() -> Vec<String> {
    let pages = [
        "/admin",
        "/admin/members",
        "/admin/policy",
        "/admin/audit",
        "/admin/compliance",
        "/admin/recovery",
        "/admin/audit/export?format=csv",
        "/admin/audit/export?format=jsonl",
        "/admin/policy/export",
        "/admin/compliance/export",
        "/admin/api-tokens",
    ];
    let standings = domain::members::Standing::ALL
        .into_iter()
        .map(|standing| format!("/admin/members?standing={}", standing.slug()));
    pages
        .into_iter()
        .map(str::to_owned)
        .chain(standings)
        .collect()
}

/// Globex's pages and downloads must show nothing of Acme. Before the cross-organization
/// calls nothing at all may mention Acme; afterwards the audit log and its downloads may
/// show the Acme emails Globex typed (refused attempts record them), and are checked with
/// `untyped` markers only.
async fn assert_globex_pages_show_nothing_of_acme(
    client: &Client,
    server: &Server,
    session: &str,
    who: &str,
    markers: &[&str],
    untyped: &[&str],
    acme_ids: &[i64],
) -> usize {
    let mut tried = 0;
    for path in admin_pages() {
        let path = path.as_str();
        let answer = get(client, server, path, Some(session)).await;
        tried += 1;
        let what = format!("{who} GET {path}");
        assert_eq!(answer.status, 200, "{what}: {:.2000}", answer.body);
        let audit = path.starts_with("/admin/audit");
        assert_nothing_of_acme(
            &what,
            &answer.body,
            if audit { untyped } else { markers },
            acme_ids,
        );
        if path == "/admin/audit/export?format=jsonl" {
            for line in answer.body.lines() {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_ne!(event["org_id"], ACME_ORG, "{what}: {line}");
                for field in ["actor", "target"] {
                    let who = event[field].as_str().unwrap_or_default();
                    assert!(!who.contains("acme"), "{what}: an Acme {field}: {line}");
                }
            }
        }
    }
    tried
}

/// The archive at `path`, downloaded with `session`: the file's bytes, sent as a file.
async fn download(client: &Client, server: &Server, path: &str, session: &str) -> Vec<u8> {
    let response = client
        .get(server.url(path))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    assert!(
        response
            .headers()
            .get(header::CONTENT_DISPOSITION)
            .is_some_and(|value| value.to_str().unwrap().starts_with("attachment")),
        "GET {path}: {:?}",
        response.headers()
    );
    response.bytes().await.unwrap().to_vec()
}

/// `who` asks for the archive of each of Acme's backups: refused with `status` (404 for an
/// owner, to whom another organization's backup is one that does not exist; 403 for whoever
/// may not download backups at all), exactly as for a backup that does not exist, with no
/// file and nothing of Acme's (no id of `acme_ids`). Returns the requests made.
async fn assert_acme_archives_out_of_reach(
    client: &Client,
    server: &Server,
    session: &str,
    who: &str,
    backups: &AcmeBackups,
    status: u16,
    acme_ids: &[i64],
) -> usize {
    let none = get(client, server, &backup_download(UNKNOWN_ID), Some(session)).await;
    let mut tried = 1;
    assert_eq!(none.status, status, "{who}: no backup: {}", none.body);
    for id in &backups.ids {
        let path = backup_download(&id.to_string());
        let answer = get(client, server, &path, Some(session)).await;
        tried += 1;
        let what = format!("{who} GET {path}");
        assert!(
            (answer.status, &answer.body) == (none.status, &none.body),
            "{what}: Acme's backup reads differently from no backup: {} {} vs. {} {}",
            answer.status,
            answer.body,
            none.status,
            none.body
        );
        assert!(
            !answer.content_type.contains("octet-stream"),
            "{what}: {}",
            answer.content_type
        );
        assert_sound(&what, &answer);
        assert_nothing_of_acme(&what, &answer.body, &EVERYTHING_OF_ACME, acme_ids);
    }
    tried
}

/// The archive of Globex's backup, `bytes`, opened with its passphrase and restored into an
/// empty database of its own: Globex is all there is in it, and none of `markers` (strings
/// only Acme's data has, which no Globex caller typed) is anywhere in its file.
async fn assert_archive_holds_nothing_of_acme(bytes: Vec<u8>, key: &SecretKey, markers: &[&str]) {
    let target = TestDatabase::sqlite().await.migrated().await;
    let restored = domain::backup::restore(
        &target.db,
        key,
        std::io::Cursor::new(bytes),
        &Passphrase::to_open(BACKUP_PASSPHRASE),
        &Source::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(restored.organization.slug, "globex");
    let count = |sql: &'static str| {
        let db = &target.db;
        async move {
            db.query_one(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) AS n FROM organization").await, 1);
    assert_eq!(
        count("SELECT COUNT(*) AS n FROM user_account WHERE email LIKE '%acme%'").await,
        0
    );
    // Every byte the restore wrote, in the file and in its write-ahead log.
    let file = target.url.strip_prefix("sqlite://").unwrap();
    let mut written = std::fs::read(file).unwrap();
    written.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    let holds = |text: &str| {
        written
            .windows(text.len())
            .any(|window| window == text.as_bytes())
    };
    assert!(
        holds("owner@globex.test"),
        "the scan reads what was restored"
    );
    for marker in markers {
        assert!(!holds(marker), "Acme's {marker:?} in Globex's backup");
    }
}

#[tokio::test]
async fn globex_reaches_nothing_of_acme_through_any_server_function_or_page() {
    for database in fresh_databases().await {
        // The test key: the chain these servers extend is verified by the CLI, which uses it.
        let key = secret_key();
        let acme = two_organizations(&database, &key).await;
        let acme_webhooks = add_acme_notification_rows(&database, &key, &acme).await;
        let backups = BackupFolder::new();
        let acme_backups = add_acme_backups(&database, &key, &acme, &backups).await;
        let (folder_var, folder) = backups.server_var();
        let server = Server::start_with_key(&database.url, &key, &[(folder_var, &folder)]).await;
        let client = client();
        let mut acme_ids = acme.ids();
        acme_ids.extend(acme_backups.ids.iter().map(|&id| i64::from(id)));
        let mut tried = 0usize;

        let callers = [
            ("Globex's owner", "owner@globex.test"),
            ("Globex's admin", "admin@globex.test"),
            ("Globex's member", "member@globex.test"),
            ("Globex's help desk", "helpdesk@globex.test"),
            ("Globex's auditor", "auditor@globex.test"),
        ];
        let mut sessions = Vec::new();
        for (who, email) in callers {
            sessions.push((who, email, sign_in(&client, &server, email).await));
        }
        // Acme's owner is signed in too: nothing Globex does may end that session.
        let acme_session = sign_in(&client, &server, "owner@acme.test").await;
        let before = acme_snapshot(&database, &acme, &backups).await;

        // Strings only Acme's data has. Globex types the first three emails below; the rest
        // Globex never sends, so they may not appear even where Globex's input is echoed.
        let untyped = [
            "hidden@acme.test",
            ACME_SECOND_ADDRESS,
            ACME_WEBHOOK_HOST,
            "Acme",
            ACME_REASON,
        ];
        // Where the server keeps its files is nobody's business but the operator's.
        let insides = backups.marker();
        let everything = EVERYTHING_OF_ACME;

        // Globex's admins' pages before any Globex caller typed an Acme email: nothing.
        for (who, _, session) in &sessions[..2] {
            tried += assert_globex_pages_show_nothing_of_acme(
                &client,
                &server,
                session,
                who,
                &everything,
                &everything,
                &acme_ids,
            )
            .await;
        }

        // The help desk's and the auditor's: each page the gate opens or refuses them, with
        // nothing of Acme's either way.
        for (who, _, session) in &sessions[3..] {
            for path in admin_pages() {
                let answer = get(&client, &server, &path, Some(session)).await;
                tried += 1;
                let what = format!("{who} GET {path}");
                assert!(answer.status < 500, "{what}: {}", answer.status);
                assert_sound(&what, &answer);
                assert_nothing_of_acme(&what, &answer.body, &everything, &acme_ids);
            }
        }

        for (who, email, session) in &sessions {
            // Signing out ends the session: it goes last.
            let functions = SERVER_FUNCTIONS
                .iter()
                .filter(|f| f.endpoint != "sign_out")
                .chain(SERVER_FUNCTIONS.iter().filter(|f| f.endpoint == "sign_out"));
            for function in functions {
                // One call per Acme value of each argument that can name Acme's rows; a
                // function with no such argument is called once, as it is.
                let mut attempts = Vec::new();
                for arg in function.args {
                    for value in acme_values(arg, &acme, &acme_webhooks, &acme_backups.ids) {
                        let with =
                            |value: &str| baseline_with(function, Some((arg.name, Some(value))));
                        let unknown = unknown_target(function, arg).map(with);
                        attempts.push((with(&value), unknown));
                    }
                }
                if attempts.is_empty() {
                    attempts.push((baseline_with(function, None), None));
                }
                for (fields, unknown) in attempts {
                    let what = format!("{who}: {} {:?}", function.endpoint, pairs(&fields));
                    let answer = call(
                        &client,
                        &server,
                        function.endpoint,
                        Some(session),
                        form(&pairs(&fields)),
                    )
                    .await;
                    tried += 1;
                    assert!(
                        answer.status < 500,
                        "{what}: {} {}",
                        answer.status,
                        answer.body
                    );
                    assert_sound(&what, &answer);
                    let body = if function.endpoint == "admin/audit" {
                        audit_rows_without_typed_details(&what, &answer.body, &untyped)
                    } else {
                        answer.body.clone()
                    };
                    assert_nothing_of_acme(&what, &body, &everything, &acme_ids);
                    assert!(!answer.body.contains(&insides), "{what}: {}", answer.body);
                    // An Acme row must read exactly like a row that does not exist (but for a
                    // quota the first call used up).
                    let limited = LIMITED_PER_MEMBER.contains(&function.endpoint);
                    if let Some(unknown) = unknown.filter(|_| !limited) {
                        let none = call(
                            &client,
                            &server,
                            function.endpoint,
                            Some(session),
                            form(&pairs(&unknown)),
                        )
                        .await;
                        tried += 1;
                        assert!(
                            (none.status, &none.body) == (answer.status, &answer.body),
                            "{what}: Acme's row reads differently from no row: {} {} vs. {} {}",
                            answer.status,
                            answer.body,
                            none.status,
                            none.body
                        );
                    }
                }
                if function.endpoint == "sign_out" {
                    assert_eq!(signed_in_email(&client, &server, session).await, None);
                } else if function.endpoint == "check_status" {
                    // Still signed in as themselves after everything else.
                    assert_eq!(
                        signed_in_email(&client, &server, session).await.as_deref(),
                        Some(*email),
                        "{who}"
                    );
                }
            }
        }

        // Globex's pages and downloads, with every Globex attempt on the record now (the
        // sessions above are signed out: new ones).
        for (who, email) in &callers[..2] {
            let session = sign_in(&client, &server, email).await;
            tried += assert_globex_pages_show_nothing_of_acme(
                &client,
                &server,
                &session,
                who,
                &["@acme.test", "Acme", ACME_REASON, ACME_WEBHOOK_HOST],
                &untyped,
                &acme_ids,
            )
            .await;
            // The webhooks page is the owners' alone: Globex's owner sees the webhook their
            // call above added, and nothing of Acme's; the admin is refused.
            let answer = get(&client, &server, "/admin/webhooks", Some(&session)).await;
            tried += 1;
            let what = format!("{who} GET /admin/webhooks");
            assert!(answer.status < 500, "{what}: {}", answer.status);
            assert_sound(&what, &answer);
            assert_nothing_of_acme(&what, &answer.body, &everything, &acme_ids);
            if *email == "owner@globex.test" {
                assert_eq!(answer.status, 200, "{what}: {:.2000}", answer.body);
                assert!(
                    answer.body.contains("https://siem.example.com/in"),
                    "{what}: {:.3000}",
                    answer.body
                );
            } else {
                assert_eq!(answer.status, 403, "{what}: {:.2000}", answer.body);
            }
            // So are the backup page and the archives: Globex's owner sees their own backups
            // and gets none of Acme's archives (a backup of another organization's does not
            // exist for them); the admin gets neither.
            let owner = *email == "owner@globex.test";
            let answer = get(&client, &server, "/admin/backup", Some(&session)).await;
            tried += 1;
            let what = format!("{who} GET /admin/backup");
            assert_eq!(
                answer.status,
                if owner { 200 } else { 403 },
                "{what}: {:.2000}",
                answer.body
            );
            assert_sound(&what, &answer);
            assert_nothing_of_acme(&what, &answer.body, &everything, &acme_ids);
            assert!(!answer.body.contains(&insides), "{what}: {}", answer.body);
            tried += assert_acme_archives_out_of_reach(
                &client,
                &server,
                &session,
                who,
                &acme_backups,
                if owner { 404 } else { 403 },
                &acme_ids,
            )
            .await;
            // The plain "Reveal" form, posted with Acme's requests: no code, nothing of Acme.
            for request_id in &acme.request_ids {
                let answer = Answer::read(
                    client
                        .post(server.url("/admin/recovery"))
                        .header(header::COOKIE, format!("lifeline_session={session}"))
                        .header(header::ACCEPT, "text/html")
                        .form(&[("request_id", request_id.to_string())])
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                tried += 1;
                let what = format!("{who}: POST /admin/recovery request_id={request_id}");
                assert_eq!(answer.status, 200, "{what}");
                assert!(
                    !answer.body.contains("class=\"backup-code\""),
                    "{what}: a code revealed: {:.3000}",
                    answer.body
                );
                assert_nothing_of_acme(&what, &answer.body, &untyped, &acme_ids);
            }
        }
        // A member of Globex gets none of the admin pages and downloads.
        let member = sign_in(&client, &server, "member@globex.test").await;
        for path in admin_pages() {
            let path = path.as_str();
            let answer = get(&client, &server, path, Some(&member)).await;
            tried += 1;
            let what = format!("Globex's member GET {path}");
            if path.contains("/export") {
                assert_eq!(answer.status, 403, "{what}");
            }
            assert!(answer.status < 500, "{what}: {}", answer.status);
            assert_nothing_of_acme(&what, &answer.body, &untyped, &acme_ids);
            assert!(
                !answer.body.contains("owner@globex.test"),
                "{what}: {:.2000}",
                answer.body
            );
        }
        let answer = get(&client, &server, "/admin/webhooks", Some(&member)).await;
        tried += 1;
        assert_eq!(answer.status, 403, "Globex's member GET /admin/webhooks");
        assert_nothing_of_acme(
            "Globex's member GET /admin/webhooks",
            &answer.body,
            &everything,
            &acme_ids,
        );
        assert!(!answer.body.contains("siem.example.com"));
        let answer = get(&client, &server, "/admin/backup", Some(&member)).await;
        tried += 1;
        assert_eq!(answer.status, 403, "Globex's member GET /admin/backup");
        assert_nothing_of_acme(
            "Globex's member GET /admin/backup",
            &answer.body,
            &everything,
            &acme_ids,
        );
        tried += assert_acme_archives_out_of_reach(
            &client,
            &server,
            &member,
            "Globex's member",
            &acme_backups,
            403,
            &acme_ids,
        )
        .await;
        assert_eq!(
            signed_in_email(&client, &server, &acme_session)
                .await
                .as_deref(),
            Some("owner@acme.test"),
            "Acme's owner is still signed in"
        );

        assert_acme_unchanged(
            &before,
            &acme_snapshot(&database, &acme, &backups).await,
            "Globex",
        );

        // The backup Globex's owner requested above is built (the snapshot waited for it):
        // theirs alone, it downloads, and holds nothing of Acme's.
        let owner = sign_in(&client, &server, "owner@globex.test").await;
        let listed = call(&client, &server, "admin/backups", Some(&owner), Vec::new()).await;
        let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
        let rows = listed["backups"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "Globex's backups: {listed}");
        assert_eq!(rows[0]["state"], "Ready", "{listed}");
        assert_eq!(rows[0]["requested_by"], "owner@globex.test", "{listed}");
        let id = rows[0]["id"].as_i64().unwrap().to_string();
        let archive = download(&client, &server, &backup_download(&id), &owner).await;
        tried += 2;
        assert_eq!(
            format!("{:x}", Sha256::digest(&archive)),
            rows[0]["sha256"].as_str().unwrap()
        );
        assert_archive_holds_nothing_of_acme(archive, &key, &untyped).await;
        // Acme's owner downloads Acme's: the ids Globex tried are those of a real archive.
        let ready = acme_backups.ready.to_string();
        let archive = download(&client, &server, &backup_download(&ready), &acme_session).await;
        tried += 1;
        let sql = format!("SELECT sha256 FROM backup_job WHERE id = {ready}");
        let stored = database
            .db
            .query_one(Statement::from_string(
                database.db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "sha256")
            .unwrap();
        assert_eq!(format!("{:x}", Sha256::digest(&archive)), stored);
        assert_acme_chain_intact(&database).await;
        let log = server.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        eprintln!(
            "cross-org calls tried on {:?}: {tried}, failures: 0",
            database.backend
        );
    }
}
