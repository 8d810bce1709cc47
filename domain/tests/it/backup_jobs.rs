//! Backups requested in the console, on every backend: only those the gate lets request one
//! (owners by default), at most the daily limit however many requests arrive at once, built
//! in the background with its progress on the row, then ready to the requester alone,
//! deleted early or when its time is up, each step on the record; a build cut off by a
//! stopped server is failed by the sweep and its partial file removed.

use std::sync::Arc;

use chrono::Duration;
use domain::{
    audit::{self, Source},
    authz::Authz,
    backup::{
        Passphrase,
        jobs::{self, BackupJobError, JobState},
    },
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    testing::{self, TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, owner, t0};

const PASSPHRASE: &str = "correct staple orbit lantern meadow";

fn passphrase() -> Passphrase {
    Passphrase::new_for_archive(PASSPHRASE, PASSPHRASE, &[])
        .unwrap()
        .with_work_factor(10)
}

async fn actions(test_db: &TestDatabase, org_id: i32) -> Vec<String> {
    audit::latest(&test_db.db, org_id, 200)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|event| format!("{} {}", event.action, event.outcome))
        .collect()
}

struct Org {
    owner: Member,
    admin: Member,
    member: Member,
    authz: Authz,
}

async fn org(test_db: &TestDatabase) -> Org {
    let hasher = PasswordHasher::new(2).unwrap();
    let owner = owner(test_db, &hasher).await;
    let admin = add_member(
        test_db,
        &hasher,
        owner.org_id,
        "admin@acme.test",
        Role::Admin,
    )
    .await;
    let member = add_member(
        test_db,
        &hasher,
        owner.org_id,
        "member@acme.test",
        Role::Member,
    )
    .await;
    Org {
        owner,
        admin,
        member,
        authz: Authz::load(&test_db.db).await.unwrap(),
    }
}

#[tokio::test]
async fn a_backup_is_built_with_its_progress_then_ready_to_its_requester_alone() {
    for test_db in migrated_databases().await {
        let org = org(&test_db).await;
        let folder = tempfile::tempdir().unwrap();
        let source = Source::default();
        let as_owner = Command::new(&test_db.db, &org.authz, &org.owner, &source, t0());

        // Only owners by default: an admin's and a member's requests are refused, on the record.
        for who in [&org.admin, &org.member] {
            let cmd = Command::new(&test_db.db, &org.authz, who, &source, t0());
            assert!(matches!(
                jobs::request(&cmd, 3).await,
                Err(BackupJobError::NotAllowed)
            ));
            assert!(matches!(
                jobs::overview(&test_db.db, &org.authz, who, 3, t0()).await,
                Err(BackupJobError::NotAllowed)
            ));
        }

        let job = jobs::request(&as_owner, 3).await.unwrap();
        assert_eq!(job.state, JobState::Building);
        let state = jobs::build(
            &test_db.db,
            &testing::secret_key(),
            job.id,
            &passphrase(),
            folder.path(),
        )
        .await
        .unwrap();
        assert_eq!(state, JobState::Ready);
        let overview = jobs::overview(&test_db.db, &org.authz, &org.owner, 3, t0())
            .await
            .unwrap();
        let ready = &overview.jobs[0];
        assert_eq!(ready.state, JobState::Ready);
        assert!(ready.rows_total > 0);
        assert_eq!(
            ready.rows_written, ready.rows_total,
            "the progress reached the end"
        );
        assert_eq!(overview.requested_today, 1);

        // The file: only the server's user reads it, and it is the archive the row describes.
        let download = jobs::download(&as_owner, job.id, folder.path())
            .await
            .unwrap();
        let bytes = std::fs::read(&download.path).unwrap();
        assert_eq!(i64::try_from(bytes.len()).unwrap(), download.bytes);
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(download.file_name.starts_with("lifeline-acme-"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&download.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            !String::from_utf8_lossy(&bytes).contains("owner@acme.test"),
            "the archive is encrypted"
        );

        // Another member may not download it, even one allowed to request backups.
        let second_owner = add_member(
            &test_db,
            &PasswordHasher::new(2).unwrap(),
            org.owner.org_id,
            "second@acme.test",
            Role::Owner,
        )
        .await;
        let as_second = Command::new(&test_db.db, &org.authz, &second_owner, &source, t0());
        assert!(matches!(
            jobs::download(&as_second, job.id, folder.path()).await,
            Err(BackupJobError::NotYours)
        ));
        assert!(matches!(
            jobs::download(&as_owner, job.id + 1000, folder.path()).await,
            Err(BackupJobError::UnknownBackup)
        ));

        // Deleted early by an owner: the file is gone, and so is the download.
        jobs::delete(&as_second, job.id, folder.path())
            .await
            .unwrap();
        assert!(!download.path.exists());
        assert!(matches!(
            jobs::download(&as_owner, job.id, folder.path()).await,
            Err(BackupJobError::NotReady)
        ));
        assert!(matches!(
            jobs::delete(&as_owner, job.id, folder.path()).await,
            Err(BackupJobError::NotReady)
        ));

        let record = actions(&test_db, org.owner.org_id).await;
        for expected in [
            "backup.requested denied",
            "backup.requested success",
            "backup.created success",
            "backup.downloaded success",
            "backup.deleted success",
        ] {
            assert!(
                record.iter().any(|line| line == expected),
                "{:?}: {expected} in {record:?}",
                test_db.backend
            );
        }
        assert_eq!(
            audit::chain::verify(&test_db.db, org.owner.org_id)
                .await
                .unwrap()
                .broken,
            None
        );
    }
}

#[tokio::test]
async fn the_daily_limit_holds_when_200_requests_arrive_at_once() {
    const PER_DAY: u32 = 3;
    for test_db in migrated_databases().await {
        let org = org(&test_db).await;
        let db = Arc::new(test_db.db.clone());
        let authz = Arc::new(org.authz.clone());
        let owner = Arc::new(org.owner.clone());
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (db, authz, owner) = (Arc::clone(&db), Arc::clone(&authz), Arc::clone(&owner));
                tokio::spawn(async move {
                    let source = Source::default();
                    let cmd = Command::new(&db, &authz, &owner, &source, t0());
                    jobs::request(&cmd, PER_DAY).await
                })
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => granted += 1,
                Err(BackupJobError::DailyLimit { per_day, .. }) => assert_eq!(per_day, PER_DAY),
                Err(other) => panic!("{:?}: {other:?}", test_db.backend),
            }
        }
        assert_eq!(granted, PER_DAY, "{:?}", test_db.backend);
        let requested = actions(&test_db, org.owner.org_id)
            .await
            .into_iter()
            .filter(|line| line == "backup.requested success")
            .count();
        assert_eq!(requested, PER_DAY as usize);

        // A day later, another may be requested.
        let source = Source::default();
        let tomorrow = Command::new(
            &test_db.db,
            &org.authz,
            &org.owner,
            &source,
            t0() + Duration::days(1) + Duration::minutes(1),
        );
        jobs::request(&tomorrow, PER_DAY).await.unwrap();
    }
}

#[tokio::test]
async fn the_sweep_deletes_archives_past_their_time_and_fails_builds_cut_off() {
    for test_db in migrated_databases().await {
        let org = org(&test_db).await;
        let folder = tempfile::tempdir().unwrap();
        let source = Source::default();
        let now = chrono::Utc::now();
        let cmd = Command::new(&test_db.db, &org.authz, &org.owner, &source, now);
        let kept = jobs::request(&cmd, 3).await.unwrap();
        jobs::build(
            &test_db.db,
            &testing::secret_key(),
            kept.id,
            &passphrase(),
            folder.path(),
        )
        .await
        .unwrap();
        let download = jobs::download(&cmd, kept.id, folder.path()).await.unwrap();
        // A build whose server stopped: requested, never built; its partial file left over.
        let cut_off = jobs::request(&cmd, 3).await.unwrap();
        let partial = folder.path().join(format!(
            "lifeline-backup-org{}-{}.age.partial",
            org.owner.org_id, cut_off.id
        ));
        std::fs::write(&partial, b"half an archive").unwrap();

        // Before their time, the sweep leaves both.
        let swept = jobs::sweep(&test_db.db, folder.path(), now + Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(swept, jobs::Swept::default());

        let later = now + jobs::KEPT_FOR + Duration::minutes(1);
        let swept = jobs::sweep(&test_db.db, folder.path(), later)
            .await
            .unwrap();
        assert_eq!(
            swept,
            jobs::Swept {
                expired: 1,
                failed: 1
            }
        );
        assert!(!download.path.exists());
        assert!(!partial.exists());
        // A second sweep (another instance) finds nothing more to do.
        let again = jobs::sweep(&test_db.db, folder.path(), later)
            .await
            .unwrap();
        assert_eq!(again, jobs::Swept::default());

        let overview = jobs::overview(&test_db.db, &org.authz, &org.owner, 3, later)
            .await
            .unwrap();
        let states: Vec<JobState> = overview.jobs.iter().map(|job| job.state).collect();
        assert_eq!(states, [JobState::Failed, JobState::Expired]);
        assert_eq!(
            overview.requested_today, 0,
            "a day later, and the failed one never counts"
        );
        let record = actions(&test_db, org.owner.org_id).await;
        assert!(
            record.contains(&"backup.expired success".to_owned()),
            "{record:?}"
        );
        assert!(
            record.contains(&"backup.failed failure".to_owned()),
            "{record:?}"
        );
    }
}
