//! Scheduled backups (`LIFELINE_BACKUP_SCHEDULE`): at an interval, an encrypted archive of
//! every organization ([`domain::backup::create`]) written to
//! `{folder}/{slug}/{slug}-{UTC time, e.g. 20261130T021500Z}.age`, and the newest
//! `LIFELINE_BACKUP_SCHEDULE_KEEP` of each kept.
//!
//! - The first run is at start-up, then one every interval. An organization whose newest
//!   archive is younger than half an interval is skipped: restarts do not each write one and
//!   push an older one out, and a second instance writing to the same folder mostly finds
//!   the work done. The schedule is still meant for one instance.
//! - An archive is written as `….age.partial` (mode 0600, folders 0700), synced, then
//!   renamed, so a finished name always holds a whole archive. Pruning counts and deletes
//!   finished names of the pattern only; a `.partial` left by a stopped run is deleted once
//!   it is an interval and an hour old. Nothing else in the folders is touched.
//! - One organization's failure is logged and the others go on.
//! - The passphrase is read from `LIFELINE_BACKUP_PASSPHRASE_FILE` at start-up (a change
//!   takes a restart) and never logged. A restore reads it from standard input:
//!   `lifeline backup restore --file … < passphrase-file`.

use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::{
    backup::{self, Passphrase},
    db::DatabaseConnection,
    secrets::SecretKey,
};

use crate::{config::BackupSchedule, private_files};

/// The UTC time in an archive's name, to the second.
const STAMP: &str = "%Y%m%dT%H%M%SZ";
/// How a finished archive's name ends.
const ARCHIVE: &str = ".age";
/// How an archive being written is named: its finished name and this.
const PARTIAL: &str = ".partial";
/// How long past one interval a `.partial` must be before a run takes it for the leftover of
/// a stopped run (and not one that another instance is writing).
const LEFTOVER_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// Words that make a passphrase easy to guess here.
const CONTEXT: [&str; 5] = ["lifeline", "backup", "backups", "scheduled", "passphrase"];

/// The passphrase on the first line of the file at `path`, which must be the server's user's
/// alone and hard to guess (as a passphrase typed for a backup). Errors start with the path
/// and never hold the passphrase.
pub fn read_passphrase(path: &Path) -> Result<Passphrase, String> {
    let in_file = |problem: String| format!("{}: {problem}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| in_file(format!("cannot read it: {e}")))?;
    // It opens every archive: nobody but the server's user may read it.
    private_files::refuse_if_shared(path).map_err(in_file)?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(in_file(
            "its first line is empty; write the passphrase on it".into(),
        ));
    }
    Passphrase::new_for_archive(line, line, &CONTEXT).map_err(|e| {
        in_file(format!(
            "the passphrase on its first line is refused (it is not shown): {}",
            e.message
        ))
    })
}

/// Starts the schedule, when there is one: reads the passphrase, creates the folder, and runs
/// now and then every interval for the life of the process. Errors: the passphrase file's or
/// the folder's, naming the variable.
pub fn spawn(
    db: DatabaseConnection,
    key: SecretKey,
    schedule: Option<BackupSchedule>,
) -> Result<(), String> {
    let Some(schedule) = schedule else {
        return Ok(());
    };
    let passphrase = read_passphrase(&schedule.passphrase_file)
        .map_err(|problem| format!("LIFELINE_BACKUP_PASSPHRASE_FILE {problem}"))?;
    private_files::create_folder(&schedule.folder)
        .map_err(|problem| format!("LIFELINE_BACKUP_SCHEDULE_DIR {problem}"))?;
    tracing::info!(
        every = %humantime::format_duration(schedule.every),
        folder = %schedule.folder.display(),
        keep = schedule.keep,
        "scheduled backups are on: a run now, then one every interval"
    );
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(schedule.every.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            run(&db, &key, &schedule, &passphrase).await;
        }
    });
    Ok(())
}

/// What one run did, for its log line.
#[derive(Debug, Default)]
struct Tally {
    backed_up: usize,
    skipped: usize,
    failed: usize,
    kept: usize,
    deleted: usize,
}

/// One run: every organization backed up (or skipped, or its failure logged), then one line.
async fn run(
    db: &DatabaseConnection,
    key: &SecretKey,
    schedule: &BackupSchedule,
    passphrase: &Passphrase,
) {
    let started = Instant::now();
    let ids = match domain::identity::organization_ids(db).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::error!(%error, "scheduled backups: cannot list the organizations");
            return;
        }
    };
    let mut tally = Tally::default();
    for org_id in ids {
        let slug = match domain::accounts::organization(db, org_id).await {
            Ok(org) => org.slug,
            Err(error) => {
                tracing::error!(org_id, %error, "scheduled backup failed");
                tally.failed += 1;
                continue;
            }
        };
        match back_up(db, key, schedule, passphrase, org_id, &slug).await {
            Ok(folder) => {
                if folder.written {
                    tally.backed_up += 1;
                } else {
                    tally.skipped += 1;
                }
                tally.kept += folder.kept;
                tally.deleted += folder.deleted;
            }
            Err(problem) => {
                tracing::error!(org = %slug, %problem, "scheduled backup failed");
                tally.failed += 1;
            }
        }
    }
    tracing::info!(
        backed_up = tally.backed_up,
        skipped = tally.skipped,
        failed = tally.failed,
        kept = tally.kept,
        deleted = tally.deleted,
        seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        folder = %schedule.folder.display(),
        "scheduled backup run finished"
    );
}

/// What became of one organization's folder in a run.
#[derive(Debug)]
struct FolderOutcome {
    /// A new archive was written (not skipped).
    written: bool,
    /// Archives in the folder afterwards.
    kept: usize,
    /// Archives deleted as older than the newest `keep`.
    deleted: usize,
}

/// Backs up one organization into its folder, unless its newest archive is younger than half
/// an interval, and deletes its archives beyond the newest `keep`. Errors in words.
async fn back_up(
    db: &DatabaseConnection,
    key: &SecretKey,
    schedule: &BackupSchedule,
    passphrase: &Passphrase,
    org_id: i32,
    slug: &str,
) -> Result<FolderOutcome, String> {
    // Slugs are made of these; anything else must not become a path.
    if slug.is_empty()
        || !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("the slug {slug:?} cannot name a folder"));
    }
    let folder = schedule.folder.join(slug);
    private_files::create_folder(&folder)?;
    let now = Utc::now();
    // Within `BACKUP_SCHEDULE_RANGE`, which chrono holds with room to spare.
    let every =
        chrono::Duration::from_std(schedule.every).unwrap_or_else(|_| chrono::Duration::days(366));
    remove_leftovers(&folder, slug, now - every - LEFTOVER_AFTER);

    let archives = archives(&folder, slug)?;
    let name = archive_name(slug, now);
    // A name from the future (a clock set back) does not stop the schedule.
    let recent = archives.first().is_some_and(|(taken, _)| {
        (chrono::Duration::zero()..every / 2).contains(&now.signed_duration_since(*taken))
    });
    if recent || archives.iter().any(|(_, existing)| *existing == name) {
        return Ok(FolderOutcome {
            written: false,
            kept: archives.len(),
            deleted: 0,
        });
    }
    write_archive(db, key, passphrase, org_id, &folder, &name).await?;
    let (kept, deleted) = prune(&folder, slug, &name, schedule.keep)?;
    Ok(FolderOutcome {
        written: true,
        kept,
        deleted,
    })
}

/// Writes the archive of `org_id` to `folder/name`: first as `name.partial`, synced, then
/// renamed; on failure the partial file is removed. Errors in words.
async fn write_archive(
    db: &DatabaseConnection,
    key: &SecretKey,
    passphrase: &Passphrase,
    org_id: i32,
    folder: &Path,
    name: &str,
) -> Result<(), String> {
    let path = folder.join(name);
    let partial = folder.join(format!("{name}{PARTIAL}"));
    let file = private_files::create_new(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let source = domain::audit::Source::default();
    let written = backup::create(
        db,
        key,
        backup::Request {
            org_id,
            by: None,
            source: &source,
        },
        passphrase,
        &mut out,
        |_| {},
    )
    .await;
    let finished = written
        .map_err(|e| e.to_string())
        .and_then(|_| {
            out.flush()
                .map_err(|e| format!("writing {}: {e}", partial.display()))?;
            // On disk before it takes the finished name, so that a crash never leaves that
            // name on a file whose data was still in the cache.
            out.get_ref()
                .sync_all()
                .map_err(|e| format!("syncing {}: {e}", partial.display()))
        })
        .and_then(|()| {
            std::fs::rename(&partial, &path)
                .map_err(|e| format!("renaming {} to {name}: {e}", partial.display()))
        });
    if let Err(problem) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(problem);
    }
    // The rename itself is on disk once the folder is synced; an archive is there either way.
    let _ = std::fs::File::open(folder).and_then(|dir| dir.sync_all());
    Ok(())
}

/// `{slug}-{UTC time}.age`.
fn archive_name(slug: &str, at: DateTime<Utc>) -> String {
    format!("{slug}-{}{ARCHIVE}", at.format(STAMP))
}

/// When the archive named `name` was taken, if it is a finished archive of `slug`'s
/// ([`archive_name`], exactly).
fn taken_at(slug: &str, name: &str) -> Option<DateTime<Utc>> {
    let stamp = name
        .strip_prefix(slug)?
        .strip_prefix('-')?
        .strip_suffix(ARCHIVE)?;
    let at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?.and_utc();
    // Only the form this module writes: no other widths, signs or spaces.
    (archive_name(slug, at) == name).then_some(at)
}

/// The finished archives of `slug` in `folder` (regular files named as [`archive_name`]
/// makes them), newest first. Errors in words.
fn archives(folder: &Path, slug: &str) -> Result<Vec<(DateTime<Utc>, String)>, String> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
    let mut archives: Vec<(DateTime<Utc>, String)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((taken_at(slug, &name)?, name))
        })
        .collect();
    archives.sort_by(|a, b| b.cmp(a));
    Ok(archives)
}

/// Deletes `slug`'s finished archives in `folder` beyond the newest `keep`, never `written`
/// (the one this run wrote, kept even if a clock set back made others look newer). Returns
/// how many are kept and how many were deleted. Errors in words.
fn prune(folder: &Path, slug: &str, written: &str, keep: u32) -> Result<(usize, usize), String> {
    let others: Vec<(DateTime<Utc>, String)> = archives(folder, slug)?
        .into_iter()
        .filter(|(_, name)| name != written)
        .collect();
    let keep_others = (keep as usize).saturating_sub(1);
    let mut deleted = 0;
    for (_, name) in others.iter().skip(keep_others) {
        match std::fs::remove_file(folder.join(name)) {
            Ok(()) => deleted += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(format!("cannot delete the old archive {name}: {error}"));
            }
        }
    }
    Ok((others.len().min(keep_others) + 1, deleted))
}

/// Removes `slug`'s `.partial` files in `folder` named for a time before `before`: what runs
/// stopped midway (the server killed) left. Failures are logged.
fn remove_leftovers(folder: &Path, slug: &str, before: DateTime<Utc>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let stale = name
            .strip_suffix(PARTIAL)
            .and_then(|finished| taken_at(slug, finished))
            .is_some_and(|taken| taken < before);
        if stale
            && entry.file_type().is_ok_and(|kind| kind.is_file())
            && let Err(error) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(
                %error,
                file = %entry.path().display(),
                "removing a stopped backup's partial file"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 2, 15, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn archive_names_carry_the_utc_time_to_the_second() {
        assert_eq!(archive_name("acme", at(0)), "acme-20261130T021500Z.age");
        assert_eq!(taken_at("acme", "acme-20261130T021500Z.age"), Some(at(0)));
    }

    #[test]
    fn only_names_of_the_exact_pattern_are_archives() {
        for name in [
            "acme-20261130T021500Z.age.partial",
            "acme-20261130T021500Z.age~",
            "acme-20261130T021500Z",
            "acme-2026-11-30T021500Z.age",
            "acme-20261130T0215Z.age",
            "acme-020261130T021500Z.age",
            "acme-20261130T021500.age",
            "acme-20261130t021500Z.age",
            "acme-20261130T021500Z.AGE",
            "acme-2-20261130T021500Z.age",
            "acme20261130T021500Z.age",
            "other-20261130T021500Z.age",
            "notes.txt",
        ] {
            assert_eq!(taken_at("acme", name), None, "{name}");
        }
        // An organization whose slug starts like another's reads only its own.
        assert_eq!(
            taken_at("acme-2", "acme-2-20261130T021500Z.age"),
            Some(at(0))
        );
    }

    #[test]
    fn pruning_keeps_the_newest_and_touches_nothing_else() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        for seconds in [0, 60, 120, 180] {
            std::fs::write(dir.join(archive_name("acme", at(seconds))), "x").unwrap();
        }
        for other in [
            "notes.txt",
            "acme-20261130T021500Z.age.partial",
            "other-20261130T021500Z.age",
        ] {
            std::fs::write(dir.join(other), "x").unwrap();
        }
        std::fs::create_dir(dir.join("acme-20261130T000000Z.age")).unwrap();

        let written = archive_name("acme", at(180));
        assert_eq!(prune(dir, "acme", &written, 2).unwrap(), (2, 2));
        assert_eq!(
            names(dir),
            [
                "acme-20261130T000000Z.age",
                "acme-20261130T021500Z.age.partial",
                "acme-20261130T021700Z.age",
                "acme-20261130T021800Z.age",
                "notes.txt",
                "other-20261130T021500Z.age",
            ]
        );
    }

    #[test]
    fn the_archive_just_written_is_kept_even_when_others_look_newer() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        for seconds in [0, 3600] {
            std::fs::write(dir.join(archive_name("acme", at(seconds))), "x").unwrap();
        }
        // The clock was set back: the new archive's name is the oldest.
        let written = archive_name("acme", at(-60));
        std::fs::write(dir.join(&written), "x").unwrap();
        assert_eq!(prune(dir, "acme", &written, 1).unwrap(), (1, 2));
        assert_eq!(names(dir), [written]);
    }

    #[test]
    fn only_old_partial_files_are_taken_for_leftovers() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        let old = format!("{}{PARTIAL}", archive_name("acme", at(0)));
        let fresh = format!("{}{PARTIAL}", archive_name("acme", at(7200)));
        for name in [&old, &fresh, &archive_name("acme", at(0))] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        remove_leftovers(dir, "acme", at(3600));
        assert_eq!(names(dir), [archive_name("acme", at(0)), fresh]);
    }

    #[test]
    fn the_passphrase_is_the_first_line_of_a_private_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("passphrase");
        std::fs::write(&path, "violet tractor whispers under copper rain\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        read_passphrase(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        let error = read_passphrase(&path).unwrap_err();
        assert!(error.contains("chmod 600"), "{error}");
        assert!(!error.contains("violet"), "{error}");
    }
}
