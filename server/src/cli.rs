//! Command-line tools for the operator: bootstrap an organization, add members, unlock a
//! member, and check or export an organization's audit log.
//!
//! Passwords are read from standard input (prompted without echo on a terminal), never
//! from the command line, where other users could see them in the process list.

use std::io::{BufRead, IsTerminal};

use domain::{
    accounts::{self, AccountError, NewMember},
    db,
    hashing::PasswordHasher,
    identity::Role,
    secrets::Password,
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

/// `lifeline audit verify`: walks the organization's chain; an error when it is broken.
pub async fn audit_verify(config: &Config, org: &str) -> Result<(), String> {
    let db = open(config).await?;
    let org = accounts::organization_by_slug(&db, org)
        .await
        .map_err(explain)?;
    let state = domain::audit::verify(&db, org.id)
        .await
        .map_err(|e| format!("reading the audit log: {e}"))?;
    match state.broken {
        None => {
            println!(
                "The audit log of “{}” is intact: {} events, each linked to the one before.",
                org.name, state.events
            );
            Ok(())
        }
        Some(broken) => Err(format!(
            "the audit log of “{}” is broken: {broken} ({} events verify before it)",
            org.name, state.events
        )),
    }
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

async fn open(config: &Config) -> Result<db::DatabaseConnection, String> {
    let connection = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("DATABASE_URL {e}"))?;
    db::migrate(&connection)
        .await
        .map_err(|e| format!("cannot apply database migrations: {e}"))?;
    Ok(connection)
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

/// The password for `account`: prompted twice without echo on a terminal, otherwise the
/// first line of standard input.
fn read_password(account: &str) -> Result<Password, String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {account}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Repeat the password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("password: the two entries differ".into());
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err("password: none given on standard input".into());
    }
    Ok(Password::new(password))
}
