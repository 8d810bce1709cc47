//! Scheduled backups through the real binary: with `LIFELINE_BACKUP_SCHEDULE` set, the server
//! writes an archive of every organization to its own folder at each run, private (files
//! 0600, folders 0700), keeps the newest `LIFELINE_BACKUP_SCHEDULE_KEEP` of each, and every
//! archive kept restores with `lifeline backup restore` and the passphrase file's line; and
//! a bad schedule, a bad number kept, or a passphrase file that is missing, weak or shared
//! stops the start in one line naming the variable, never showing the passphrase.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use domain::{
    db::Backend,
    testing::{TestDatabase, fresh_databases, postgres_admin_url},
};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{
    cli::{cli_with, create_org},
    process::{Server, run_to_exit},
};

/// A passphrase zxcvbn scores as hard to guess.
const PASSPHRASE: &str = "violet tractor whispers under copper rain";
/// What the server logs at the end of each run.
const RUN_FINISHED: &str = "scheduled backup run finished";
/// The organizations the schedule backs up: (name, slug, id in a fresh database).
const ORGANIZATIONS: [(&str, &str, i32); 2] = [("Acme", "acme", 1), ("Globex", "globex", 2)];
/// How long the runs may take, on a slow machine.
const RUNS_LIMIT: Duration = Duration::from_secs(180);

/// Environment variables for one run of the binary.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// Writes `text` to `folder/name` with `mode`; returns its path.
fn file_with_mode(folder: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An empty database of `backend`.
async fn fresh(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Sqlite => TestDatabase::sqlite().await,
        Backend::Postgres => {
            TestDatabase::postgres(&postgres_admin_url().expect("PostgreSQL is being tested")).await
        }
    }
}

/// `backup.created` events in organization `org_id`'s audit log.
async fn backups_created(database: &TestDatabase, org_id: i32) -> i64 {
    let row = database
        .db
        .query_one(Statement::from_string(
            database.db.get_database_backend(),
            format!(
                "SELECT COUNT(*) AS n FROM audit_event \
                 WHERE action = 'backup.created' AND org_id = {org_id}"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The server's "run finished" log lines so far.
fn runs(server: &Server) -> Vec<String> {
    server
        .log()
        .into_iter()
        .filter(|line| line.contains(RUN_FINISHED))
        .collect()
}

#[tokio::test]
async fn the_schedule_keeps_the_newest_archives_of_each_organization_and_they_restore() {
    for database in fresh_databases().await {
        let backend = database.backend;
        for (name, slug, _) in ORGANIZATIONS {
            create_org(&database.url, name, &format!("owner@{slug}.test")).await;
        }
        let folder = tempfile::tempdir().unwrap();
        let passphrase = file_with_mode(
            folder.path(),
            "passphrase",
            &format!("{PASSPHRASE}\n"),
            0o600,
        );
        let scheduled = folder.path().join("backups/scheduled");
        // Two seconds: each run takes about a second of scrypt per organization, so runs
        // follow one another closely and three of them take seconds, not minutes.
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LIFELINE_BACKUP_SCHEDULE", "2s"),
            ("LIFELINE_BACKUP_SCHEDULE_DIR", path_arg(&scheduled)),
            ("LIFELINE_BACKUP_SCHEDULE_KEEP", "2"),
            ("LIFELINE_BACKUP_PASSPHRASE_FILE", path_arg(&passphrase)),
        ])
        .await;

        // Three archives of each organization made (on the record as `backup.created`), and
        // the run that made the third finished, so its pruning is done.
        tokio::time::timeout(RUNS_LIMIT, async {
            loop {
                let finished_before = runs(&server).len();
                let mut made = Vec::new();
                for (_, _, id) in ORGANIZATIONS {
                    made.push(backups_created(&database, id).await);
                }
                if made.iter().all(|&n| n >= 3) {
                    while runs(&server).len() <= finished_before {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{backend:?}: three runs within {RUNS_LIMIT:?}: {:?}",
                server.log()
            )
        });
        let finished = runs(&server);
        // Stopped between runs or in one: a run cut off (its database closed) fails, and
        // leaves at most a `.partial`.
        let (_, log) = server.terminate().await;

        assert!(
            log.iter()
                .any(|line| line.contains("scheduled backups are on")),
            "{backend:?}: {log:?}"
        );
        assert!(finished.len() >= 3, "{backend:?}: {log:?}");
        for line in &finished {
            assert!(line.contains("failed=0"), "{backend:?}: {line}\n{log:#?}");
        }
        assert!(
            finished.iter().any(|line| !line.contains("deleted=0")),
            "{backend:?}: old archives were deleted: {finished:?}"
        );
        assert!(
            !log.iter().any(|line| line.contains(PASSPHRASE)),
            "{backend:?}: the passphrase is never logged"
        );
        assert_eq!(mode(&scheduled), 0o700, "{backend:?}");

        let mut restores = Vec::new();
        for (name, slug, id) in ORGANIZATIONS {
            assert!(
                backups_created(&database, id).await >= 3,
                "{backend:?}: {slug}"
            );
            let own = scheduled.join(slug);
            assert_eq!(mode(&own), 0o700, "{backend:?}: {slug}");
            let mut archives = Vec::new();
            for entry in std::fs::read_dir(&own).unwrap() {
                let file = entry.unwrap().file_name().into_string().unwrap();
                let stamp = file
                    .strip_prefix(&format!("{slug}-"))
                    .and_then(|rest| rest.split_once(".age"))
                    .map(|(stamp, rest)| (stamp.to_owned(), rest.to_owned()));
                match stamp {
                    Some((stamp, rest)) if rest.is_empty() => {
                        assert!(
                            chrono::NaiveDateTime::parse_from_str(&stamp, "%Y%m%dT%H%M%SZ").is_ok(),
                            "{backend:?}: {file}"
                        );
                        archives.push(own.join(&file));
                    }
                    Some((_, rest)) if rest == ".partial" => {}
                    _ => panic!("{backend:?}: {file} in the folder of {slug}"),
                }
            }
            assert_eq!(archives.len(), 2, "{backend:?}: {slug}: {archives:?}");
            for archive in archives {
                assert_eq!(mode(&archive), 0o600, "{backend:?}: {}", archive.display());
                restores.push(async move {
                    let target = fresh(backend).await;
                    let (ok, stdout, stderr) = cli_with(
                        &[("DATABASE_URL", &target.url)],
                        &["backup", "restore", "--file", path_arg(&archive)],
                        &format!("{PASSPHRASE}\n"),
                    )
                    .await;
                    assert!(ok, "{backend:?}: {}: {stderr}", archive.display());
                    assert!(
                        stdout.contains(&format!("Restored “{name}” (--org {slug})")),
                        "{backend:?}: {stdout}"
                    );
                });
            }
        }
        futures::future::join_all(restores).await;
    }
}

#[tokio::test]
async fn a_bad_schedule_or_passphrase_file_stops_the_start_in_one_line() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let good = file_with_mode(dir, "good", &format!("{PASSPHRASE}\n"), 0o600);
    let weak = file_with_mode(dir, "weak", "password1234\n", 0o600);
    let shared = file_with_mode(dir, "shared", &format!("{PASSPHRASE}\n"), 0o640);
    let missing = dir.join("missing");
    let (good, weak, shared, missing) = (
        path_arg(&good),
        path_arg(&weak),
        path_arg(&shared),
        path_arg(&missing),
    );
    let file = "LIFELINE_BACKUP_PASSPHRASE_FILE";
    // The variables set, the one the line names, and what it says.
    let cases: [(Vars, &str, &str); 7] = [
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "daily"), (file, good)],
            "LIFELINE_BACKUP_SCHEDULE",
            "must be an interval such as 24h",
        ),
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "500ms"), (file, good)],
            "LIFELINE_BACKUP_SCHEDULE",
            "from 1s to",
        ),
        (
            &[
                ("LIFELINE_BACKUP_SCHEDULE", "24h"),
                ("LIFELINE_BACKUP_SCHEDULE_KEEP", "0"),
                (file, good),
            ],
            "LIFELINE_BACKUP_SCHEDULE_KEEP",
            "from 1 to 365",
        ),
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "24h")],
            file,
            "must be set when LIFELINE_BACKUP_SCHEDULE is",
        ),
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "24h"), (file, missing)],
            file,
            "cannot read it",
        ),
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "24h"), (file, weak)],
            file,
            "is refused (it is not shown)",
        ),
        (
            &[("LIFELINE_BACKUP_SCHEDULE", "24h"), (file, shared)],
            file,
            "chmod 600",
        ),
    ];
    for (vars, variable, problem) in cases {
        let (ok, stderr) = run_to_exit(vars).await;
        assert!(!ok, "{vars:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{vars:?}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("lifeline: {variable} ")),
            "{vars:?}: {stderr}"
        );
        assert!(lines[0].contains(problem), "{vars:?}: {stderr}");
        for secret in [PASSPHRASE, "password1234"] {
            assert!(!stderr.contains(secret), "{vars:?}: {stderr}");
        }
    }
}
