//! Backups through the real binary: `lifeline backup create` writes a private archive, never
//! over another file; `lifeline backup restore` brings the organization back into an empty
//! database, where its members sign in over HTTP as before (the same key), or with their
//! authenticator once the codes the other installation's key peppered are ended (another
//! key, which links the audit chain anew); and a bad archive or passphrase is refused in one
//! line, with nothing written.

use std::{os::unix::fs::PermissionsExt, path::Path};

use chrono::{DateTime, Duration, Utc};
use domain::{
    authz::Authz,
    backup::Table,
    mfa,
    testing::{TestDatabase, fresh_databases, migrated_databases, secret_key},
};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{
    PASSWORD,
    cli::{cli, cli_with, create_org},
    client::{
        SecondFactor, client, password_step, second_factor_step, sign_in_with, signed_in_email,
        succeeded,
    },
    organizations::{Enrolled, enrol_with_codes},
    process::Server,
};

const OWNER: &str = "owner@acme.test";
/// Acme's owner: the first member of a fresh database.
const OWNER_ID: i32 = 1;
/// A passphrase zxcvbn scores as hard to guess.
const PASSPHRASE: &str = "violet tractor whispers under copper rain";

/// A fresh database on every backend the run covers, each with a second, empty one of the same
/// backend to restore into.
async fn source_and_target() -> Vec<(TestDatabase, TestDatabase)> {
    fresh_databases()
        .await
        .into_iter()
        .zip(fresh_databases().await)
        .collect()
}

/// Acme, whose owner has MFA on and a set of backup codes, made with the test key (the key the
/// binary runs with unless a test gives another); returns them and when the authenticator's
/// first code was confirmed.
async fn acme_owner_enrolled(database: &TestDatabase) -> (Enrolled, DateTime<Utc>) {
    create_org(&database.url, "Acme", OWNER).await;
    let authz = Authz::baseline().await.unwrap();
    let enrolled_at = Utc::now();
    let enrolled =
        enrol_with_codes(&database.db, &authz, &secret_key(), OWNER_ID, enrolled_at).await;
    (enrolled, enrolled_at)
}

/// `lifeline backup create --org acme --out OUT` with `passphrase` on standard input.
async fn backup_create(database_url: &str, out: &Path, passphrase: &str) -> (bool, String, String) {
    cli(
        database_url,
        &["backup", "create", "--org", "acme", "--out", path_arg(out)],
        &format!("{passphrase}\n"),
    )
    .await
}

/// `lifeline backup restore --file FILE` with these variables and `passphrase` on standard
/// input.
async fn backup_restore(
    vars: &[(&str, &str)],
    file: &Path,
    passphrase: &str,
) -> (bool, String, String) {
    cli_with(
        vars,
        &["backup", "restore", "--file", path_arg(file)],
        &format!("{passphrase}\n"),
    )
    .await
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The names in `folder`, sorted.
fn names_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How many rows each table a backup covers holds, in [`Table::ALL`]'s order: what a refused
/// command must leave as it was.
async fn rows_per_table(database: &TestDatabase) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in Table::ALL {
        let row = database
            .db
            .query_one(Statement::from_string(
                database.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {}", table.name()),
            ))
            .await
            .unwrap()
            .unwrap();
        counts.push((table.name(), row.try_get::<i64>("", "n").unwrap()));
    }
    counts
}

/// Sends the password and then `code` as a backup code; whether the member is signed in.
async fn backup_code_signs_in(server: &Server, code: &str) -> bool {
    let http = client();
    let pending = password_step(&http, server, OWNER, PASSWORD).await;
    let answer = second_factor_step(&http, server, &pending, SecondFactor::BackupCode(code)).await;
    succeeded(answer.status())
}

#[tokio::test]
async fn a_backup_restored_with_the_same_key_signs_members_in_as_before() {
    for (source, target) in source_and_target().await {
        let backend = source.backend;
        let (enrolled, _) = acme_owner_enrolled(&source).await;
        let codes = &enrolled.codes;
        // The owner has used code 1 before the backup is taken.
        {
            let server = Server::start(&source.url).await;
            sign_in_with(
                &client(),
                &server,
                OWNER,
                SecondFactor::BackupCode(&codes[0]),
            )
            .await;
        }

        let folder = tempfile::tempdir().unwrap();
        let archive = folder.path().join("acme.age");
        let (ok, stdout, stderr) = backup_create(&source.url, &archive, PASSPHRASE).await;
        assert!(ok, "{backend:?}: {stderr}");
        assert!(
            stdout.contains("Wrote a backup of “Acme”"),
            "{backend:?}: {stdout}"
        );
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{backend:?}: the archive is the owner's only");
        assert_eq!(
            names_in(folder.path()),
            ["acme.age"],
            "{backend:?}: no .partial left"
        );
        let written = std::fs::read(&archive).unwrap();

        // A second backup to the same name is refused, and the first archive stays as it was.
        let (ok, _, stderr) = backup_create(&source.url, &archive, PASSPHRASE).await;
        assert!(!ok, "{backend:?}: a second archive over the first");
        assert_eq!(
            stderr.trim_end(),
            format!(
                "lifeline: --out {}: the file exists; choose another name",
                archive.display()
            ),
            "{backend:?}"
        );
        assert_eq!(std::fs::read(&archive).unwrap(), written, "{backend:?}");
        assert_eq!(names_in(folder.path()), ["acme.age"], "{backend:?}");

        // Restored into an empty database with the same key.
        let (ok, stdout, stderr) =
            backup_restore(&[("DATABASE_URL", &target.url)], &archive, PASSPHRASE).await;
        assert!(ok, "{backend:?}: {stderr}");
        assert!(
            stdout.contains("Restored “Acme” (--org acme)"),
            "{backend:?}: {stdout}"
        );
        assert!(
            !stdout.contains("linked anew") && !stdout.contains("were ended"),
            "{backend:?}: the same key keeps the chain and the codes: {stdout}"
        );

        let server = Server::start(&target.url).await;
        let http = client();
        let session =
            sign_in_with(&http, &server, OWNER, SecondFactor::BackupCode(&codes[1])).await;
        assert_eq!(
            signed_in_email(&http, &server, &session).await.as_deref(),
            Some(OWNER),
            "{backend:?}"
        );
        assert!(
            !backup_code_signs_in(&server, &codes[0]).await,
            "{backend:?}: the code used before the backup stays used"
        );

        let (ok, stdout, stderr) =
            cli(&target.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(
            ok && stdout.contains("is intact"),
            "{backend:?}: {stdout}{stderr}"
        );
    }
}

#[tokio::test]
async fn a_backup_restored_under_another_key_relinks_the_chain_and_ends_codes() {
    for (source, target) in source_and_target().await {
        let backend = source.backend;
        let (enrolled, enrolled_at) = acme_owner_enrolled(&source).await;
        let folder = tempfile::tempdir().unwrap();
        let archive = folder.path().join("acme.age");
        let (ok, _, stderr) = backup_create(&source.url, &archive, PASSPHRASE).await;
        assert!(ok, "{backend:?}: {stderr}");

        // Another installation: its own key file, made by its first command.
        let key_file = folder.path().join("other.key");
        let vars = [
            ("DATABASE_URL", target.url.as_str()),
            ("LIFELINE_SECRET_KEY_FILE", path_arg(&key_file)),
        ];
        let (ok, stdout, stderr) = backup_restore(&vars, &archive, PASSPHRASE).await;
        assert!(ok, "{backend:?}: {stderr}");
        assert!(
            stdout.contains("Restored “Acme” (--org acme)"),
            "{backend:?}: {stdout}"
        );
        assert!(
            stdout.contains("its audit log was linked anew under this one"),
            "{backend:?}: {stdout}"
        );
        assert!(
            stdout.contains("Backup codes and issued sign-in codes of 1 member(s) were ended"),
            "{backend:?}: {stdout}"
        );
        let other_key = std::fs::read_to_string(&key_file).unwrap();
        assert!(
            !other_key.contains(domain::testing::TEST_SECRET_KEY),
            "{backend:?}: the restore ran under a key of its own"
        );

        // The chain verifies under the new key, and under the old one no longer does.
        let (ok, stdout, stderr) = cli_with(&vars, &["audit", "verify", "--org", "acme"], "").await;
        assert!(
            ok && stdout.contains("is intact"),
            "{backend:?}: {stdout}{stderr}"
        );
        let (ok, stdout, _) = cli(&target.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(!ok, "{backend:?}: linked under the old key still: {stdout}");

        // The owner signs in with the authenticator (its secret sealed anew), never with a
        // code the old key peppered.
        let server = Server::start_with(&vars).await;
        let http = client();
        // A step later than the one the enrolment claimed, and within the sign-in's window.
        let at = Utc::now().max(enrolled_at + Duration::seconds(30));
        let code = mfa::code_at(&enrolled.setup_key, at).unwrap();
        let session = sign_in_with(
            &http,
            &server,
            OWNER,
            SecondFactor::AuthenticatorCode(&code),
        )
        .await;
        assert_eq!(
            signed_in_email(&http, &server, &session).await.as_deref(),
            Some(OWNER),
            "{backend:?}"
        );
        assert!(
            !backup_code_signs_in(&server, &enrolled.codes[0]).await,
            "{backend:?}: a backup code survived another key"
        );
    }
}

/// What a refused command is asked to do.
enum Attempt {
    /// `backup create --org acme` to a new file, with this passphrase.
    Create { passphrase: &'static str },
    /// `backup restore` of the archive file `file` makes from a good archive's bytes (`None`:
    /// no file at that path), opened with `passphrase`, into `into`.
    Restore {
        file: fn(Vec<u8>) -> Option<Vec<u8>>,
        passphrase: &'static str,
        into: Target,
    },
}

/// The database a restore writes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Migrated, with no organization.
    Empty,
    /// The one the archive was taken of, which holds Acme.
    TheArchivesOwn,
}

/// One way a backup or a restore is refused.
struct Refusal {
    name: &'static str,
    attempt: Attempt,
    /// What the one line on standard error says.
    says: &'static str,
}

fn refusals() -> Vec<Refusal> {
    fn good(bytes: Vec<u8>) -> Option<Vec<u8>> {
        Some(bytes)
    }
    vec![
        Refusal {
            name: "a wrong passphrase",
            attempt: Attempt::Restore {
                file: good,
                passphrase: "violet tractor whispers under copper snow",
                into: Target::Empty,
            },
            says: "the passphrase does not open this archive",
        },
        Refusal {
            name: "no passphrase on standard input",
            attempt: Attempt::Restore {
                file: good,
                passphrase: "",
                into: Target::Empty,
            },
            says: "backup passphrase: none given on standard input",
        },
        Refusal {
            name: "one byte flipped in the middle",
            attempt: Attempt::Restore {
                file: |mut bytes| {
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0x01;
                    Some(bytes)
                },
                passphrase: PASSPHRASE,
                into: Target::Empty,
            },
            says: "the archive is damaged or was changed",
        },
        Refusal {
            name: "the file cut short",
            attempt: Attempt::Restore {
                file: |mut bytes| {
                    bytes.truncate(bytes.len() * 3 / 4);
                    Some(bytes)
                },
                passphrase: PASSPHRASE,
                into: Target::Empty,
            },
            says: "the archive is damaged or was changed",
        },
        Refusal {
            name: "an empty file",
            attempt: Attempt::Restore {
                file: |_| Some(Vec::new()),
                passphrase: PASSPHRASE,
                into: Target::Empty,
            },
            says: "not a Lifeline backup this version reads",
        },
        Refusal {
            name: "a file that is not an archive",
            attempt: Attempt::Restore {
                file: |_| Some(b"{\"format\": \"lifeline-backup/v1\"}\n".to_vec()),
                passphrase: PASSPHRASE,
                into: Target::Empty,
            },
            says: "not a Lifeline backup this version reads",
        },
        Refusal {
            name: "a path with no file",
            attempt: Attempt::Restore {
                file: |_| None,
                passphrase: PASSPHRASE,
                into: Target::Empty,
            },
            says: "No such file or directory",
        },
        Refusal {
            name: "a database that already holds an organization",
            attempt: Attempt::Restore {
                file: good,
                passphrase: PASSPHRASE,
                into: Target::TheArchivesOwn,
            },
            says: "the database already holds 1 organization(s)",
        },
        Refusal {
            name: "a weak passphrase",
            attempt: Attempt::Create {
                passphrase: "password1234",
            },
            says: "passphrase: Choose a passphrase that is harder to guess.",
        },
        Refusal {
            name: "a short passphrase",
            attempt: Attempt::Create {
                passphrase: "k7#Qz!w9",
            },
            says: "passphrase: Use at least 12 characters.",
        },
    ]
}

#[tokio::test]
async fn bad_archives_and_passphrases_are_refused_with_a_clear_message_and_write_nothing() {
    let targets = migrated_databases().await;
    for (source, empty) in fresh_databases().await.into_iter().zip(targets) {
        let backend = source.backend;
        create_org(&source.url, "Acme", OWNER).await;
        let folder = tempfile::tempdir().unwrap();
        let archive = folder.path().join("acme.age");
        let (ok, _, stderr) = backup_create(&source.url, &archive, PASSPHRASE).await;
        assert!(ok, "{backend:?}: {stderr}");
        let good = std::fs::read(&archive).unwrap();

        for (index, refusal) in refusals().into_iter().enumerate() {
            let name = refusal.name;
            let case = tempfile::tempdir().unwrap();
            let (ok, _, stderr) = match refusal.attempt {
                Attempt::Create { passphrase } => {
                    let before = rows_per_table(&source).await;
                    let out = case.path().join("acme.age");
                    let outcome = backup_create(&source.url, &out, passphrase).await;
                    assert_eq!(
                        names_in(case.path()),
                        Vec::<String>::new(),
                        "{backend:?}, {name}: no archive, no .partial"
                    );
                    assert_eq!(
                        rows_per_table(&source).await,
                        before,
                        "{backend:?}, {name}: a refused backup recorded something"
                    );
                    outcome
                }
                Attempt::Restore {
                    file,
                    passphrase,
                    into,
                } => {
                    let path = case.path().join(format!("case-{index}.age"));
                    if let Some(bytes) = file(good.clone()) {
                        std::fs::write(&path, bytes).unwrap();
                    }
                    let database = match into {
                        Target::Empty => &empty,
                        Target::TheArchivesOwn => &source,
                    };
                    let before = rows_per_table(database).await;
                    let outcome =
                        backup_restore(&[("DATABASE_URL", &database.url)], &path, passphrase).await;
                    assert_eq!(
                        rows_per_table(database).await,
                        before,
                        "{backend:?}, {name}: {into:?} was written to"
                    );
                    outcome
                }
            };
            assert!(!ok, "{backend:?}, {name}: not refused");
            assert!(
                stderr.starts_with("lifeline: ") && stderr.trim_end().lines().count() == 1,
                "{backend:?}, {name}: not one line: {stderr}"
            );
            assert!(
                stderr.contains(refusal.says),
                "{backend:?}, {name}: expected {:?} in {stderr}",
                refusal.says
            );
            for panic_text in ["panicked", "backtrace", "RUST_BACKTRACE"] {
                assert!(
                    !stderr.contains(panic_text),
                    "{backend:?}, {name}: {stderr}"
                );
            }
            assert_eq!(
                rows_per_table(&empty).await.first(),
                Some(&("organization", 0)),
                "{backend:?}, {name}: the empty database holds an organization"
            );
        }
    }
}
