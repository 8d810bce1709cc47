//! Acme's owner and a visitor with no session send every server function, and the download
//! of a backup, malformed input: each request is refused with a 4xx or answered soundly, and
//! nothing is written.

use domain::testing::{fresh_databases, secret_key};

use super::{
    Arg, Kind, Open, SERVER_FUNCTIONS, ServerFunction,
    answers::{ATTRIBUTE, Answer, SCRIPT, call, escape_into, form, get, problems},
    baseline_with,
    pages::pages_escape_what_they_show,
    pairs,
    snapshot::{
        AcmeBackups, BackupFolder, acme_snapshot, add_acme_backups, add_acme_notification_rows,
        assert_acme_chain_intact, assert_acme_unchanged,
    },
};
use crate::support::{
    client::{client, sign_in, signed_in_email},
    organizations::two_organizations,
    process::Server,
};

/// The values tried in every argument of every server function.
fn malformed_values() -> Vec<(&'static str, String)> {
    vec![
        ("letters", "abc".into()),
        ("empty", String::new()),
        ("negative", "-1".into()),
        ("i64::MAX", i64::MAX.to_string()),
        ("past i64", "99999999999999999999".into()),
        ("1e309", "1e309".into()),
        ("a fraction", "1.5".into()),
        ("10 KB", "7".repeat(10 * 1024)),
        ("a script", SCRIPT.into()),
        ("an attribute", ATTRIBUTE.into()),
        ("SQL", "' OR 1=1 --".into()),
        ("SQL", "\"; DROP TABLE user_account; --".into()),
        ("control characters", "a\u{0}b\r\nc".into()),
        ("another site", "//evil.example/x".into()),
        ("another site", "https://evil.example/".into()),
        ("another site", "/\\evil.example".into()),
        ("a script address", "javascript:alert(1)".into()),
    ]
}

/// How one malformed request differs from a function's baseline call.
enum Mutation {
    /// The baseline itself.
    Baseline,
    /// One argument with a malformed value.
    Value(Arg, String),
    /// One argument left out.
    Missing(Arg),
    /// No fields at all.
    Empty,
    /// A field the function does not take.
    Extra,
    /// One argument sent twice.
    Twice,
    /// Bytes that are not UTF-8, raw or percent-encoded, in one argument (or alone: `None`).
    NotUtf8 { arg: Option<Arg>, raw: bool },
    /// A plain value where the function takes a structure (`fields=…` for `PolicyFields`).
    NotAStructure,
}

/// A malformed request to one function: what it is, its body, and how it differs.
struct Case {
    what: String,
    body: Vec<u8>,
    mutation: Mutation,
}

/// Whether sending `value` for `arg` (`None`: leaving it out) ticks a checkbox the baseline
/// leaves unticked, or unticks one it ticks: a choice, not malformed input, and for a save a
/// change.
fn flips_tick(arg: &Arg, value: Option<&str>) -> bool {
    let ticked = |value: Option<&str>| value.is_some_and(|v| !v.is_empty());
    arg.kind == Kind::Checkbox && ticked(arg.baseline) != ticked(value)
}

/// Every malformed request tried on `function`.
fn malformed_cases(function: &ServerFunction) -> Vec<Case> {
    let encoded = |fields: &[(&'static str, String)]| form(&pairs(fields));
    let mut cases = vec![
        Case {
            what: "the baseline".into(),
            body: encoded(&baseline_with(function, None)),
            mutation: Mutation::Baseline,
        },
        Case {
            what: "no fields".into(),
            body: Vec::new(),
            mutation: Mutation::Empty,
        },
        Case {
            what: "an extra field".into(),
            body: {
                let mut fields = baseline_with(function, None);
                fields.push(("unexpected", SCRIPT.into()));
                encoded(&fields)
            },
            mutation: Mutation::Extra,
        },
    ];
    let not_utf8 = |arg: Option<Arg>, raw: bool| {
        let mut body = encoded(&match arg {
            Some(arg) => baseline_with(function, Some((arg.name, None))),
            None => baseline_with(function, None),
        });
        if !body.is_empty() {
            body.push(b'&');
        }
        let name = arg.map_or("unexpected", |arg| arg.name);
        escape_into(&mut body, name.as_bytes());
        body.push(b'=');
        if raw {
            body.extend_from_slice(b"\xff\xfe\xc3x");
        } else {
            body.extend_from_slice(b"%FF%FE%C3x");
        }
        Case {
            what: format!(
                "{} bytes that are not UTF-8 in {name}",
                if raw { "raw" } else { "encoded" }
            ),
            body,
            mutation: Mutation::NotUtf8 { arg, raw },
        }
    };
    if function.args.is_empty() {
        cases.push(not_utf8(None, true));
        cases.push(not_utf8(None, false));
    }
    for &arg in function.args {
        // A checkbox the baseline leaves unticked is ticked by any value sent (twice, not
        // UTF-8 but percent-encoded, …): a choice, not malformed input.
        if arg.kind == Kind::Checkbox && arg.baseline.is_none() {
            continue;
        }
        for (label, value) in malformed_values() {
            if flips_tick(&arg, Some(&value)) {
                continue;
            }
            cases.push(Case {
                what: format!("{} = {label}", arg.name),
                body: encoded(&baseline_with(function, Some((arg.name, Some(&value))))),
                mutation: Mutation::Value(arg, value),
            });
        }
        if arg.baseline.is_some() && !flips_tick(&arg, None) {
            cases.push(Case {
                what: format!("{} left out", arg.name),
                body: encoded(&baseline_with(function, Some((arg.name, None)))),
                mutation: Mutation::Missing(arg),
            });
        }
        cases.push(Case {
            what: format!("{} twice", arg.name),
            body: {
                let mut fields = baseline_with(function, None);
                fields.push((arg.name, "1".into()));
                fields.push((arg.name, "2".into()));
                encoded(&fields)
            },
            mutation: Mutation::Twice,
        });
        cases.push(not_utf8(Some(arg), true));
        cases.push(not_utf8(Some(arg), false));
    }
    if function
        .args
        .iter()
        .any(|arg| arg.name.starts_with("fields["))
    {
        let mut fields: Vec<(&'static str, String)> = baseline_with(function, None)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("fields["))
            .collect();
        fields.push(("fields", "abc".into()));
        cases.push(Case {
            what: "fields as a plain value".into(),
            body: encoded(&fields),
            mutation: Mutation::NotAStructure,
        });
    }
    cases
}

/// Whether `function` may answer `mutation` (2xx or a redirect) rather than refuse it with a
/// 4xx: only when its baseline is answered for this caller and the input stays valid — an
/// optional argument left out, a field it ignores, a search text, a page cursor that is a
/// number of the right size, an empty (so no) filter, a ticked checkbox, a password it does
/// not read inside the re-authentication window, a path to go back to (any value becomes
/// a path on this site, which every answer's redirect is checked for). Every other
/// malformed input must be refused.
fn may_answer(function: &ServerFunction, mutation: &Mutation, signed_in: bool) -> bool {
    let open = match function.open {
        Open::Anyone => true,
        Open::SignedIn => signed_in,
        Open::Refused => false,
    };
    open && match mutation {
        Mutation::Baseline | Mutation::Extra => true,
        Mutation::Missing(arg) => arg.kind.optional(),
        Mutation::Empty => function.args.iter().all(|arg| arg.kind.optional()),
        Mutation::Value(arg, value) => match arg.kind {
            Kind::Search => value.chars().count() <= 254,
            // Empty: no cursor, the first page.
            Kind::After => value.is_empty() || value.parse::<i32>().is_ok(),
            Kind::Before => value.is_empty() || value.parse::<i64>().is_ok(),
            Kind::OptText => value.trim().is_empty(),
            Kind::Checkbox | Kind::Password | Kind::Next => true,
            Kind::Id | Kind::Version | Kind::Text => false,
        },
        // Which of the two counts is the framework's business; either answer is fine, as
        // long as it is not a server error.
        Mutation::Twice => true,
        // A function without arguments does not read its body.
        Mutation::NotUtf8 { arg: None, .. } => true,
        // Raw bytes are refused; percent-encoded ones are decoded with U+FFFD in their
        // place, which is text like any other where any text is valid.
        Mutation::NotUtf8 {
            arg: Some(arg),
            raw,
        } => {
            !raw && matches!(
                arg.kind,
                Kind::Search | Kind::Checkbox | Kind::Password | Kind::Next
            )
        }
        Mutation::NotAStructure => false,
    }
}

/// What is wrong with `answer` to a malformed request: a server error, an input that had to
/// be refused but was answered, a function open to this caller that did not answer its
/// baseline, or any of [`problems`].
fn misjudged(
    what: &str,
    function: &ServerFunction,
    mutation: &Mutation,
    signed_in: bool,
    answer: &Answer,
) -> Vec<String> {
    let answerable = may_answer(function, mutation, signed_in);
    let refused = (400..500).contains(&answer.status);
    let mut found = problems(what, answer);
    let wrong = if answer.status >= 500 {
        Some("a server error")
    } else if !answerable && !refused {
        Some("must be refused with a 4xx")
    } else if answerable && matches!(mutation, Mutation::Baseline) && answer.status >= 400 {
        Some("the baseline must be answered")
    } else {
        None
    };
    if let Some(wrong) = wrong {
        found.push(format!(
            "{what}: {} {:.300} ({wrong})",
            answer.status, answer.body
        ));
    }
    found
}

/// The download of a backup (`GET /admin/backup/{id}/download`) with ids that are not
/// numbers, too big, of no backup, or of Acme's backups whose archive is gone (expired,
/// failed, deleted), each with the status it must get from Acme's owner: nothing is sent
/// and nothing written (a download is counted only when one is sent). The last of Acme's
/// ids is its ready backup, which is left out.
fn malformed_downloads(backups: &AcmeBackups) -> Vec<(String, u16)> {
    let mut paths: Vec<(String, u16)> = [
        "abc",
        "-1",
        "0",
        "2000000000",
        "99999999999999999999",
        "1e309",
        "1.5",
        "%FF%FE",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "'%20OR%201=1%20--",
    ]
    .iter()
    .map(|id| (format!("/admin/backup/{id}/download"), 404))
    .collect();
    for id in backups.ids.iter().filter(|&&id| id != backups.ready) {
        paths.push((format!("/admin/backup/{id}/download"), 410));
    }
    paths
}

#[tokio::test]
async fn malformed_input_to_every_server_function_is_refused_and_writes_nothing() {
    for database in fresh_databases().await {
        // The test key: the chain these servers extend is verified by the CLI, which uses it.
        let key = secret_key();
        let acme = two_organizations(&database, &key).await;
        add_acme_notification_rows(&database, &key, &acme).await;
        let backups = BackupFolder::new();
        let acme_backups = add_acme_backups(&database, &key, &acme, &backups).await;
        let (folder_var, folder) = backups.server_var();
        let server = Server::start_with_key(&database.url, &key, &[(folder_var, &folder)]).await;
        // Where the server keeps its files is nobody's business but the operator's.
        let insides = backups.marker();
        let client = client();
        let owner = sign_in(&client, &server, "owner@acme.test").await;
        // The owner has read their notices: marking them read in the sweep changes nothing.
        let read = call(
            &client,
            &server,
            "account/notifications/read",
            Some(&owner),
            Vec::new(),
        )
        .await;
        assert!(read.status < 400, "{} {}", read.status, read.body);
        let before = acme_snapshot(&database, &acme, &backups).await;
        let mut tried = 0usize;
        let mut failures = Vec::new();

        for (who, session) in [("Acme's owner", Some(owner.as_str())), ("nobody", None)] {
            for function in SERVER_FUNCTIONS {
                // Signing out ends every session of the member: the owner's tries come last.
                if session.is_some() && function.endpoint == "sign_out" {
                    continue;
                }
                for case in malformed_cases(function) {
                    let what = format!("{who}: {} with {}", function.endpoint, case.what);
                    let answer =
                        call(&client, &server, function.endpoint, session, case.body).await;
                    tried += 1;
                    failures.extend(misjudged(
                        &what,
                        function,
                        &case.mutation,
                        session.is_some(),
                        &answer,
                    ));
                    if answer.body.contains(&insides) {
                        failures.push(format!(
                            "{what}: the backup folder's path in the answer: {:.1500}",
                            answer.body
                        ));
                    }
                }
            }
            for (path, status) in malformed_downloads(&acme_backups) {
                let what = format!("{who}: GET {path}");
                let answer = get(&client, &server, &path, session).await;
                tried += 1;
                failures.extend(problems(&what, &answer));
                // Nobody signed in is refused too, sign-in first or (an id that is not one)
                // before it.
                let expected = if session.is_some() { status } else { 401 };
                let wrong_status = answer.status != expected
                    && (session.is_some() || !(400..500).contains(&answer.status));
                if wrong_status || answer.content_type.contains("octet-stream") {
                    failures.push(format!(
                        "{what}: {} {} {:.300} (must be {expected})",
                        answer.status, answer.content_type, answer.body
                    ));
                }
            }
        }
        // Mishandled requests are listed at the end, all of them, after the other checks.
        assert_eq!(
            signed_in_email(&client, &server, &owner).await.as_deref(),
            Some("owner@acme.test")
        );
        assert_acme_unchanged(
            &before,
            &acme_snapshot(&database, &acme, &backups).await,
            "Malformed input",
        );
        assert_acme_chain_intact(&database).await;

        // Signing out takes no arguments: a body it can read signs out, one it cannot is
        // refused and leaves the session alone. It ends every session of the member, so
        // each try has a session of its own, signed in after the snapshot (signing in is
        // audited).
        let sign_out = SERVER_FUNCTIONS
            .iter()
            .find(|f| f.endpoint == "sign_out")
            .unwrap();
        for case in malformed_cases(sign_out) {
            let session = sign_in(&client, &server, "owner@acme.test").await;
            let what = format!("Acme's owner: sign_out with {}", case.what);
            let answer = call(&client, &server, "sign_out", Some(&session), case.body).await;
            tried += 1;
            failures.extend(misjudged(&what, sign_out, &case.mutation, true, &answer));
            let still = signed_in_email(&client, &server, &session).await;
            assert_eq!(
                still.is_none(),
                answer.status < 400,
                "{what}: {}",
                answer.status
            );
        }

        let owner = sign_in(&client, &server, "owner@acme.test").await;
        tried +=
            pages_escape_what_they_show(&database, &client, &server, &owner, &acme, &mut failures)
                .await;
        assert_acme_chain_intact(&database).await;
        let log = server.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        eprintln!(
            "malformed inputs tried on {:?}: {tried}, failures: {}",
            database.backend,
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} of {tried} malformed requests on {:?} were mishandled:\n{}",
            failures.len(),
            database.backend,
            failures.join("\n")
        );
    }
}
