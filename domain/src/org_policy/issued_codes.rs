//! The organization's rules for the recovery codes its administrators issue (issue 16,
//! item 3; what Microsoft Entra calls a Temporary Access Pass policy and Okta a Temporary
//! Access Code policy): how long a code may live, how many sign-ins one code allows, and
//! which roles may issue them.
//!
//! Lifetimes are whole minutes from [`SHORTEST_MINUTES`] (10 minutes) to [`LONGEST_MINUTES`]
//! (30 days). Who may issue compiles to Casbin rules ([`crate::authz::rules::issuer_rules`]):
//! the baseline lets owners, administrators and the help desk issue, each for the roles it
//! may; the organization's choice denies the roles it leaves out.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{identity::Role, input::FieldError};

/// The shortest lifetime any organization may allow, in minutes.
pub const SHORTEST_MINUTES: u32 = 10;
/// The longest lifetime any organization may allow, in minutes (30 days).
pub const LONGEST_MINUTES: u32 = 30 * 24 * 60;
/// The most sign-ins one code may allow.
pub const MAX_USES: u8 = 10;
/// How far ahead an issuer may set a code's start.
pub const LATEST_START_DAYS: i64 = 30;
/// How the issue form writes a start time: an `<input type=datetime-local>`'s value, in UTC.
pub const START_FORMAT: &str = "%Y-%m-%dT%H:%M";

/// Which roles may issue recovery codes (each still only for the roles the baseline lets it:
/// the help desk for members alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Issuers {
    /// Nobody: recovery codes are off, and codes already issued stop working.
    Nobody,
    /// Owners only.
    Owners,
    /// Owners and administrators.
    Admins,
    /// Owners, administrators and the help desk (the baseline).
    HelpDesk,
}

impl Issuers {
    pub const ALL: [Self; 4] = [Self::Nobody, Self::Owners, Self::Admins, Self::HelpDesk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nobody => "nobody",
            Self::Owners => "owners",
            Self::Admins => "admins",
            Self::HelpDesk => "helpdesk",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Nobody => "Nobody (recovery codes off)",
            Self::Owners => "Owners",
            Self::Admins => "Owners and administrators",
            Self::HelpDesk => "Owners, administrators and the help desk",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|issuers| issuers.as_str() == input.trim())
    }

    /// The roles the baseline lets issue codes that this choice leaves out: what the
    /// organization's deny rules name.
    pub fn barred(self) -> &'static [Role] {
        match self {
            Self::Nobody => &[Role::Owner, Role::Admin, Role::Helpdesk],
            Self::Owners => &[Role::Admin, Role::Helpdesk],
            Self::Admins => &[Role::Helpdesk],
            Self::HelpDesk => &[],
        }
    }

    /// Whether codes may be issued and used at all.
    pub fn codes_on(self) -> bool {
        self != Self::Nobody
    }

    /// How many roles may issue: a wider choice is a loosening.
    pub fn breadth(self) -> usize {
        3 - self.barred().len()
    }
}

/// The organization's rules for issued recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodeRules {
    /// The shortest lifetime an issuer may choose, in minutes.
    pub shortest_minutes: u32,
    /// The longest lifetime an issuer may choose, in minutes.
    pub longest_minutes: u32,
    /// The lifetime when the issuer does not choose one, in minutes, within the two above.
    pub default_minutes: u32,
    /// The most sign-ins an issuer may give one code: 1 means every code is one-time.
    pub max_uses: u8,
    pub issuers: Issuers,
}

impl Default for RecoveryCodeRules {
    /// What was fixed before the rules existed: a day, one use, the baseline's issuers; an
    /// issuer may choose down to an hour.
    fn default() -> Self {
        Self {
            shortest_minutes: 60,
            longest_minutes: 24 * 60,
            default_minutes: 24 * 60,
            max_uses: 1,
            issuers: Issuers::HelpDesk,
        }
    }
}

/// What an issuer asks for one code; `None` takes the rules' default (the default lifetime,
/// starting now, one use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeChoice {
    pub lifetime_minutes: Option<u32>,
    pub starts_at: Option<DateTime<Utc>>,
    pub uses: Option<u8>,
}

/// A code's terms, checked against the rules: it works from `starts_at` until `expires_at`,
/// for `uses` sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeTerms {
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub uses: u8,
}

impl RecoveryCodeRules {
    /// The rules as set, or the first field out of bounds: each lifetime from 10 minutes to
    /// 30 days, shortest ≤ default ≤ longest, uses from 1 to [`MAX_USES`].
    pub fn checked(self) -> Result<Self, FieldError> {
        let within = |minutes: u32| (SHORTEST_MINUTES..=LONGEST_MINUTES).contains(&minutes);
        let bounds = || {
            format!(
                "Enter a lifetime from {} to {}, e.g. 30m, 8h or 7d.",
                minutes_words(SHORTEST_MINUTES),
                minutes_words(LONGEST_MINUTES)
            )
        };
        for (field, minutes) in [
            ("recovery_code_shortest", self.shortest_minutes),
            ("recovery_code_longest", self.longest_minutes),
            ("recovery_code_default", self.default_minutes),
        ] {
            if !within(minutes) {
                return Err(FieldError::new(field, bounds()));
            }
        }
        if self.longest_minutes < self.shortest_minutes {
            return Err(FieldError::new(
                "recovery_code_longest",
                "The longest lifetime cannot be shorter than the shortest.",
            ));
        }
        if !(self.shortest_minutes..=self.longest_minutes).contains(&self.default_minutes) {
            return Err(FieldError::new(
                "recovery_code_default",
                format!(
                    "The default lifetime must lie from {} to {}.",
                    minutes_words(self.shortest_minutes),
                    minutes_words(self.longest_minutes)
                ),
            ));
        }
        if !(1..=MAX_USES).contains(&self.max_uses) {
            return Err(FieldError::new(
                "recovery_code_max_uses",
                format!("Enter a whole number from 1 to {MAX_USES}."),
            ));
        }
        Ok(self)
    }

    /// The terms of a code issued at `now` as `choice` asks, or the field that is out of the
    /// rules: `lifetime` (outside shortest–longest), `starts_at` (in the past, or more than
    /// [`LATEST_START_DAYS`] ahead), `uses` (outside 1–`max_uses`).
    pub fn terms(&self, choice: CodeChoice, now: DateTime<Utc>) -> Result<CodeTerms, FieldError> {
        let minutes = choice.lifetime_minutes.unwrap_or(self.default_minutes);
        if !(self.shortest_minutes..=self.longest_minutes).contains(&minutes) {
            return Err(FieldError::new(
                "lifetime",
                format!(
                    "Your organization allows a lifetime from {} to {}.",
                    minutes_words(self.shortest_minutes),
                    minutes_words(self.longest_minutes)
                ),
            ));
        }
        // A start typed a moment ago, in the minute the form was filled in, is now.
        let starts_at = match choice.starts_at {
            Some(at) if at < now - Duration::minutes(1) => {
                return Err(FieldError::new(
                    "starts_at",
                    "Choose a start time from now on, or leave it blank to start now.",
                ));
            }
            Some(at) if at > now + Duration::days(LATEST_START_DAYS) => {
                return Err(FieldError::new(
                    "starts_at",
                    format!("Choose a start time within {LATEST_START_DAYS} days."),
                ));
            }
            Some(at) => at.max(now),
            None => now,
        };
        let uses = choice.uses.unwrap_or(1);
        if !(1..=self.max_uses).contains(&uses) {
            return Err(FieldError::new(
                "uses",
                match self.max_uses {
                    1 => "Your organization allows one-time codes only.".to_owned(),
                    max => format!("Enter a whole number of uses from 1 to {max}."),
                },
            ));
        }
        Ok(CodeTerms {
            starts_at,
            expires_at: starts_at + Duration::minutes(minutes.into()),
            uses,
        })
    }
}

/// A lifetime typed as people write one (`30m`, `8h`, `7d`, `1h 30m`), in whole minutes;
/// blank is `None`. Refused next to `field` when it is not a duration or not whole minutes.
pub fn parse_lifetime(field: &str, typed: &str) -> Result<Option<u32>, FieldError> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new(field, "Enter a lifetime such as 30m, 8h or 7d.");
    let duration = humantime::parse_duration(typed).map_err(|_| invalid())?;
    if duration.subsec_nanos() != 0 || duration.as_secs() % 60 != 0 {
        return Err(FieldError::new(field, "Enter a lifetime in whole minutes."));
    }
    u32::try_from(duration.as_secs() / 60)
        .map(Some)
        .map_err(|_| invalid())
}

/// A start time as the issue form types it (`2026-12-01T09:30`, UTC); blank is `None`.
pub fn parse_start(typed: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    match typed.trim() {
        "" => Ok(None),
        typed => NaiveDateTime::parse_from_str(typed, START_FORMAT)
            .map(|at| Some(at.and_utc()))
            .map_err(|_| {
                FieldError::new(
                    "starts_at",
                    "Enter a start time as YYYY-MM-DDTHH:MM (UTC), or leave it blank.",
                )
            }),
    }
}

/// A number of uses as the issue form types it; blank is `None`. Whether it is within the
/// rules is [`RecoveryCodeRules::terms`]'s to say.
pub fn parse_uses(typed: &str) -> Result<Option<u8>, FieldError> {
    match typed.trim() {
        "" => Ok(None),
        typed => typed.parse().map(Some).map_err(|_| {
            FieldError::new(
                "uses",
                format!("Enter a whole number of uses from 1 to {MAX_USES}."),
            )
        }),
    }
}

/// Minutes as the form writes them back, which [`parse_lifetime`] reads: `7d`, `8h`, `90m`.
pub fn minutes_text(minutes: u32) -> String {
    match minutes {
        m if m % (24 * 60) == 0 => format!("{}d", m / (24 * 60)),
        m if m % 60 == 0 => format!("{}h", m / 60),
        m => format!("{m}m"),
    }
}

/// Minutes as people read them: `1 day`, `8 hours`, `1 hour 30 minutes`.
pub fn minutes_words(minutes: u32) -> String {
    let unit = |n: u32, one: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    };
    let (days, hours, minutes) = (minutes / (24 * 60), minutes / 60 % 24, minutes % 60);
    let parts: Vec<String> = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, one)| unit(n, one))
        .collect();
    if parts.is_empty() {
        "0 minutes".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn rules() -> RecoveryCodeRules {
        RecoveryCodeRules {
            shortest_minutes: 10,
            longest_minutes: 7 * 24 * 60,
            default_minutes: 60,
            max_uses: 3,
            issuers: Issuers::Admins,
        }
    }

    #[test]
    fn lifetimes_at_their_bounds_are_taken_and_one_minute_past_is_refused() {
        let rules = rules();
        let choose = |minutes| CodeChoice {
            lifetime_minutes: Some(minutes),
            ..CodeChoice::default()
        };
        for (minutes, taken) in [
            (9, false),
            (10, true),
            (60, true),
            (7 * 24 * 60, true),
            (7 * 24 * 60 + 1, false),
        ] {
            let terms = rules.terms(choose(minutes), now());
            assert_eq!(terms.is_ok(), taken, "{minutes} minutes");
            if let Ok(terms) = terms {
                assert_eq!(terms.starts_at, now());
                assert_eq!(
                    terms.expires_at - terms.starts_at,
                    Duration::minutes(minutes.into())
                );
            } else {
                assert_eq!(terms.unwrap_err().field, "lifetime");
            }
        }
        let default = rules.terms(CodeChoice::default(), now()).unwrap();
        assert_eq!(default.expires_at, now() + Duration::hours(1));
        assert_eq!(default.uses, 1);
    }

    #[test]
    fn a_start_may_be_now_or_up_to_thirty_days_ahead_and_the_lifetime_counts_from_it() {
        let rules = rules();
        let start = |at| CodeChoice {
            starts_at: Some(at),
            ..CodeChoice::default()
        };
        let later = now() + Duration::days(2);
        let terms = rules.terms(start(later), now()).unwrap();
        assert_eq!(
            (terms.starts_at, terms.expires_at),
            (later, later + Duration::hours(1))
        );
        // Typed in the minute the form was filled in: it starts now.
        let typed = now() - Duration::seconds(40);
        assert_eq!(rules.terms(start(typed), now()).unwrap().starts_at, now());
        for refused in [
            now() - Duration::minutes(2),
            now() + Duration::days(LATEST_START_DAYS) + Duration::minutes(1),
        ] {
            assert_eq!(
                rules.terms(start(refused), now()).unwrap_err().field,
                "starts_at"
            );
        }
        let last = now() + Duration::days(LATEST_START_DAYS);
        assert!(rules.terms(start(last), now()).is_ok());
    }

    #[test]
    fn uses_run_from_one_to_the_rules_most_and_one_time_rules_say_so() {
        let rules = rules();
        let uses = |n| CodeChoice {
            uses: Some(n),
            ..CodeChoice::default()
        };
        assert_eq!(rules.terms(uses(3), now()).unwrap().uses, 3);
        for refused in [0, 4] {
            assert_eq!(rules.terms(uses(refused), now()).unwrap_err().field, "uses");
        }
        let one_time = RecoveryCodeRules {
            max_uses: 1,
            ..rules
        };
        let error = one_time.terms(uses(2), now()).unwrap_err();
        assert!(error.message.contains("one-time"), "{}", error.message);
    }

    #[test]
    fn rules_out_of_bounds_name_their_field() {
        let good = rules();
        let cases: [(RecoveryCodeRules, &str); 7] = [
            (
                RecoveryCodeRules {
                    shortest_minutes: 9,
                    ..good
                },
                "recovery_code_shortest",
            ),
            (
                RecoveryCodeRules {
                    longest_minutes: LONGEST_MINUTES + 1,
                    ..good
                },
                "recovery_code_longest",
            ),
            (
                RecoveryCodeRules {
                    longest_minutes: 30,
                    shortest_minutes: 60,
                    default_minutes: 60,
                    ..good
                },
                "recovery_code_longest",
            ),
            (
                RecoveryCodeRules {
                    default_minutes: 5,
                    ..good
                },
                "recovery_code_default",
            ),
            (
                RecoveryCodeRules {
                    default_minutes: 8 * 24 * 60,
                    ..good
                },
                "recovery_code_default",
            ),
            (
                RecoveryCodeRules {
                    max_uses: 0,
                    ..good
                },
                "recovery_code_max_uses",
            ),
            (
                RecoveryCodeRules {
                    max_uses: MAX_USES + 1,
                    ..good
                },
                "recovery_code_max_uses",
            ),
        ];
        for (rules, field) in cases {
            assert_eq!(rules.checked().unwrap_err().field, field, "{rules:?}");
        }
        assert_eq!(good.checked().unwrap(), good);
        assert_eq!(
            RecoveryCodeRules::default().checked().unwrap(),
            RecoveryCodeRules::default()
        );
    }

    #[test]
    fn lifetimes_are_typed_as_people_write_them_and_written_back_the_same() {
        for (typed, minutes) in [
            ("30m", Some(30)),
            ("8h", Some(480)),
            ("7d", Some(7 * 24 * 60)),
            ("1h 30m", Some(90)),
            (" 90min ", Some(90)),
            ("", None),
        ] {
            assert_eq!(
                parse_lifetime("lifetime", typed).unwrap(),
                minutes,
                "{typed:?}"
            );
        }
        for refused in [
            "soon",
            "90",
            "-1h",
            "30s",
            "1h 30s",
            "99999999999999d",
            "<b>",
        ] {
            assert_eq!(
                parse_lifetime("lifetime", refused).unwrap_err().field,
                "lifetime",
                "{refused:?}"
            );
        }
        for minutes in [10, 59, 60, 90, 1440, 1500, LONGEST_MINUTES] {
            assert_eq!(
                parse_lifetime("lifetime", &minutes_text(minutes)).unwrap(),
                Some(minutes)
            );
        }
        assert_eq!(minutes_words(90), "1 hour 30 minutes");
        assert_eq!(minutes_words(24 * 60), "1 day");
        assert_eq!(minutes_words(LONGEST_MINUTES), "30 days");
    }

    #[test]
    fn uses_are_typed_as_whole_numbers_or_blank() {
        assert_eq!(parse_uses(" ").unwrap(), None);
        assert_eq!(parse_uses(" 3 ").unwrap(), Some(3));
        for refused in ["two", "-1", "1.5", "256"] {
            assert_eq!(
                parse_uses(refused).unwrap_err().field,
                "uses",
                "{refused:?}"
            );
        }
    }

    #[test]
    fn start_times_are_utc_minutes_or_blank() {
        assert_eq!(parse_start(" ").unwrap(), None);
        assert_eq!(parse_start("2026-12-01T09:00").unwrap(), Some(now()));
        for refused in [
            "tomorrow",
            "2026-12-01",
            "2026-13-01T09:00",
            "01/12/2026 09:00",
        ] {
            assert_eq!(parse_start(refused).unwrap_err().field, "starts_at");
        }
    }

    #[test]
    fn each_choice_of_issuers_bars_the_rest_of_the_baselines_issuers() {
        for issuers in Issuers::ALL {
            assert_eq!(Issuers::parse(issuers.as_str()), Some(issuers));
        }
        assert_eq!(Issuers::Nobody.breadth(), 0);
        assert_eq!(Issuers::HelpDesk.breadth(), 3);
        assert!(!Issuers::Nobody.codes_on());
        assert_eq!(Issuers::Owners.barred(), [Role::Admin, Role::Helpdesk]);
    }
}
