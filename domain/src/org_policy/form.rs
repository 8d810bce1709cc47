//! The policy form as typed: every setting a string, checked into an [`OrgPolicy`] within
//! every bound, or refused next to the one field that is wrong.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::issued_codes::{Issuers, MAX_USES, RecoveryCodeRules, minutes_text, parse_lifetime};
use super::settings::{
    CodeEntry, CodesMode, MAX_CODES_PER_SET, MAX_GRACE_DAYS, MAX_LOCKOUT_ATTEMPTS,
    MAX_LOCKOUT_MINUTES, MAX_SET_AGE_DAYS, MIN_CODES_PER_SET, OrgPolicy,
};
use crate::input::FieldError;

/// How the form writes a date: an `<input type=date>`'s value.
pub const DATE_FORMAT: &str = "%Y-%m-%d";
/// The years a date in the form may fall in.
const MIN_YEAR: i32 = 2000;
const MAX_YEAR: i32 = 2999;

/// The policy form as typed: every setting a string, checked by [`PolicyForm::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyForm {
    pub backup_codes: String,
    pub codes_per_set: String,
    pub max_set_age_days: String,
    pub low_codes_threshold: String,
    pub lockout_attempts: String,
    pub lockout_minutes: String,
    pub code_entry: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub restrict_after_backup_sign_in: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub recovery_code_approval: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub admins_request_backups: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub replace_when_low: Option<String>,
    /// A date, `YYYY-MM-DD` (an `<input type=date>`); blank: none.
    #[serde(default)]
    pub required_from: String,
    /// Days; blank reads as 0 (a form from before the setting existed).
    #[serde(default)]
    pub grace_days: String,
    /// Who may issue recovery codes ([`Issuers::as_str`]); blank reads as the default, as
    /// do the four below (a form from before the settings existed).
    #[serde(default)]
    pub recovery_code_issuers: String,
    /// A lifetime as people write one: `30m`, `8h`, `7d`.
    #[serde(default)]
    pub recovery_code_shortest: String,
    #[serde(default)]
    pub recovery_code_longest: String,
    #[serde(default)]
    pub recovery_code_default: String,
    /// Uses per code, 1 (one-time) to [`MAX_USES`].
    #[serde(default)]
    pub recovery_code_max_uses: String,
}

impl PolicyForm {
    /// The form filled in with `policy`.
    pub fn from_policy(policy: &OrgPolicy) -> Self {
        Self {
            backup_codes: policy.codes.as_str().to_owned(),
            codes_per_set: policy.codes_per_set.to_string(),
            max_set_age_days: policy.max_set_age_days.to_string(),
            low_codes_threshold: policy.low_codes_threshold.to_string(),
            lockout_attempts: policy.lockout_attempts.to_string(),
            lockout_minutes: policy.lockout_minutes.to_string(),
            code_entry: policy.code_entry.as_str().to_owned(),
            restrict_after_backup_sign_in: policy
                .restrict_after_backup_sign_in
                .then(|| "on".to_owned()),
            recovery_code_approval: policy.recovery_code_approval.then(|| "on".to_owned()),
            admins_request_backups: policy.admins_request_backups.then(|| "on".to_owned()),
            replace_when_low: policy.replace_when_low.then(|| "on".to_owned()),
            required_from: policy
                .required_from
                .map(|day| day.format(DATE_FORMAT).to_string())
                .unwrap_or_default(),
            grace_days: policy.grace_days.to_string(),
            recovery_code_issuers: policy.recovery_codes.issuers.as_str().to_owned(),
            recovery_code_shortest: minutes_text(policy.recovery_codes.shortest_minutes),
            recovery_code_longest: minutes_text(policy.recovery_codes.longest_minutes),
            recovery_code_default: minutes_text(policy.recovery_codes.default_minutes),
            recovery_code_max_uses: policy.recovery_codes.max_uses.to_string(),
        }
    }

    /// Checks every setting; the first problem comes back next to its field.
    pub fn parse(&self) -> Result<OrgPolicy, FieldError> {
        let codes = CodesMode::parse(&self.backup_codes).ok_or_else(|| {
            FieldError::new("backup_codes", "Choose Not allowed, Allowed or Required.")
        })?;
        let codes_per_set: u8 = number(
            "codes_per_set",
            &self.codes_per_set,
            MIN_CODES_PER_SET.into(),
            MAX_CODES_PER_SET.into(),
        )?;
        let max_set_age_days: u16 = number(
            "max_set_age_days",
            &self.max_set_age_days,
            0,
            MAX_SET_AGE_DAYS.into(),
        )?;
        let low_codes_threshold: u8 = number(
            "low_codes_threshold",
            &self.low_codes_threshold,
            0,
            u32::from(codes_per_set) - 1,
        )?;
        let lockout_attempts: u8 = number(
            "lockout_attempts",
            &self.lockout_attempts,
            1,
            MAX_LOCKOUT_ATTEMPTS.into(),
        )?;
        let lockout_minutes: u16 = number(
            "lockout_minutes",
            &self.lockout_minutes,
            1,
            MAX_LOCKOUT_MINUTES.into(),
        )?;
        let code_entry = CodeEntry::parse(&self.code_entry).ok_or_else(|| {
            FieldError::new(
                "code_entry",
                "Choose any unused code or a specific numbered code.",
            )
        })?;
        let required_from = match self.required_from.trim() {
            "" => None,
            typed => Some(
                NaiveDate::parse_from_str(typed, DATE_FORMAT)
                    .ok()
                    .filter(|day| (MIN_YEAR..=MAX_YEAR).contains(&day.year()))
                    .ok_or_else(|| {
                        FieldError::new(
                            "required_from",
                            format!(
                                "Enter a date as YYYY-MM-DD between {MIN_YEAR} and {MAX_YEAR}, \
                                 or leave it blank."
                            ),
                        )
                    })?,
            ),
        };
        let grace_days: u16 = match self.grace_days.trim() {
            "" => 0,
            typed => number("grace_days", typed, 0, MAX_GRACE_DAYS.into())?,
        };
        let recovery_codes = self.recovery_code_rules()?;
        Ok(OrgPolicy {
            codes,
            codes_per_set,
            max_set_age_days,
            low_codes_threshold,
            lockout_attempts,
            lockout_minutes,
            code_entry,
            restrict_after_backup_sign_in: self.restrict_after_backup_sign_in.is_some(),
            recovery_code_approval: self.recovery_code_approval.is_some(),
            admins_request_backups: self.admins_request_backups.is_some(),
            replace_when_low: self.replace_when_low.is_some(),
            required_from,
            grace_days,
            recovery_codes,
        })
    }

    /// The recovery-code rules as typed, each blank field read as the default.
    fn recovery_code_rules(&self) -> Result<RecoveryCodeRules, FieldError> {
        let default = RecoveryCodeRules::default();
        let issuers = match self.recovery_code_issuers.trim() {
            "" => default.issuers,
            typed => Issuers::parse(typed).ok_or_else(|| {
                FieldError::new(
                    "recovery_code_issuers",
                    "Choose nobody, owners, owners and administrators, or those and the help desk.",
                )
            })?,
        };
        let lifetime = |field: &str, typed: &str, default: u32| {
            parse_lifetime(field, typed).map(|minutes| minutes.unwrap_or(default))
        };
        let max_uses: u8 = match self.recovery_code_max_uses.trim() {
            "" => default.max_uses,
            typed => number("recovery_code_max_uses", typed, 1, MAX_USES.into())?,
        };
        RecoveryCodeRules {
            shortest_minutes: lifetime(
                "recovery_code_shortest",
                &self.recovery_code_shortest,
                default.shortest_minutes,
            )?,
            longest_minutes: lifetime(
                "recovery_code_longest",
                &self.recovery_code_longest,
                default.longest_minutes,
            )?,
            default_minutes: lifetime(
                "recovery_code_default",
                &self.recovery_code_default,
                default.default_minutes,
            )?,
            max_uses,
            issuers,
        }
        .checked()
    }
}

/// A whole number from `min` to `max` typed into `field`.
pub(super) fn number<T: TryFrom<u32>>(
    field: &str,
    input: &str,
    min: u32,
    max: u32,
) -> Result<T, FieldError> {
    let invalid = || FieldError::new(field, format!("Enter a whole number from {min} to {max}."));
    let value: u32 = input.trim().parse().map_err(|_| invalid())?;
    if !(min..=max).contains(&value) {
        return Err(invalid());
    }
    T::try_from(value).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::org_policy::issued_codes;

    fn form() -> PolicyForm {
        PolicyForm::from_policy(&OrgPolicy::default())
    }

    /// What a person (or an attacker) might type into one field of the form.
    fn typed() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,24}",
            "-?[0-9]{1,25}",
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "not_allowed",
                "allowed",
                "required",
                "any_code",
                "numbered_code",
                " 10 ",
                "1e3",
                "0x10",
                "<script>",
                "' OR 1=1 --",
                "\u{0}",
                "\u{661}\u{662}",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn any_form() -> impl Strategy<Value = PolicyForm> {
        (
            prop::array::uniform7(typed()),
            prop::option::of(typed()),
            prop::option::of(typed()),
            prop::option::of(typed()),
            prop::option::of(typed()),
            prop_oneof![typed(), "[0-9]{4}-[0-9]{2}-[0-9]{2}"],
            typed(),
            prop::array::uniform5(prop_oneof![
                typed(),
                "[0-9]{1,3}[mhd]",
                prop::sample::select(vec!["nobody", "owners", "admins", "helpdesk"])
                    .prop_map(str::to_owned),
            ]),
        )
            .prop_map(
                |(fields, restrict, approval, backups, replace, from, grace, codes_rules)| {
                    let [issuers, shortest, longest, default, max_uses] = codes_rules;
                    let [codes, per_set, age, low, attempts, minutes, entry] = fields;
                    PolicyForm {
                        backup_codes: codes,
                        codes_per_set: per_set,
                        max_set_age_days: age,
                        low_codes_threshold: low,
                        lockout_attempts: attempts,
                        lockout_minutes: minutes,
                        code_entry: entry,
                        restrict_after_backup_sign_in: restrict,
                        recovery_code_approval: approval,
                        admins_request_backups: backups,
                        replace_when_low: replace,
                        required_from: from,
                        grace_days: grace,
                        recovery_code_issuers: issuers,
                        recovery_code_shortest: shortest,
                        recovery_code_longest: longest,
                        recovery_code_default: default,
                        recovery_code_max_uses: max_uses,
                    }
                },
            )
    }

    fn any_policy() -> impl Strategy<Value = OrgPolicy> {
        (
            prop::sample::select(vec![
                CodesMode::NotAllowed,
                CodesMode::Allowed,
                CodesMode::Required,
            ]),
            MIN_CODES_PER_SET..=MAX_CODES_PER_SET,
            0..=MAX_SET_AGE_DAYS,
            any::<u8>(),
            1..=MAX_LOCKOUT_ATTEMPTS,
            1..=MAX_LOCKOUT_MINUTES,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            (
                prop::option::of((MIN_YEAR..=MAX_YEAR, 1..=366u32)),
                0..=MAX_GRACE_DAYS,
                prop::sample::select(Issuers::ALL.to_vec()),
                (
                    issued_codes::SHORTEST_MINUTES..=issued_codes::LONGEST_MINUTES,
                    issued_codes::SHORTEST_MINUTES..=issued_codes::LONGEST_MINUTES,
                    any::<u32>(),
                    1..=MAX_USES,
                ),
            ),
        )
            .prop_map(
                |(
                    codes,
                    per_set,
                    age,
                    low,
                    attempts,
                    minutes,
                    numbered,
                    restrict,
                    approval,
                    backups,
                    replace,
                    (from, grace_days, issuers, (a, b, within, max_uses)),
                )| {
                    let (shortest, longest) = (a.min(b), a.max(b));
                    OrgPolicy {
                        codes,
                        codes_per_set: per_set,
                        max_set_age_days: age,
                        low_codes_threshold: low % per_set,
                        lockout_attempts: attempts,
                        lockout_minutes: minutes,
                        code_entry: if numbered {
                            CodeEntry::NumberedCode
                        } else {
                            CodeEntry::AnyCode
                        },
                        restrict_after_backup_sign_in: restrict,
                        recovery_code_approval: approval,
                        admins_request_backups: backups,
                        replace_when_low: replace,
                        required_from: from.and_then(|(year, ordinal)| {
                            NaiveDate::from_yo_opt(year, ordinal)
                                .or_else(|| NaiveDate::from_yo_opt(year, 365))
                        }),
                        grace_days,
                        recovery_codes: RecoveryCodeRules {
                            shortest_minutes: shortest,
                            longest_minutes: longest,
                            default_minutes: shortest + within % (longest - shortest + 1),
                            max_uses,
                            issuers,
                        },
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever is typed, the form either gives a policy within every bound or names
        /// the one field that is wrong; it never panics.
        #[test]
        fn any_input_gives_a_policy_in_bounds_or_names_its_field(form in any_form()) {
            const FIELDS: [&str; 14] = [
                "backup_codes", "codes_per_set", "max_set_age_days", "low_codes_threshold",
                "lockout_attempts", "lockout_minutes", "code_entry", "required_from",
                "grace_days", "recovery_code_issuers", "recovery_code_shortest",
                "recovery_code_longest", "recovery_code_default", "recovery_code_max_uses",
            ];
            match form.parse() {
                Ok(policy) => {
                    prop_assert!((MIN_CODES_PER_SET..=MAX_CODES_PER_SET).contains(&policy.codes_per_set));
                    prop_assert!(policy.max_set_age_days <= MAX_SET_AGE_DAYS);
                    prop_assert!(policy.low_codes_threshold < policy.codes_per_set);
                    prop_assert!((1..=MAX_LOCKOUT_ATTEMPTS).contains(&policy.lockout_attempts));
                    prop_assert!((1..=MAX_LOCKOUT_MINUTES).contains(&policy.lockout_minutes));
                    prop_assert!(policy.grace_days <= MAX_GRACE_DAYS);
                    prop_assert!(policy
                        .required_from
                        .is_none_or(|day| (MIN_YEAR..=MAX_YEAR).contains(&day.year())));
                    prop_assert_eq!(policy.recovery_codes.checked(), Ok(policy.recovery_codes));
                }
                Err(error) => {
                    prop_assert!(FIELDS.contains(&error.field.as_str()), "{}", error.field);
                    prop_assert!(!error.message.is_empty());
                }
            }
        }

        /// Every policy in bounds survives the form: filled in, posted, parsed back.
        #[test]
        fn every_policy_fills_the_form_and_parses_back(policy in any_policy()) {
            prop_assert_eq!(PolicyForm::from_policy(&policy).parse().unwrap(), policy);
        }
    }

    #[test]
    fn the_default_form_parses_back_to_the_default_policy() {
        assert_eq!(form().parse().unwrap(), OrgPolicy::default());
    }

    #[test]
    fn every_setting_out_of_range_or_not_a_number_is_refused_next_to_its_field() {
        /// Sets one field of the form.
        type Setter = fn(&mut PolicyForm, &str);
        let cases: [(Setter, &str, &[&str]); 14] = [
            (
                |f, v| f.backup_codes = v.into(),
                "backup_codes",
                &["", "maybe", "ALLOWED"],
            ),
            (
                |f, v| f.codes_per_set = v.into(),
                "codes_per_set",
                &["4", "21", "-1", "ten", "1e3", "99999999999"],
            ),
            (
                |f, v| f.max_set_age_days = v.into(),
                "max_set_age_days",
                &["-1", "3651", "1.5", ""],
            ),
            (
                |f, v| f.low_codes_threshold = v.into(),
                "low_codes_threshold",
                &["10", "-2", "x"],
            ),
            (
                |f, v| f.lockout_attempts = v.into(),
                "lockout_attempts",
                &["0", "21", "<b>"],
            ),
            (
                |f, v| f.lockout_minutes = v.into(),
                "lockout_minutes",
                &["0", "1441", "' OR 1=1"],
            ),
            (|f, v| f.code_entry = v.into(), "code_entry", &["", "every"]),
            (
                |f, v| f.required_from = v.into(),
                "required_from",
                &[
                    "tomorrow",
                    "2026-02-30",
                    "1999-12-31",
                    "3000-01-01",
                    "14/12/2026",
                    "2026-12-14T00:00",
                ],
            ),
            (
                |f, v| f.grace_days = v.into(),
                "grace_days",
                &["-1", "366", "7.5", "a week"],
            ),
            (
                |f, v| f.recovery_code_issuers = v.into(),
                "recovery_code_issuers",
                &["everyone", "HELPDESK", "member"],
            ),
            (
                |f, v| f.recovery_code_shortest = v.into(),
                "recovery_code_shortest",
                &["9m", "31d", "soon", "90", "30s"],
            ),
            (
                |f, v| f.recovery_code_longest = v.into(),
                "recovery_code_longest",
                &["31d", "30m", "forever"],
            ),
            (
                |f, v| f.recovery_code_default = v.into(),
                "recovery_code_default",
                &["59m", "25h", "0m", "tomorrow"],
            ),
            (
                |f, v| f.recovery_code_max_uses = v.into(),
                "recovery_code_max_uses",
                &["0", "11", "many"],
            ),
        ];
        for (set, field, values) in cases {
            for value in values {
                let mut form = form();
                set(&mut form, value);
                let error = form.parse().unwrap_err();
                assert_eq!(error.field, field, "{field} = {value:?}");
            }
        }
    }
}
