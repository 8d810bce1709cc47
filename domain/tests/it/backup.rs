//! Data backups on every backend (issue 15): an organization backed up and restored into an
//! empty database comes back exactly — every row (the sealed secrets re-sealed), every Casbin
//! decision for every member and action, the audit chain verifying to the archive's signed
//! head, members signing in with the same password, authenticator and unused backup codes,
//! used codes staying used. A wrong passphrase, a changed or cut archive, another schema and
//! a database that is not empty are refused, and nothing is written. A backup taken while
//! 200 events are recorded at once is one instant of the organization.

use std::sync::Arc;

use chrono::Duration;
use domain::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, Authz},
    backup::{self, BackupError, Passphrase, Table},
    backup_codes::{self, CodeEntry},
    command::Command,
    db::Backend,
    hashing::PasswordHasher,
    identity::{Email, Member, Role},
    lookup_secret::BackupCodeHasher,
    mfa,
    notifications::webhooks::UrlRules,
    org_policy::{
        self,
        webhooks::{WebhookForm, add_webhook},
    },
    secrets::Password,
    sign_in,
    testing::{self, TestDatabase, migrated_databases, postgres_admin_url},
};
use sea_orm::{ConnectionTrait, Statement};

use crate::fixtures::{add_member, owner_with_mfa, t0};

const PASSPHRASE: &str = "correct staple orbit lantern meadow";
/// scrypt's work factor for the tests' archives: 2^10, not age's second of work.
const WORK_FACTOR: u8 = 10;

/// Whether a restore's error is the one a case expects.
type RefusedAs = fn(&BackupError) -> bool;

fn passphrase() -> Passphrase {
    Passphrase::new_for_archive(PASSPHRASE, PASSPHRASE, &["Acme"])
        .unwrap()
        .with_work_factor(WORK_FACTOR)
}

/// Another empty, migrated database on `test_db`'s backend.
async fn empty_like(test_db: &TestDatabase) -> TestDatabase {
    match test_db.backend {
        Backend::Sqlite => TestDatabase::sqlite().await,
        Backend::Postgres => {
            TestDatabase::postgres(&postgres_admin_url().expect("PostgreSQL was asked for")).await
        }
    }
    .migrated()
    .await
}

/// An organization with something in every table a backup covers: the owner and a member
/// with MFA, the member's backup codes with one used, an exception (so Casbin rules of its
/// own), a webhook, and the audit events of all of it. Returns the owner, the member, the
/// member's setup key and unused codes.
struct Seeded {
    owner: Member,
    member: Member,
    member_setup_key: String,
    unused: Vec<String>,
    used: String,
}

async fn seed(test_db: &TestDatabase, hasher: &PasswordHasher) -> Seeded {
    let key = testing::secret_key();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let (owner, _) = owner_with_mfa(test_db, hasher, &key).await;
    let member = add_member(
        test_db,
        hasher,
        owner.org_id,
        "member@acme.test",
        Role::Member,
    )
    .await;
    let enrolment = mfa::begin_enrolment(&test_db.db, &key, member.id)
        .await
        .unwrap();
    let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
    mfa::confirm_enrolment(
        &test_db.db,
        &key,
        member.id,
        &code,
        &Source::default(),
        t0(),
    )
    .await
    .unwrap();
    let member = domain::accounts::member(&test_db.db, member.id)
        .await
        .unwrap()
        .unwrap();
    add_member(
        test_db,
        hasher,
        owner.org_id,
        "admin@acme.test",
        Role::Admin,
    )
    .await;
    let authz = Authz::load(&test_db.db).await.unwrap();
    let source = Source::default();
    let fresh = backup_codes::generate(
        &Command::new(&test_db.db, &authz, &member, &source, t0()),
        &codes,
        &org_policy::current(&test_db.db, owner.org_id)
            .await
            .unwrap()
            .policy
            .code_policy(),
    )
    .await
    .unwrap();
    let mut unused: Vec<String> = fresh.codes.iter().map(|c| c.grouped()).collect();
    let used = unused.remove(0);
    backup_codes::redeem(
        &Command::new(
            &test_db.db,
            &authz,
            &member,
            &source,
            t0() + Duration::minutes(1),
        ),
        &codes,
        &org_policy::current(&test_db.db, owner.org_id)
            .await
            .unwrap()
            .policy
            .code_policy(),
        &CodeEntry::any(&used),
        None,
        &[],
    )
    .await
    .unwrap();
    let authz = Authz::load(&test_db.db).await.unwrap();
    let version = org_policy::current(&test_db.db, owner.org_id)
        .await
        .unwrap()
        .version;
    org_policy::save(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        version,
        &org_policy::OrgPolicy {
            lockout_attempts: 7,
            ..org_policy::OrgPolicy::default()
        },
    )
    .await
    .unwrap();
    org_policy::add_exception(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        "admin@acme.test",
        false,
        "shared device",
    )
    .await
    .unwrap();
    let hook = WebhookForm {
        name: "SIEM".to_owned(),
        url: "https://siem.example.com/hooks/lifeline".to_owned(),
        events: Vec::new(),
    }
    .parse(&UrlRules::default())
    .unwrap();
    add_webhook(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        &hook,
    )
    .await
    .unwrap();
    Seeded {
        owner,
        member,
        member_setup_key: enrolment.setup_key,
        unused,
        used,
    }
}

async fn take_backup(test_db: &TestDatabase, org_id: i32) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut progress = Vec::new();
    backup::create(
        &test_db.db,
        &testing::secret_key(),
        backup::Request {
            org_id,
            by: None,
            source: &Source::default(),
        },
        &passphrase(),
        &mut archive,
        |step| progress.push(step),
    )
    .await
    .unwrap();
    let last = progress.last().expect("progress was reported");
    assert_eq!(last.written, last.total, "the progress ends at the total");
    assert!(
        progress.windows(2).all(|w| w[0].written <= w[1].written),
        "the progress only advances"
    );
    archive
}

async fn restore(
    target: &TestDatabase,
    archive: &[u8],
    text: &str,
) -> Result<backup::Restored, BackupError> {
    backup::restore(
        &target.db,
        &testing::secret_key(),
        archive,
        &Passphrase::to_open(text),
        &Source::default(),
        t0() + Duration::hours(1),
    )
    .await
}

async fn organizations(test_db: &TestDatabase) -> i64 {
    let backend = test_db.db.get_database_backend();
    let row = test_db
        .db
        .query_one(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM organization".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n")
        .or_else(|_| row.try_get::<i32>("", "n").map(i64::from))
        .unwrap()
}

/// Every action the gate decides, for every role it names: the whole matrix.
fn actions() -> Vec<Action> {
    let mut actions = vec![
        Action::ListMembers,
        Action::GenerateBackupCodes,
        Action::RedeemBackupCode,
        Action::ViewBackupCodes,
        Action::ViewPolicy,
        Action::ManagePolicy,
        Action::ViewAudit,
        Action::ManageWebhooks,
    ];
    for role in Role::ALL.iter().copied() {
        actions.extend([
            Action::AddAccount(role),
            Action::RemoveAccount(role),
            Action::IssueRecoveryCode(role),
            Action::ManageMember(role),
        ]);
    }
    actions
}

/// Every member's decision on every action, with the rules that made it.
async fn decisions(test_db: &TestDatabase, org_id: i32) -> Vec<String> {
    let authz = Authz::load(&test_db.db).await.unwrap();
    let mut out = Vec::new();
    for member in domain::accounts::list_members(&test_db.db, org_id)
        .await
        .unwrap()
    {
        for action in actions() {
            let decision = authz.decide(&member, org_id, action).await.unwrap();
            out.push(format!(
                "{} {action:?}: {} by {} {:?}",
                member.email, decision.allowed, decision.subject, decision.rules
            ));
        }
    }
    out
}

/// The organization's rows as an archive holds them, but for what a restore adds or renumbers:
/// `casbin_rule` ids, and the audit chain beyond `events` events (the restore's own event;
/// a chain linked anew differs in its links, compared apart).
async fn comparable_rows(
    test_db: &TestDatabase,
    org_id: i32,
    events: usize,
) -> Vec<(Table, Vec<serde_json::Value>)> {
    let mut all = backup::rows(&test_db.db, &testing::secret_key(), org_id)
        .await
        .unwrap();
    for (table, rows) in &mut all {
        match table {
            Table::CasbinRule => {
                for row in rows.iter_mut() {
                    row["id"] = serde_json::Value::Null;
                }
                rows.sort_by_key(|row| row.to_string());
            }
            Table::AuditEvent => rows.truncate(events),
            Table::AuditChainHead => rows.clear(),
            _ => {}
        }
    }
    all
}

#[tokio::test]
async fn a_restored_organization_is_the_one_backed_up() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let org_id = seeded.owner.org_id;
        let events = audit::chain::verify(&source_db.db, org_id)
            .await
            .unwrap()
            .events;
        let archive = take_backup(&source_db, org_id).await;
        let last = audit::latest(&source_db.db, org_id, 1).await.unwrap();
        assert_eq!(
            last[0].action,
            AuditAction::BackupCreated.as_str(),
            "a backup is on the record"
        );

        let target = empty_like(&source_db).await;
        let restored = restore(&target, &archive, PASSPHRASE).await.unwrap();
        assert!(
            !restored.chain_relinked,
            "the same installation's chain stays as it was"
        );
        assert_eq!(restored.codes_ended, 0);
        assert_eq!(restored.manifest.organization.slug, "acme");
        assert_eq!(restored.manifest.audit_head.seq, events);

        // Every row, table by table (the secrets compared opened: their seals differ).
        let events = usize::try_from(events).unwrap();
        let before = comparable_rows(&source_db, org_id, events).await;
        let after = comparable_rows(&target, org_id, events).await;
        for ((table, rows), (_, restored_rows)) in before.iter().zip(&after) {
            assert_eq!(
                rows,
                restored_rows,
                "{:?}: {}",
                source_db.backend,
                table.name()
            );
        }
        assert!(
            before.iter().all(|(table, rows)| !rows.is_empty()
                || matches!(
                    table,
                    Table::FactorAttempt
                        | Table::NotificationAddress
                        | Table::AlertSettings
                        | Table::AlertDigestItem
                        | Table::IncidentReport
                        | Table::RecoveryCode
                        | Table::AuditCheckpoint
                        | Table::AuditChainHead
                )),
            "the seed reaches the tables it should: {:?}",
            before
                .iter()
                .map(|(t, rows)| (t.name(), rows.len()))
                .collect::<Vec<_>>()
        );

        // The chain verifies, to the archive's signed head and past it (the restore's event).
        let chain = audit::chain::verify(&target.db, org_id).await.unwrap();
        assert_eq!(chain.broken, None, "{:?}", source_db.backend);
        assert_eq!(chain.events, restored.manifest.audit_head.seq + 1);
        let last = audit::latest(&target.db, org_id, 1).await.unwrap();
        assert_eq!(last[0].action, AuditAction::BackupRestored.as_str());
        assert_eq!(
            audit::checkpoint::verify_against(&target.db, org_id, &restored.manifest.audit_head)
                .await
                .unwrap()
                .broken,
            None
        );

        // Every Casbin decision, for every member and action.
        assert_eq!(
            decisions(&source_db, org_id).await,
            decisions(&target, org_id).await,
            "{:?}",
            source_db.backend
        );

        // The member signs in with the same password, authenticator and unused codes; the
        // used code stays used.
        let later = t0() + Duration::hours(2);
        let step = sign_in::password(
            &target.db,
            &hasher,
            &Email::parse("member@acme.test").unwrap(),
            &Password::new("correct horse battery"),
            &Source::default(),
            later,
        )
        .await
        .unwrap()
        .expect("the same password");
        let member = step.into_member();
        assert_eq!(member, seeded.member);
        let authz = Authz::load(&target.db).await.unwrap();
        let source = Source::default();
        let totp = mfa::code_at(&seeded.member_setup_key, later).unwrap();
        sign_in::authenticator_code(
            &Command::new(&target.db, &authz, &member, &source, later),
            &testing::secret_key(),
            &totp,
        )
        .await
        .expect("the same authenticator");
        let codes = BackupCodeHasher::new(hasher.clone(), &testing::secret_key());
        let cmd = Command::new(
            &target.db,
            &authz,
            &member,
            &source,
            later + Duration::minutes(1),
        );
        sign_in::backup_code(&cmd, &codes, &seeded.used)
            .await
            .expect_err("a used code stays used");
        sign_in::backup_code(&cmd, &codes, &seeded.unused[0])
            .await
            .expect("an unused code works");

        // New rows get new ids (PostgreSQL's sequences were moved past the restored ones).
        add_member(&target, &hasher, org_id, "new@acme.test", Role::Member).await;
    }
}

#[tokio::test]
async fn a_wrong_passphrase_a_changed_or_cut_archive_and_another_schema_write_nothing() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let archive = take_backup(&source_db, seeded.owner.org_id).await;
        let target = empty_like(&source_db).await;

        let mut changed = archive.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        let cut = &archive[..archive.len() - 100];
        let cases: Vec<(&str, Vec<u8>, &str, RefusedAs)> = vec![
            (
                "wrong passphrase",
                archive.clone(),
                "not the passphrase at all",
                |e| matches!(e, BackupError::WrongPassphrase),
            ),
            ("one bit changed", changed, PASSPHRASE, |e| {
                matches!(e, BackupError::Damaged(_))
            }),
            ("cut short", cut.to_vec(), PASSPHRASE, |e| {
                matches!(e, BackupError::Damaged(_))
            }),
            ("not an archive", b"hello".to_vec(), PASSPHRASE, |e| {
                matches!(e, BackupError::Format(_))
            }),
            ("empty file", Vec::new(), PASSPHRASE, |e| {
                matches!(e, BackupError::Format(_) | BackupError::Damaged(_))
            }),
        ];
        for (case, bytes, text, expected) in cases {
            let error = restore(&target, &bytes, text).await.unwrap_err();
            assert!(
                expected(&error),
                "{:?} {case}: {error:?}",
                source_db.backend
            );
            assert!(!error.to_string().is_empty());
            assert_eq!(organizations(&target).await, 0, "{case}: nothing written");
        }

        // Another schema: the archive's is not this database's last migration.
        target
            .execute(
                "INSERT INTO seaql_migrations (version, applied_at) \
                 VALUES ('m29991231_000001_from_the_future', 0)",
            )
            .await;
        let error = restore(&target, &archive, PASSPHRASE).await.unwrap_err();
        assert!(matches!(error, BackupError::Schema { .. }), "{error:?}");
        assert_eq!(organizations(&target).await, 0);
        target
            .execute("DELETE FROM seaql_migrations WHERE version LIKE 'm2999%'")
            .await;

        // Into the database it came from: not empty.
        let error = restore(&source_db, &archive, PASSPHRASE).await.unwrap_err();
        assert!(matches!(error, BackupError::NotEmpty(1)), "{error:?}");
        assert_eq!(organizations(&source_db).await, 1);

        // And the untouched archive still restores.
        restore(&target, &archive, PASSPHRASE).await.unwrap();
    }
}

#[tokio::test]
async fn a_backup_taken_while_200_events_are_recorded_is_one_instant() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let org_id = seeded.owner.org_id;
        let db = Arc::new(source_db.db.clone());
        let owner = Arc::new(seeded.owner.clone());
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let (db, owner) = (Arc::clone(&db), Arc::clone(&owner));
                tokio::spawn(async move {
                    audit::record(
                        db.as_ref(),
                        org_id,
                        Event {
                            action: AuditAction::SignInFailed,
                            actor: Some(&owner),
                            target: Some(&owner),
                            outcome: Outcome::Denied,
                            details: serde_json::json!({ "attempt": i }),
                        },
                        &Source::default(),
                        t0(),
                    )
                    .await
                    .unwrap();
                })
            })
            .collect();
        let archive = take_backup(&source_db, org_id).await;
        for writer in writers {
            writer.await.unwrap();
        }

        // The archive's chain ends exactly at its signed head: no event half in.
        let target = empty_like(&source_db).await;
        let restored = restore(&target, &archive, PASSPHRASE).await.unwrap();
        let chain = audit::chain::verify(&target.db, org_id).await.unwrap();
        assert_eq!(chain.broken, None, "{:?}", source_db.backend);
        assert_eq!(chain.events, restored.manifest.audit_head.seq + 1);
        let all = audit::chain::verify(&source_db.db, org_id).await.unwrap();
        assert!(restored.manifest.audit_head.seq <= all.events);
    }
}

#[test]
fn a_backup_passphrase_must_be_hard_to_guess_and_typed_twice_alike() {
    let cases = [
        ("short", "short", Some("passphrase")),
        ("password1234", "password1234", Some("passphrase")),
        ("acmeacmeacme", "acmeacmeacme", Some("passphrase")),
        (
            PASSPHRASE,
            "correct staple orbit lantern",
            Some("passphrase_again"),
        ),
        (PASSPHRASE, PASSPHRASE, None),
    ];
    for (text, again, refused_on) in cases {
        let outcome = Passphrase::new_for_archive(text, again, &["Acme", "acme"]);
        assert_eq!(
            outcome.as_ref().err().map(|e| e.field.as_str()),
            refused_on,
            "{text:?}: {:?}",
            outcome.as_ref().err()
        );
    }
    assert_eq!(format!("{:?}", passphrase()), "Passphrase(..)");
}
