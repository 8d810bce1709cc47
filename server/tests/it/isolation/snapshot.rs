//! Acme's data before and after the calls: every row of it, its archives in the backup
//! folder, its audit log and policy as exported, and its audit chain verified; and the rows
//! of notices, alerts, webhooks and backups Acme is given first, which the organizations'
//! fixture does not make.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration as StdDuration, Instant},
};

use chrono::{Duration, Utc};
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    backup::{
        Passphrase,
        jobs::{self, BackupJobError, JobState},
    },
    command::Command,
    incidents, notification_addresses,
    notifications::{
        AlertSettings, NotMe,
        webhooks::{MAX_PER_ORG, UrlRules},
    },
    org_policy::{
        alerts::save_alerts,
        webhooks::{WebhookForm, add_webhook},
    },
    secrets::SecretKey,
    testing::TestDatabase,
};
use sea_orm::{ConnectionTrait, Statement};
use sha2::{Digest, Sha256};

use crate::support::{cli::cli, organizations::Acme};

/// Acme's alerts on refused backup codes: this many within [`ACME_FAILED_MINUTES`]. Not the
/// default (10 in 10), so that Globex saving the same settings writes a row of its own.
pub const ACME_FAILED_COUNT: &str = "5";
/// See [`ACME_FAILED_COUNT`].
pub const ACME_FAILED_MINUTES: &str = "30";
/// The second address Acme's admin gets security notifications at. Globex never types it.
pub const ACME_SECOND_ADDRESS: &str = "pager@acme.test";
/// The host of Acme's webhooks. Globex never types it.
pub const ACME_WEBHOOK_HOST: &str = "siem.acme.test";
/// A passphrase zxcvbn scores as hard to guess: Acme's archives are encrypted to it, and the
/// catalogue's backup request sends it.
pub const BACKUP_PASSPHRASE: &str = "violet tractor whispers under copper rain";

/// Gives Acme rows in the tables of notices and alerts: alert settings of its own (every
/// alert on, at [`ACME_FAILED_COUNT`] refused codes in [`ACME_FAILED_MINUTES`] minutes), a
/// second address for its admin (not yet confirmed), and a "This wasn't me" report by its
/// owner, who has no codes for it to stop and no session yet for it to end; the notices
/// these make, to the owner and the admins, are left unread. Then as many webhooks as Acme
/// may have ([`MAX_PER_ORG`]), each for `incident` events only, which no call of the tests
/// makes: nothing is delivered, and adding one more is refused. And an API token of its
/// owner's ([`ACME_TOKEN_ID`]). `key` is the key the server
/// starts with, which signs the report's link. Returns the webhooks' ids.
pub async fn add_acme_notification_rows(
    database: &TestDatabase,
    key: &SecretKey,
    acme: &Acme,
) -> Vec<i32> {
    let db = &database.db;
    let authz = Authz::load(db).await.unwrap();
    let source = Source::default();
    let now = Utc::now();
    let settings = AlertSettings {
        failed_redemptions_count: ACME_FAILED_COUNT.parse().unwrap(),
        failed_redemptions_minutes: ACME_FAILED_MINUTES.parse().unwrap(),
        ..AlertSettings::default()
    };
    save_alerts(
        &Command::new(db, &authz, &acme.owner, &source, now),
        &settings,
    )
    .await
    .unwrap();
    let admin = accounts::list_members(db, acme.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|member| member.email == "admin@acme.test")
        .unwrap();
    notification_addresses::add(
        &Command::new(db, &authz, &admin, &source, now),
        ACME_SECOND_ADDRESS,
    )
    .await
    .unwrap();
    let link = NotMe::new(acme.org_id, acme.owner.id, now).token(key);
    incidents::report(db, key, &link, &source, now)
        .await
        .unwrap();
    let by_owner = Command::new(db, &authz, &acme.owner, &source, now);
    let mut webhooks = Vec::new();
    for n in 1..=MAX_PER_ORG {
        let hook = WebhookForm {
            name: format!("Acme SIEM {n}"),
            url: format!("https://{ACME_WEBHOOK_HOST}/in/{n}"),
            events: vec!["incident".into()],
        }
        .parse(&UrlRules::default())
        .unwrap();
        webhooks.push(add_webhook(&by_owner, &hook).await.unwrap().webhook.id);
    }
    // A personal access token of Acme's owner ([`ACME_TOKEN_ID`]), for the API.
    let token = domain::api_tokens::create(
        &by_owner,
        &domain::api_tokens::TokenForm {
            name: "Acme directory sync".to_owned(),
            scopes: vec!["members:read".to_owned()],
            lifetime_days: "30".to_owned(),
        },
    )
    .await
    .unwrap();
    assert_eq!(token.listing.id, ACME_TOKEN_ID);
    webhooks
}

/// The id of Acme's API token: the first one made.
pub const ACME_TOKEN_ID: i32 = 1;

/// Where the server keeps the backups requested in the console in these tests
/// (`LIFELINE_BACKUP_DIR`): a folder in a temporary folder of the test's own, whose path no
/// answer may show (where the server keeps its files is the operator's business).
pub struct BackupFolder(tempfile::TempDir);

impl BackupFolder {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    /// The folder the archives are written to, as the server is told it.
    pub fn archives(&self) -> PathBuf {
        self.0.path().join("backups")
    }

    /// The server's variable naming [`Self::archives`].
    pub fn server_var(&self) -> (&'static str, String) {
        (
            "LIFELINE_BACKUP_DIR",
            self.archives().to_str().unwrap().to_owned(),
        )
    }

    /// The temporary folder's path, which any mention of the backup folder (or of the file
    /// standing in a folder's place, [`add_acme_backups`]) starts with.
    pub fn marker(&self) -> String {
        self.0.path().to_str().unwrap().to_owned()
    }
}

/// Acme's requested backups ([`add_acme_backups`]).
pub struct AcmeBackups {
    /// Every one's id: expired, failed, deleted, ready.
    pub ids: Vec<i32>,
    /// The one ready to download, requested by Acme's owner, whose archive is in the folder.
    pub ready: i32,
}

/// Gives Acme a backup in each state a finished one can be in, each requested by its owner
/// and built as the server builds them (in `folder`, under `key`, encrypted to
/// [`BACKUP_PASSPHRASE`] with a cheap work factor): one expired (built, then swept after its
/// time), one failed (its folder could not be made: a file stands in its place, and the
/// reason names that path), one deleted, and one ready, whose archive stays in the folder.
/// That is as many requests as an organization may make in a day (failed ones do not
/// count), so a further request by Acme's owner is refused and writes nothing.
pub async fn add_acme_backups(
    database: &TestDatabase,
    key: &SecretKey,
    acme: &Acme,
    folder: &BackupFolder,
) -> AcmeBackups {
    let db = &database.db;
    let authz = Authz::load(db).await.unwrap();
    let source = Source::default();
    let by_owner = |now| Command::new(db, &authz, &acme.owner, &source, now);
    let passphrase = Passphrase::new_for_archive(BACKUP_PASSPHRASE, BACKUP_PASSPHRASE, &[])
        .unwrap()
        .with_work_factor(2);
    let archives = folder.archives();
    let per_day = jobs::DEFAULT_PER_DAY;
    let built = |id, into: PathBuf| {
        let passphrase = passphrase.clone();
        async move { jobs::build(db, key, id, &passphrase, &into).await.unwrap() }
    };

    let expired = jobs::request(&by_owner(Utc::now()), per_day)
        .await
        .unwrap()
        .id;
    assert_eq!(built(expired, archives.clone()).await, JobState::Ready);
    let after_its_time = Utc::now() + jobs::KEPT_FOR + Duration::minutes(1);
    let swept = jobs::sweep(db, &archives, after_its_time).await.unwrap();
    assert_eq!(swept.expired, 1);

    let blocked = folder.0.path().join("not-a-folder");
    std::fs::write(&blocked, b"").unwrap();
    let failed = jobs::request(&by_owner(Utc::now()), per_day)
        .await
        .unwrap()
        .id;
    assert_eq!(
        built(failed, blocked.join("backups")).await,
        JobState::Failed
    );

    let deleted = jobs::request(&by_owner(Utc::now()), per_day)
        .await
        .unwrap()
        .id;
    assert_eq!(built(deleted, archives.clone()).await, JobState::Ready);
    jobs::delete(&by_owner(Utc::now()), deleted, &archives)
        .await
        .unwrap();

    let ready = jobs::request(&by_owner(Utc::now()), per_day)
        .await
        .unwrap()
        .id;
    assert_eq!(built(ready, archives.clone()).await, JobState::Ready);

    let refused = jobs::request(&by_owner(Utc::now()), per_day).await;
    assert!(
        matches!(refused, Err(BackupJobError::DailyLimit { .. })),
        "Acme has requested a day's backups: {refused:?}"
    );
    // Rows made later (Globex's backups) get later ids, which no Acme row of any kind has:
    // an id in a Globex answer that is Acme's is Acme's row.
    assert!(
        acme.ids().iter().all(|&id| id <= i64::from(ready)),
        "{:?}",
        acme.ids()
    );
    AcmeBackups {
        ids: vec![expired, failed, deleted, ready],
        ready,
    }
}

/// Waits until no organization but `org_id` has a backup being built: the backup folder is
/// shared, and a snapshot of it is taken when other organizations' archives are complete
/// (or gone), so that only whole files of theirs are there to leave out.
async fn wait_for_builds_of_others(database: &TestDatabase, org_id: i32) {
    let backend = database.db.get_database_backend();
    let sql = format!(
        "SELECT COUNT(*) AS n FROM backup_job WHERE org_id <> {org_id} AND state = 'building'"
    );
    let started = Instant::now();
    loop {
        let row = database
            .db
            .query_one(Statement::from_string(backend, sql.clone()))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 0 {
            return;
        }
        assert!(
            started.elapsed() < StdDuration::from_secs(180),
            "another organization's backup is still being built after 3 minutes"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

/// Acme's archives in the backup `folder`: every file there (name, size, SHA-256) but the
/// archives of other organizations' backups, which are waited for first.
async fn acme_archives(database: &TestDatabase, org_id: i32, folder: &BackupFolder) -> Vec<String> {
    wait_for_builds_of_others(database, org_id).await;
    let backend = database.db.get_database_backend();
    let sql = format!("SELECT file FROM backup_job WHERE org_id <> {org_id} AND file IS NOT NULL");
    let others: Vec<String> = database
        .db
        .query_all(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "file").unwrap())
        .collect();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder.archives()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if others.contains(&name) {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        files.push(format!(
            "{name} | {} bytes | {:x}",
            bytes.len(),
            Sha256::digest(&bytes)
        ));
    }
    files.sort();
    files
}

/// Everything Acme has, read straight from the database, the backup folder and through the
/// command line: its rows in every table (secrets by length only), its archives in
/// `backups`, its audit log as exported, and its policy as exported. Two snapshots are equal
/// when nothing of Acme's changed.
pub async fn acme_snapshot(
    database: &TestDatabase,
    acme: &Acme,
    backups: &BackupFolder,
) -> BTreeMap<String, Vec<String>> {
    let org = acme.org_id;
    let members = format!("SELECT id FROM user_account WHERE org_id = {org}");
    let sets = format!("SELECT id FROM backup_code_set WHERE user_id IN ({members})");
    let tables: [(&str, &str, String); 22] = [
        (
            "organization",
            "id, name, slug, created_at",
            format!("id = {org}"),
        ),
        (
            "user_account",
            "id, org_id, email, password_hash, role, length(totp_secret), totp_enabled_at, \
             totp_last_step, created_at, mfa_setup_required, \
             length(totp_replacement_secret), totp_replacement_key_version",
            format!("org_id = {org}"),
        ),
        (
            "backup_code_set",
            "id, user_id, generated_at, ended_at, end_reason, length(salt), params, \
             code_count, expired_at, codes_used, last_used_at",
            format!("user_id IN ({members})"),
        ),
        (
            "backup_code",
            "id, set_id, slot, length(digest), used_at",
            format!("set_id IN ({sets})"),
        ),
        (
            "recovery_code",
            "id, org_id, user_id, requested_by_id, requested_by, requested_at, \
             approved_by_id, approved_by, approved_at, length(salt), length(digest), params, \
             revealed_at, used_at, ended_at, expires_at, starts_at, max_uses, uses, end_reason",
            format!("org_id = {org}"),
        ),
        (
            "member_group",
            "id, org_id, name, name_key, exception, exception_reason, created_by_id, \
             created_by, created_at",
            format!("org_id = {org}"),
        ),
        (
            "group_member",
            "id, org_id, group_id, user_id, added_at",
            format!("org_id = {org}"),
        ),
        (
            "helpdesk_scope",
            "id, org_id, user_id, group_id",
            format!("org_id = {org}"),
        ),
        (
            "policy_exception",
            "id, org_id, user_id, effect, reason, created_by_id, created_by, created_at",
            format!("org_id = {org}"),
        ),
        (
            "org_policy",
            "id, org_id, version, backup_codes, codes_per_set, max_set_age_days, \
             low_codes_threshold, lockout_attempts, lockout_minutes, code_entry, \
             restrict_after_backup_sign_in, saved_by_id, saved_by, saved_at, changes, \
             recovery_code_approval, admins_request_backups, replace_when_low, required_from, \
             grace_days, recovery_code_shortest_minutes, recovery_code_longest_minutes, \
             recovery_code_default_minutes, recovery_code_max_uses, recovery_code_issuers",
            format!("org_id = {org}"),
        ),
        (
            "casbin_rule",
            "id, ptype, v0, v1, v2, v3, v4, v5",
            format!("v1 = 'org:{org}' OR v2 = 'org:{org}'"),
        ),
        (
            "factor_attempt",
            "user_id, factor, source, attempts, window_started_at, locked_until, lockouts",
            format!("user_id IN ({members})"),
        ),
        (
            "alert_settings",
            "org_id, issued_code, privileged_backup_sign_in, failed_redemptions, \
             failed_redemptions_count, failed_redemptions_minutes, lock, policy_loosened, \
             incident, saved_at, saved_by",
            format!("org_id = {org}"),
        ),
        (
            "notification_address",
            "id, user_id, email, length(token_digest), created_at, verified_at",
            format!("user_id IN ({members})"),
        ),
        (
            "incident_report",
            "id, org_id, user_id, length(nonce), reported_at",
            format!("org_id = {org} OR user_id IN ({members})"),
        ),
        // What the outbox holds for Acme and whether it was read, not how its delivery goes:
        // the server sends the messages while the tests run.
        (
            "notification_outbox",
            "id, org_id, user_id, kind, recipient, subject, length(body_text), \
             length(body_html), idempotency_key, created_at, read_at, webhook_id",
            format!("org_id = {org} OR user_id IN ({members})"),
        ),
        (
            "webhook",
            "id, org_id, name, url, length(secret), key_version, events, created_at, \
             created_by",
            format!("org_id = {org}"),
        ),
        (
            "api_token",
            "id, org_id, member_id, name, prefix, length(digest), scopes, created_at, \
             expires_at, last_used_at, revoked_at",
            format!("org_id = {org}"),
        ),
        (
            "backup_job",
            "id, org_id, requested_by_id, requested_by, requested_at, state, rows_written, \
             rows_total, updated_at, file, bytes, sha256, error, finished_at, expires_at, \
             downloads, last_downloaded_at",
            format!("org_id = {org}"),
        ),
        (
            "audit_chain_head",
            "org_id, seq, hash",
            format!("org_id = {org}"),
        ),
        (
            "code_use_day",
            "org_id, day, redeemed, refused",
            format!("org_id = {org}"),
        ),
        (
            "audit_event",
            "id, org_id, at, actor_id, actor, action, target_id, target, outcome, source_ip, \
             user_agent, details, seq, prev_hash, hash",
            format!("org_id = {org}"),
        ),
    ];
    let backend = database.db.get_database_backend();
    let mut snapshot = BTreeMap::new();
    for (table, columns, filter) in tables {
        let row = columns
            .split(", ")
            .map(|column| format!("COALESCE(CAST({column} AS TEXT), '-')"))
            .collect::<Vec<_>>()
            .join(" || ' | ' || ");
        let sql = format!("SELECT {row} AS row FROM {table} WHERE {filter} ORDER BY 1");
        let rows = database
            .db
            .query_all(Statement::from_string(backend, sql.clone()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "row").unwrap())
            .collect();
        assert!(
            !rows.is_empty() || table == "factor_attempt",
            "Acme has no {table} rows: the snapshot would see nothing"
        );
        snapshot.insert(format!("table {table}"), rows);
    }
    let archives = acme_archives(database, org, backups).await;
    assert!(
        !archives.is_empty(),
        "Acme has no archive in the backup folder: the snapshot would see none"
    );
    snapshot.insert("backup folder".into(), archives);

    let (ok, jsonl, stderr) = cli(
        &database.url,
        &["audit", "export", "--org", "acme", "--format", "jsonl"],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    snapshot.insert(
        "lifeline audit export".into(),
        jsonl.lines().map(str::to_owned).collect(),
    );
    let (ok, policy, stderr) = cli(&database.url, &["policy", "export", "--org", "acme"], "").await;
    assert!(ok, "{stderr}");
    let mut policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    // The moment of the export is the one thing that differs between two exports.
    policy["exported_at"] = serde_json::Value::Null;
    snapshot.insert(
        "lifeline policy export".into(),
        serde_json::to_string_pretty(&policy)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    snapshot
}

/// Fails with the rows that differ when Acme's snapshot changed.
pub fn assert_acme_unchanged(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
    what: &str,
) {
    for (part, rows) in before {
        let now = &after[part];
        let gone: Vec<&String> = rows.iter().filter(|r| !now.contains(r)).collect();
        let new: Vec<&String> = now.iter().filter(|r| !rows.contains(r)).collect();
        assert!(
            gone.is_empty() && new.is_empty() && rows == now,
            "{what} changed Acme's {part}:\n  before only: {gone:#?}\n  after only: {new:#?}"
        );
    }
}

/// `lifeline audit verify --org acme` passes.
pub async fn assert_acme_chain_intact(database: &TestDatabase) {
    let (ok, stdout, stderr) = cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
    assert!(ok && stdout.contains("is intact"), "{stdout}{stderr}");
}
