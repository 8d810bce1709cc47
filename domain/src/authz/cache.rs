//! The gate's enforcers, one per organization, built from one revision of the rules and
//! kept for the most recently used organizations ([`super::ENFORCERS_KEPT`]); and the
//! questions each has answered ([`super::ANSWERS_KEPT`]).

use std::{collections::HashMap, hash::Hash, sync::Arc};

use quick_cache::Equivalent;

use super::{Decision, ENFORCERS_KEPT, OrgRules, revision::KnownRevision};

/// A question put to Casbin: the request `(sub, dom, obj, act)` of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Question<S = String> {
    subject: S,
    domain: S,
    object: S,
    act: S,
}

impl<'a> Question<&'a str> {
    /// The question, borrowing its parts (to look it up without allocating).
    pub(super) fn borrowed(
        subject: &'a str,
        domain: &'a str,
        object: &'a str,
        act: &'a str,
    ) -> Self {
        Self {
            subject,
            domain,
            object,
            act,
        }
    }

    /// The question, to keep.
    pub(super) fn owned(&self) -> Question {
        Question {
            subject: self.subject.to_owned(),
            domain: self.domain.to_owned(),
            object: self.object.to_owned(),
            act: self.act.to_owned(),
        }
    }
}

// `&str` and `String` hash alike, field by field, so a borrowed question finds its kept twin.
impl Equivalent<Question> for Question<&str> {
    fn equivalent(&self, key: &Question) -> bool {
        self.subject == key.subject
            && self.domain == key.domain
            && self.object == key.object
            && self.act == key.act
    }
}

/// Casbin's answer to a [`Question`].
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) allowed: bool,
    /// The rules that matched, each as `p, sub, dom, obj, act, eft`.
    pub(super) rules: Vec<String>,
}

impl Answer {
    /// The decision this answer makes, about `subject`.
    pub(super) fn decision(&self, subject: &str) -> Decision {
        Decision {
            allowed: self.allowed,
            subject: subject.to_owned(),
            rules: self.rules.clone(),
        }
    }
}

/// The organizations' enforcers built from one revision of the rules.
#[derive(Default)]
pub(super) struct EnforcerCache {
    /// The revision the enforcers are from, and when it was read.
    pub(super) known: KnownRevision,
    /// Counts uses, to find the least recently used.
    clock: u64,
    pub(super) by_org: HashMap<i32, (u64, Arc<OrgRules>)>,
}

impl EnforcerCache {
    /// An empty cache for the rules at the revision `known`.
    pub(super) fn new(known: KnownRevision) -> Self {
        Self {
            known,
            ..Self::default()
        }
    }

    /// Takes in a revision just read: when the rules moved past the revision the enforcers
    /// are from, they are forgotten.
    pub(super) fn learn(&mut self, read: KnownRevision) {
        let newer = self.known.merged(read);
        if newer.revision != self.known.revision {
            self.by_org.clear();
        }
        self.known = newer;
    }

    pub(super) fn get(&mut self, org_id: i32) -> Option<Arc<OrgRules>> {
        self.clock += 1;
        let now = self.clock;
        self.by_org.get_mut(&org_id).map(|(used, enforcer)| {
            *used = now;
            Arc::clone(enforcer)
        })
    }

    pub(super) fn insert(&mut self, org_id: i32, enforcer: Arc<OrgRules>) {
        if self.by_org.len() >= ENFORCERS_KEPT {
            let oldest = self
                .by_org
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(org, _)| *org);
            if let Some(oldest) = oldest {
                self.by_org.remove(&oldest);
            }
        }
        self.clock += 1;
        self.by_org.insert(org_id, (self.clock, enforcer));
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;
    use crate::authz::{BASELINE_POLICY, enforcer_with};

    #[test]
    fn a_borrowed_question_hashes_and_compares_as_its_kept_twin() {
        let hasher = RandomState::new();
        let borrowed = Question::borrowed("member:7", "org:2", "backup_codes", "redeem");
        let kept = borrowed.owned();
        assert_eq!(hasher.hash_one(&borrowed), hasher.hash_one(&kept));
        assert!(borrowed.equivalent(&kept));
        // Each part counts, and the parts do not run into one another.
        for other in [
            Question::borrowed("member:70", "org:2", "backup_codes", "redeem"),
            Question::borrowed("member:7", "org:20", "backup_codes", "redeem"),
            Question::borrowed("member:7", "org:2", "backup_codes", "generate"),
            Question::borrowed("member:7", "org:2", "backup_codesredeem", ""),
        ] {
            assert!(!other.equivalent(&kept), "{other:?}");
        }
    }

    #[tokio::test]
    async fn the_least_recently_used_organization_enforcer_goes_first() {
        let enforcer = Arc::new(OrgRules::new(enforcer_with(BASELINE_POLICY).await.unwrap()));
        let mut cache = EnforcerCache::default();
        for org in 0..ENFORCERS_KEPT {
            cache.insert(i32::try_from(org).unwrap(), Arc::clone(&enforcer));
        }
        // Organization 0 is used again, so 1 is now the least recently used.
        assert!(cache.get(0).is_some());
        cache.insert(-1, Arc::clone(&enforcer));
        assert_eq!(cache.by_org.len(), ENFORCERS_KEPT);
        assert!(cache.get(0).is_some());
        assert!(cache.get(1).is_none());
        assert!(cache.get(-1).is_some());
    }
}
