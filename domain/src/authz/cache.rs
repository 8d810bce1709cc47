//! The gate's enforcers, one per organization, built from one revision of the rules and
//! kept for the most recently used organizations ([`super::ENFORCERS_KEPT`]).

use std::{collections::HashMap, sync::Arc};

use super::{ENFORCERS_KEPT, OrgRules};

/// The organizations' enforcers built from one revision of the rules.
#[derive(Default)]
pub(super) struct EnforcerCache {
    /// The revision the enforcers are from.
    pub(super) revision: i64,
    /// Counts uses, to find the least recently used.
    clock: u64,
    pub(super) by_org: HashMap<i32, (u64, Arc<OrgRules>)>,
}

impl EnforcerCache {
    /// An empty cache for the rules at `revision`.
    pub(super) fn at_revision(revision: i64) -> Self {
        Self {
            revision,
            ..Self::default()
        }
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
    use super::*;
    use crate::authz::{BASELINE_POLICY, enforcer_with};

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
