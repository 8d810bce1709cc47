//! Look-up secrets (NIST SP 800-63B §5.1.2): the 12-digit codes that stand in for the
//! second factor — a member's backup codes and the recovery code an administrator issues —
//! as they are made, typed, digested and compared.
//!
//! - Codes come from the operating system's CSPRNG.
//! - [`PlainCode`] has no `Serialize` and a `Debug` that hides it.
//! - Digests are argon2id keyed with a pepper derived from the server's secret key, behind
//!   the password hasher's bound on concurrency ([`crate::hashing`]).
//! - A guess is compared with every code of a set in constant time.

use std::{fmt, sync::Arc};

use rand::{Rng, rngs::OsRng};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::{
    hashing::{DigestParams, HashError, PasswordHasher},
    input::FieldError,
    secrets::SecretKey,
};

/// Digits per code: about 40 bits, enough for a one-time code behind argon2 and lockouts.
pub const CODE_DIGITS: usize = 12;
/// Inputs longer than this are not looked at: no code written with spaces or dashes is.
const MAX_INPUT_CHARS: usize = 64;
pub(crate) const SALT_BYTES: usize = 16;
/// What the pepper is derived for, from the server's secret key.
const PEPPER_PURPOSE: &str = "lifeline/backup-code-pepper/v1";

/// One backup code in plaintext: 12 ASCII digits. No `Serialize`, and a `Debug` that hides
/// it; [`PlainCode::grouped`] is the one way to read it, for showing it to its owner once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PlainCode(String);

impl PlainCode {
    pub(crate) fn random() -> Self {
        // gen_range samples uniformly (rejection sampling), so every code is equally likely.
        let number = OsRng.gen_range(0..10u64.pow(CODE_DIGITS as u32));
        Self(format!("{number:0width$}", width = CODE_DIGITS))
    }

    /// The code in groups of four for reading: `4821 0937 5516`.
    pub fn grouped(&self) -> String {
        let digits = self.0.as_bytes();
        digits
            .chunks(4)
            .map(|group| String::from_utf8_lossy(group).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for PlainCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainCode(…)")
    }
}

/// Reads a code as a person types it, or as a word processor or phone rewrote it: 12 digits,
/// with any separators between them. Compatibility forms fold first (Unicode NFKC, so
/// full-width `４` reads as `4`); then white space, every dash and minus (`-`, `–`, `—`, `−`)
/// and invisible formatting characters (soft hyphen, zero-width space and joiners, BOM) are
/// separators. Other scripts' digits (`٤٨٢١…`) are refused rather than guessed at.
///
/// # Errors
/// [`FieldError`] on `code`: blank, or anything that can never be a code (letters, the wrong
/// number of digits) — which is no attempt at guessing one.
pub fn parse_code(input: &str) -> Result<PlainCode, FieldError> {
    let malformed = || {
        FieldError::new(
            "code",
            "A backup verification code is 12 digits, like 4821 0937 5516.",
        )
    };
    if input.trim().is_empty() {
        return Err(FieldError::new(
            "code",
            "Enter one of your backup verification codes.",
        ));
    }
    if input.len() > MAX_INPUT_CHARS * 4 || input.chars().count() > MAX_INPUT_CHARS {
        return Err(malformed());
    }
    let digits: String = input.nfkc().filter(|c| !is_separator(*c)).collect();
    if digits.len() != CODE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    Ok(PlainCode(digits))
}

/// Whether `c` (after NFKC) only separates digit groups: white space, dash punctuation, the
/// minus sign, or an invisible formatting character (Unicode's categories Zs/Pd/Cf).
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || c == '\u{2212}'
        || matches!(
            c.general_category(),
            GeneralCategory::DashPunctuation | GeneralCategory::Format
        )
}

/// Names the pepper `key` derives for code digests without revealing it: the first 16 bytes
/// of SHA-256 over a label and the pepper, in hex. Equal names, equal peppers: a backup
/// archive carries it, so that a restore knows whether its codes can be checked here.
pub fn pepper_id(key: &SecretKey) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"lifeline/backup-code-pepper-id/v1\0");
    hash.update(key.derive(PEPPER_PURPOSE));
    hex::encode(&hash.finalize()[..16])
}

/// Digests backup codes: argon2id at the password parameters, keyed with a pepper derived
/// from the server's secret key, behind the password hasher's bound on concurrency.
#[derive(Clone)]
pub struct BackupCodeHasher {
    hasher: PasswordHasher,
    pepper: Arc<[u8; 32]>,
}

impl BackupCodeHasher {
    pub fn new(hasher: PasswordHasher, key: &SecretKey) -> Self {
        Self {
            hasher,
            pepper: Arc::new(key.derive(PEPPER_PURPOSE)),
        }
    }

    pub(crate) async fn digest(
        &self,
        code: &PlainCode,
        salt: &[u8],
        params: DigestParams,
    ) -> Result<[u8; 32], HashError> {
        self.hasher
            .digest(
                code.0.as_bytes().to_vec(),
                salt.to_vec(),
                Arc::clone(&self.pepper),
                params,
            )
            .await
    }

    /// A place with the hasher for one digest, taken before anything else the digest needs
    /// (an attempt reserved), or [`HashError::Busy`] at once when its queue is full.
    pub(crate) fn admit(&self) -> Result<CodeAdmission, HashError> {
        Ok(CodeAdmission {
            admission: self.hasher.admit()?,
            pepper: Arc::clone(&self.pepper),
        })
    }

    /// The digest of each of `codes`, in order, as one caller of the hasher (a new set's
    /// codes take one place in its queue, however many there are).
    pub(crate) async fn digest_all(
        &self,
        codes: &[PlainCode],
        salt: &[u8],
        params: DigestParams,
    ) -> Result<Vec<[u8; 32]>, HashError> {
        let secrets = codes
            .iter()
            .map(|code| code.0.as_bytes().to_vec())
            .collect();
        self.hasher
            .digest_all(secrets, salt.to_vec(), Arc::clone(&self.pepper), params)
            .await
    }
}

/// A place with the backup-code hasher ([`BackupCodeHasher::admit`]), spent by one digest.
pub(crate) struct CodeAdmission {
    admission: crate::hashing::Admission,
    pepper: Arc<[u8; 32]>,
}

impl CodeAdmission {
    pub(crate) async fn digest(
        self,
        code: &PlainCode,
        salt: &[u8],
        params: DigestParams,
    ) -> Result<[u8; 32], HashError> {
        self.admission
            .digest(
                code.0.as_bytes().to_vec(),
                salt.to_vec(),
                self.pepper,
                params,
            )
            .await
    }
}

/// The index of the digest in `digests` that equals `digest`. Every digest is compared, and
/// the comparison and selection do not branch on the data, so the time taken does not say
/// which one matched or whether one did.
pub(crate) fn find_in_constant_time<'a, I>(digests: I, digest: &[u8; 32]) -> Option<usize>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, candidate) in digests.into_iter().enumerate() {
        let hit = candidate.ct_eq(digest.as_slice());
        index = u32::conditional_select(&index, &u32::try_from(i).unwrap_or(u32::MAX), hit);
        found |= hit;
    }
    bool::from(found).then_some(index as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn random_codes_are_twelve_ascii_digits() {
        for _ in 0..1000 {
            let code = PlainCode::random();
            assert_eq!(code.0.len(), CODE_DIGITS);
            assert!(code.0.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn codes_are_grouped_in_fours_and_hidden_from_debug() {
        let code = PlainCode("482109375516".into());
        assert_eq!(code.grouped(), "4821 0937 5516");
        assert_eq!(format!("{code:?}"), "PlainCode(…)");
    }

    #[test]
    fn parse_accepts_spaces_and_dashes() {
        for input in [
            "482109375516",
            "4821 0937 5516",
            "4821-0937-5516",
            "  4821 - 0937 - 5516  ",
            "4 8 2 1 0 9 3 7 5 5 1 6",
            "4821\t0937\u{a0}5516",
            "4821\u{2013}0937\u{2013}5516",
            "4821 \u{2014} 0937 \u{2212} 5516",
            "4821\u{ad}0937\u{200b}5516\u{feff}",
            "\u{200c}4821\u{200d}0937\u{2060}5516",
            "\u{ff14}\u{ff18}\u{ff12}\u{ff11}\u{ff10}\u{ff19}\u{ff13}\u{ff17}\u{ff15}\u{ff15}\u{ff11}\u{ff16}",
            "4821\u{ff0d}0937\u{fe63}5516",
        ] {
            assert_eq!(parse_code(input).unwrap().0, "482109375516", "{input:?}");
        }
    }

    #[test]
    fn parse_refuses_everything_else_with_a_message_for_the_code_field() {
        let long = "1".repeat(10 * 1024);
        for input in [
            "",
            "   ",
            "48210937551",
            "4821093755161",
            "4821 0937 551a",
            "abcdefghijkl",
            "٤٨٢١٠٩٣٧٥٥١٦",
            "4821_0937_5516",
            "4821.0937.5516",
            "<script>1</script>",
            "' OR 1=1 --",
            &long,
        ] {
            let error = parse_code(input).unwrap_err();
            assert_eq!(error.field, "code", "{input:?}");
            assert!(!error.message.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_code_formats_and_parses_back(number in 0u64..1_000_000_000_000) {
            let code = PlainCode(format!("{number:012}"));
            prop_assert_eq!(parse_code(&code.grouped()).unwrap(), code.clone());
            prop_assert_eq!(parse_code(&code.grouped().replace(' ', "-")).unwrap(), code);
        }

        #[test]
        fn separators_anywhere_are_ignored(
            number in 0u64..1_000_000_000_000,
            separators in proptest::collection::vec(
                prop::sample::select(vec![
                    "", " ", "-", " - ", "\u{2013}", "\u{2014}", "\u{2212}", "\u{ad}", "\u{200b}",
                    "\u{feff}", "\u{ff0d}", "\u{3000}",
                ]),
                13,
            ),
        ) {
            let digits = format!("{number:012}");
            let mut typed = String::new();
            for (digit, separator) in digits.chars().zip(&separators) {
                typed.push_str(separator);
                typed.push(digit);
            }
            typed.push_str(separators[12]);
            prop_assert_eq!(parse_code(&typed).unwrap().0, digits);
        }

        #[test]
        fn a_code_read_from_anything_typed_is_its_twelve_digits(input in "\\PC{0,80}") {
            if let Ok(code) = parse_code(&input) {
                let digits: String = input.nfkc().filter(char::is_ascii_digit).collect();
                prop_assert_eq!(code.0, digits);
            }
        }

        #[test]
        fn a_letter_anywhere_makes_it_no_code(
            number in 0u64..1_000_000_000_000,
            at in 0usize..12,
            letter in "[a-zA-Z]",
        ) {
            let mut typed = format!("{number:012}");
            typed.insert_str(at, &letter);
            prop_assert!(parse_code(&typed).is_err());
        }
    }

    #[test]
    fn the_constant_time_search_finds_the_matching_digest() {
        let digests: [[u8; 32]; 3] = [[1; 32], [2; 32], [3; 32]];
        let find = |d: &[u8; 32]| find_in_constant_time(digests.iter().map(|x| x.as_slice()), d);
        assert_eq!(find(&[3; 32]), Some(2));
        assert_eq!(find(&[1; 32]), Some(0));
        assert_eq!(find(&[2; 32]), Some(1));
        assert_eq!(find(&[4; 32]), None);
        assert_eq!(find_in_constant_time(std::iter::empty(), &[1; 32]), None);
    }
}
