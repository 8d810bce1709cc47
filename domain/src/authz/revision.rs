//! Which revision of the organizations' rules the gate may go on using without asking the
//! database again.
//!
//! Every change to the rules raises `policy_revision` in its transaction
//! ([`super::rules::bump_revision`]). Reading that counter is a database round trip (about
//! 200 µs on SQLite, more to a PostgreSQL server across a network): four times what one
//! decision may cost (50 µs, issue 17). So the gate trusts a revision it read for
//! [`TRUSTED_FOR`], and a change made by another instance is in force here from the first
//! read after its commit: within that time, plus the rebuild of the organization's enforcer.
//! The bound is 1 s (issue 8); `cargo bench -p domain --bench gate` measures it with a
//! second process: about 100 ms after the change's `save` returned.
//!
//! A change made by this process is in force at once. Raising the revision notes the time
//! ([`note_own_change`]), before the transaction commits; for [`OWN_CHANGE_SETTLES_IN`] after
//! that, every decision reads the revision again, so a change that commits within that time
//! is seen by the next decision after its commit (an administrator who saves "Not allowed"
//! and asks again is refused at once). One that takes longer to commit falls back to the
//! bound above.
//!
//! Why not `LISTEN`/`NOTIFY`: PostgreSQL would tell every instance within milliseconds, but
//! it needs a connection of its own per instance and must fall back to reading when that
//! connection drops; SQLite has no notification across processes, and its `PRAGMA
//! data_version` is per connection and still a round trip. Against a 1 s bound, a read every
//! 100 ms per instance costs nothing measurable on either (`cargo bench -p domain --bench gate`).

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How long a revision read from the database is trusted before the next decision reads it
/// again: the longest another instance's change can go unseen here, before the enforcer is
/// rebuilt.
pub const TRUSTED_FOR: Duration = Duration::from_millis(100);

/// After this process raises the revision, how long every decision reads it again (the
/// transaction that raised it commits within this, or its change is seen within
/// [`TRUSTED_FOR`] of its commit).
pub const OWN_CHANGE_SETTLES_IN: Duration = Duration::from_secs(2);

/// When this process last raised a revision: nanoseconds since [`epoch`], plus one (0 for
/// never).
static LAST_OWN_CHANGE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Notes that this process is raising the rules' revision (called in the transaction that
/// raises it, before it commits).
pub(crate) fn note_own_change() {
    let since_epoch = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
    LAST_OWN_CHANGE.fetch_max(since_epoch + 1, Ordering::AcqRel);
}

/// When this process last raised the rules' revision, if it ever did.
fn last_own_change() -> Option<Instant> {
    match LAST_OWN_CHANGE.load(Ordering::Acquire) {
        0 => None,
        noted => Some(epoch() + Duration::from_nanos(noted - 1)),
    }
}

/// The revision of the rules last read from the database, and when that read began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KnownRevision {
    pub(super) revision: i64,
    read_at: Option<Instant>,
}

impl KnownRevision {
    /// `revision`, read by a query that began at `read_at`.
    pub(super) fn read(revision: i64, read_at: Instant) -> Self {
        Self {
            revision,
            read_at: Some(read_at),
        }
    }

    /// Whether a decision at `now` may use this revision without reading it again.
    pub(super) fn is_trusted(&self, now: Instant) -> bool {
        self.is_trusted_given(now, last_own_change())
    }

    /// [`Self::is_trusted`], given when this process last raised a revision.
    fn is_trusted_given(&self, now: Instant, own_change: Option<Instant>) -> bool {
        let fresh = self
            .read_at
            .is_some_and(|read_at| now.saturating_duration_since(read_at) < TRUSTED_FOR);
        let settling = own_change
            .is_some_and(|changed| now.saturating_duration_since(changed) < OWN_CHANGE_SETTLES_IN);
        fresh && !settling
    }

    /// What this read and `other` tell together: the revision only rises, so the higher of
    /// the two (a read that began later may have run before a commit the other saw), as of
    /// the later start.
    pub(super) fn merged(self, other: Self) -> Self {
        Self {
            revision: self.revision.max(other.revision),
            read_at: self.read_at.max(other.read_at),
        }
    }
}

impl Default for KnownRevision {
    /// Never read: the first decision reads it.
    fn default() -> Self {
        Self {
            revision: 0,
            read_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_trusted_for_a_while_unless_this_process_changed_the_rules() {
        // Late enough that a change three seconds before it is still an `Instant`.
        let read_at = Instant::now() + Duration::from_secs(5);
        let known = KnownRevision::read(7, read_at);
        let after = |d: Duration| read_at + d;
        // (age of the read, this process's last change relative to the read, trusted)
        let cases: &[(Duration, Option<i64>, bool)] = &[
            (Duration::ZERO, None, true),
            (TRUSTED_FOR - Duration::from_millis(1), None, true),
            (TRUSTED_FOR, None, false),
            (Duration::from_secs(5), None, false),
            // A change of ours a moment ago: read again, however fresh the read.
            (Duration::from_millis(1), Some(0), false),
            (Duration::from_millis(1), Some(-1_000), false),
            // Our change has settled: the read is trusted again while fresh.
            (Duration::from_millis(1), Some(-3_000), true),
        ];
        for &(age, own_change_ms, trusted) in cases {
            let now = after(age);
            let own_change = own_change_ms.map(|ms| {
                let offset = Duration::from_millis(ms.unsigned_abs());
                if ms >= 0 {
                    read_at + offset
                } else {
                    read_at - offset
                }
            });
            assert_eq!(
                known.is_trusted_given(now, own_change),
                trusted,
                "read {age:?} ago, own change {own_change_ms:?} ms from the read"
            );
        }
        assert!(!KnownRevision::default().is_trusted_given(read_at, None));
    }

    #[test]
    fn two_reads_tell_the_higher_revision_as_of_the_later_start() {
        let early = Instant::now();
        let late = early + Duration::from_millis(5);
        // (first read, second read, what they tell together)
        let cases = [
            ((3, early), (4, late), (4, late)),
            // The later read ran before a commit the earlier one saw.
            ((4, early), (3, late), (4, late)),
            ((3, early), (3, early), (3, early)),
        ];
        for ((r1, at1), (r2, at2), (r, at)) in cases {
            let (first, second) = (KnownRevision::read(r1, at1), KnownRevision::read(r2, at2));
            let together = KnownRevision::read(r, at);
            assert_eq!(first.merged(second), together);
            assert_eq!(second.merged(first), together);
        }
        assert_eq!(
            KnownRevision::default().merged(KnownRevision::read(2, early)),
            KnownRevision::read(2, early)
        );
    }

    #[test]
    fn noting_a_change_makes_it_the_last() {
        let before = Instant::now();
        note_own_change();
        let noted = last_own_change().unwrap();
        assert!(noted >= before - Duration::from_millis(1));
        assert!(noted <= Instant::now());
    }
}
