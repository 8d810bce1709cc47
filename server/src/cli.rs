//! Command-line tools for the operator: bootstrap an organization, add members, unlock a
//! member, check, checkpoint or export an organization's audit log, and add a version to the
//! server's secret key.
//!
//! Passwords are read from standard input (prompted without echo on a terminal), never
//! from the command line, where other users could see them in the process list.

use std::{
    io::{BufRead, IsTerminal},
    path::Path,
};

use domain::{
    accounts::{self, AccountError, NewMember},
    audit::{CheckpointError, SignedCheckpoint},
    db,
    hashing::PasswordHasher,
    identity::Role,
    secrets::{Password, SecretKey},
};

use crate::config::Config;

/// `lifeline create-org`: a new organization and its owner.
pub async fn create_org(config: &Config, name: &str, admin_email: &str) -> Result<(), String> {
    let db = open(config).await?;
    let password = read_password(admin_email)?;
    let hasher = hasher()?;
    let (org, owner) = accounts::create_organization(
        &db,
        &hasher,
        name,
        admin_email,
        &password,
        chrono::Utc::now(),
    )
    .await
    .map_err(explain)?;
    println!(
        "Created organization “{}” (--org {}) with owner {}.",
        org.name, org.slug, owner.email
    );
    Ok(())
}

/// `lifeline create-user`: a member of an existing organization.
pub async fn create_user(
    config: &Config,
    org: &str,
    email: &str,
    role: &str,
) -> Result<(), String> {
    let role = Role::parse(role).map_err(|e| format!("--role: {e}"))?;
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let password = read_password(email)?;
    let hasher = hasher()?;
    let new = NewMember {
        email,
        password: &password,
        role,
    };
    // The operator of the installation acts without an account: no gate to pass.
    let member = accounts::create_member(&db, &hasher, None, org.id, new, chrono::Utc::now())
        .await
        .map_err(explain)?;
    println!(
        "Created {} {} in “{}”.",
        member.role.as_str(),
        member.email,
        org.name
    );
    Ok(())
}

/// `lifeline audit verify`: walks the organization's chain under the server's key, and with
/// `against` (a checkpoint file `lifeline audit checkpoint` wrote) also checks the log against
/// that checkpoint; an error when the chain is broken, cut back or rewritten.
pub async fn audit_verify(
    config: &Config,
    org: &str,
    against: Option<&Path>,
) -> Result<(), String> {
    let checkpoint = against
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| SignedCheckpoint::parse(&text).map_err(|e| e.to_string()))
                .map_err(|problem| format!("--against {}: {problem}", path.display()))
        })
        .transpose()?;
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let state = match &checkpoint {
        None => domain::audit::verify(&db, org.id)
            .await
            .map_err(|e| format!("reading the audit log: {e}"))?,
        Some(checkpoint) => domain::audit::checkpoint::verify_against(&db, org.id, checkpoint)
            .await
            .map_err(|problem| match problem {
                CheckpointError::Db(e) => format!("reading the audit log: {e}"),
                refused => format!("--against: {refused}"),
            })?,
    };
    match (state.broken, checkpoint) {
        (None, None) => {
            println!(
                "The audit log of “{}” is intact: {} events, each linked to the one before.",
                org.name, state.events
            );
            Ok(())
        }
        (None, Some(checkpoint)) => {
            println!(
                "The audit log of “{}” is intact: {} events, each linked to the one before, \
                 and event #{} is the one the checkpoint of {} vouched for.",
                org.name,
                state.events,
                checkpoint.seq,
                checkpoint
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            Ok(())
        }
        (Some(broken), _) => Err(format!(
            "the audit log of “{}” is broken: {broken} ({} events verify before it)",
            org.name, state.events
        )),
    }
}

/// `lifeline audit checkpoint`: verifies the organization's whole chain, signs a checkpoint of
/// its head, stores it, and writes it as JSON to `out` (standard output when `None`), for the
/// auditor to keep outside the database.
pub async fn audit_checkpoint(
    config: &Config,
    org: &str,
    out: Option<&Path>,
) -> Result<(), String> {
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let checkpoint = domain::audit::checkpoint::sign(&db, org.id, &org.slug, chrono::Utc::now())
        .await
        .map_err(|problem| match problem {
            CheckpointError::Broken(broken) => format!(
                "the audit log of “{}” is broken, so no checkpoint was signed: {broken}",
                org.name
            ),
            other => other.to_string(),
        })?;
    let json = serde_json::to_string_pretty(&checkpoint).map_err(|e| e.to_string())?;
    match out {
        None => println!("{json}"),
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .map_err(|e| format!("--out {}: {e}", path.display()))?;
            println!(
                "Signed a checkpoint of the audit log of “{}” at event #{} and wrote it to {}; \
                 keep a copy where the database's writers cannot reach it.",
                org.name,
                checkpoint.seq,
                path.display()
            );
        }
    }
    Ok(())
}

/// `lifeline rotate-key`: adds a version to the key file, re-seals every stored TOTP secret
/// under it, and from then on audit events are linked and checkpoints signed under it. Old
/// versions stay in the file: what they sealed, linked and signed still verifies.
pub async fn rotate_key(config: &Config) -> Result<(), String> {
    let (_, version) = crate::keys::add_version(&config.secret_key)?;
    let (db, key) = open_with_key(config).await?;
    let resealed = domain::mfa::reseal_secrets(&db, &key)
        .await
        .map_err(|e| format!("key version {version} was added, but re-sealing failed: {e}"))?;
    let webhooks = domain::notifications::webhooks::reseal_secrets(&db, &key)
        .await
        .map_err(|e| {
            format!("key version {version} was added, but re-sealing webhook secrets failed: {e}")
        })?;
    println!(
        "Added secret key version {version}. Re-sealed {resealed} TOTP secrets and {webhooks} \
         webhook secrets under it; new \
         audit events are linked and checkpoints signed under it. Servers reading the same key \
         file take it up within a minute, without a restart. Keep every version in the file."
    );
    Ok(())
}

/// `lifeline audit export`: the organization's events on standard output, streamed.
pub async fn audit_export(
    config: &Config,
    org: &str,
    format: &str,
    since: Option<&str>,
) -> Result<(), String> {
    use std::io::Write;

    let csv = match format.trim() {
        "jsonl" => false,
        "csv" => true,
        _ => return Err("--format: use jsonl or csv".into()),
    };
    let since = since
        .map(|day| {
            chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|start| start.and_utc())
                .ok_or_else(|| format!("--since: {day:?} is not a day like 2026-01-01"))
        })
        .transpose()?;
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if csv {
        writeln!(out, "{}", domain::audit::CSV_HEADER).map_err(|e| e.to_string())?;
    }
    domain::audit::for_each_event(&db, org.id, since, |event| {
        let line = if csv {
            domain::audit::csv_line(&event)
        } else {
            serde_json::to_string(&event).map_err(std::io::Error::other)?
        };
        writeln!(out, "{line}")
    })
    .await
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

/// `lifeline unlock`: ends every lock of a member's sign-in factors, for an organization
/// whose owner is locked out with nobody to unlock them. Recorded in the audit log.
pub async fn unlock(config: &Config, org: &str, email: &str) -> Result<(), String> {
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let member = domain::members::unlock_by_operator(&db, org.id, email, chrono::Utc::now())
        .await
        .map_err(explain)?;
    println!("Unlocked {} in “{}”.", member.email, org.name);
    Ok(())
}

/// `lifeline policy export`: the policy in force (or as it stood `at` a past moment), its
/// exceptions and rules, as JSON.
pub async fn policy_export(config: &Config, org: &str, at: Option<&str>) -> Result<(), String> {
    let at = at
        .map(domain::org_policy::parse_as_of)
        .transpose()
        .map_err(|error| format!("--at: {}", error.message))?;
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let now = chrono::Utc::now();
    let export = match at {
        Some(at) => domain::org_policy::export_at(&db, org.id, at, now).await,
        None => domain::org_policy::export(&db, org.id, now).await,
    }
    .map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&export).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

/// `lifeline backup create`: an encrypted archive of the organization, written to `out`
/// (first as `out` plus `.partial`, moved onto `out` when complete, so no half archive is
/// left under the name asked for; `out` is reserved first, so nothing is overwritten).
pub async fn backup_create(config: &Config, org: &str, out: &Path) -> Result<(), String> {
    use domain::backup;

    if out.exists() {
        return Err(format!(
            "--out {}: the file exists; choose another name",
            out.display()
        ));
    }
    let (db, key) = open_with_key(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let passphrase = read_secret("Backup passphrase", "backup passphrase", true)?;
    let passphrase = backup::Passphrase::new_for_archive(
        &passphrase,
        &passphrase,
        &[org.name.as_str(), org.slug.as_str()],
    )
    .map_err(|e| format!("passphrase: {}", e.message))?;
    // The name asked for is taken now (empty, 0600), so that nothing another process puts
    // there meanwhile is overwritten; the archive is written beside it and moved onto it
    // when complete, so no half archive is ever under that name.
    crate::private_files::create_new(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!(
                "--out {}: the file exists; choose another name",
                out.display()
            )
        }
        _ => format!("--out {}: {e}", out.display()),
    })?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let file = match crate::private_files::create_new(&partial) {
        Ok(file) => file,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(format!("--out {}: {e}", partial.display()));
        }
    };
    let source = domain::audit::Source::default();
    let written = backup::create(
        &db,
        &key,
        backup::Request {
            org_id: org.id,
            by: None,
            source: &source,
        },
        &passphrase,
        std::io::BufWriter::new(file),
        |_| {},
    )
    .await;
    let manifest = match written {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(out);
            return Err(error.to_string());
        }
    };
    std::fs::rename(&partial, out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    println!(
        "Wrote a backup of “{}” to {}: {} rows in {} files, audit log to event #{}. Keep the \
         passphrase apart from the file: without it the archive cannot be opened.",
        org.name,
        out.display(),
        manifest.rows(),
        manifest.files.len(),
        manifest.audit_head.seq
    );
    Ok(())
}

/// `lifeline backup restore`: an archive back into an empty database, or with `--as-new-org`
/// beside the organizations it holds (`--as-slug` when its slug is taken).
pub async fn backup_restore(
    config: &Config,
    file: &Path,
    as_new_org: bool,
    as_slug: Option<&str>,
) -> Result<(), String> {
    use domain::backup::{self, BackupError};

    let archive =
        std::fs::File::open(file).map_err(|e| format!("--file {}: {e}", file.display()))?;
    let (db, key) = open_with_key(config).await?;
    let passphrase = backup::Passphrase::to_open(&read_secret(
        "Backup passphrase",
        "backup passphrase",
        false,
    )?);
    let (input, source, now) = (
        std::io::BufReader::new(archive),
        domain::audit::Source::default(),
        chrono::Utc::now(),
    );
    let restored = if as_new_org {
        backup::restore_as_new_organization(&db, &key, input, &passphrase, as_slug, &source, now)
            .await
    } else {
        backup::restore(&db, &key, input, &passphrase, &source, now).await
    }
    .map_err(|e| match e {
        BackupError::NotEmpty(_) => {
            format!("{e} (--as-new-org, and --as-slug NEW if its slug is taken)")
        }
        BackupError::SlugTaken(_) => format!("{e} (--as-slug NEW)"),
        other => other.to_string(),
    })?;
    let org = &restored.organization;
    if as_new_org {
        println!(
            "Restored “{}” as a new organization (--org {}, id {}; id {} in the archive) as of \
             {}: {} rows.",
            org.name,
            org.slug,
            org.id,
            restored.manifest.organization.id,
            restored.manifest.created_at.to_rfc3339(),
            restored.manifest.rows()
        );
    } else {
        println!(
            "Restored “{}” (--org {}) as of {}: {} rows.",
            org.name,
            org.slug,
            restored.manifest.created_at.to_rfc3339(),
            restored.manifest.rows()
        );
    }
    if as_new_org {
        println!(
            "Its audit log was linked anew under this installation's key (its events have new \
             ids), and the backup.restored event keeps the archive's signed head (event #{}).",
            restored.manifest.audit_head.seq
        );
    } else if restored.chain_relinked {
        println!(
            "The archive came from an installation with another secret key: its audit log was \
             linked anew under this one, and the backup.restored event keeps the archive's \
             signed head (event #{}).",
            restored.manifest.audit_head.seq
        );
    }
    if restored.codes_ended > 0 {
        println!(
            "Backup codes and issued sign-in codes of {} member(s) were ended: their digests \
             need the other installation's key. They sign in with their authenticator and \
             make new ones.",
            restored.codes_ended
        );
    }
    Ok(())
}

async fn open(config: &Config) -> Result<db::DatabaseConnection, String> {
    Ok(open_with_key(config).await?.0)
}

/// The database, migrated, and the server's key, installed for the audit log; when this run
/// applied the migration that keys chains, the plain chains from before are keyed first, as
/// the server does at start-up.
async fn open_with_key(config: &Config) -> Result<(db::DatabaseConnection, SecretKey), String> {
    // The key first: one that cannot be had must not leave the database migrated with its
    // audit chains not yet keyed.
    let key = crate::keys::load(&config.secret_key)?;
    crate::private_files::create_sqlite_file(&config.database_url)
        .map_err(|e| format!("DATABASE_URL {e}"))?;
    let connection = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("DATABASE_URL {e}"))?;
    let keying = domain::audit::chains_await_keying(&connection)
        .await
        .map_err(|e| format!("cannot read the database's migrations: {e}"))?;
    db::migrate(&connection)
        .await
        .map_err(|e| format!("cannot apply database migrations: {e}"))?;
    let upgraded = crate::keys::install_for_audit(&connection, &key, keying)
        .await
        .map_err(|e| format!("keying the audit log: {e}"))?;
    for outcome in &upgraded {
        // Standard error: standard output is the command's own (an export, a checkpoint).
        eprintln!("lifeline: {}", crate::keys::describe_upgrade(outcome));
    }
    Ok((connection, key))
}

fn hasher() -> Result<PasswordHasher, String> {
    PasswordHasher::new(1).map_err(|e| e.to_string())
}

/// One line saying what was wrong, naming the field for input errors.
fn explain(error: AccountError) -> String {
    match error {
        AccountError::Invalid(field) => format!("{}: {}", field.field, field.message),
        other => other.to_string(),
    }
}

/// A secret, `name`d in prompts and errors (e.g. "password"): prompted after `prompt` (and
/// again when `confirm`) without echo on a terminal, otherwise the first line of standard
/// input. Errors name it: unreadable, the two entries differ, none given.
fn read_secret(prompt: &str, name: &str, confirm: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    let secret = if stdin.is_terminal() {
        let first = rpassword::prompt_password(format!("{prompt}: "))
            .map_err(|e| format!("cannot read the {name}: {e}"))?;
        if confirm {
            let again = rpassword::prompt_password(format!("Repeat the {name}: "))
                .map_err(|e| format!("cannot read the {name}: {e}"))?;
            if first != again {
                return Err(format!("{name}: the two entries differ"));
            }
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the {name} from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if secret.is_empty() {
        return Err(format!("{name}: none given on standard input"));
    }
    Ok(secret)
}

/// The password for `account` ([`read_secret`], confirmed on a terminal).
fn read_password(account: &str) -> Result<Password, String> {
    read_secret(&format!("Password for {account}"), "password", true).map(Password::new)
}
