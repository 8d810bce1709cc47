//! The authorization gate: every permission decision is made here, by Casbin, against the
//! model and baseline policy in `policies/` (compiled into the binary, so a deployment cannot
//! drift from the tested files). Nothing else calls Casbin, and nothing else decides.
//!
//! The subject is the actor's role in the organization the request is about, read from the
//! member's account: who holds which role has one source of truth, the accounts table.

use std::sync::Arc;

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use tokio::sync::RwLock;

use crate::accounts::{Member, Role};

/// The Casbin model, as committed in `policies/model.conf`.
pub const MODEL: &str = include_str!("../../policies/model.conf");
/// The baseline policy, as committed in `policies/policy.csv`.
pub const BASELINE_POLICY: &str = include_str!("../../policies/policy.csv");

/// What an actor may be asking to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the organization's members.
    ListMembers,
    /// Add an account with this role.
    AddAccount(Role),
    /// Remove an account that has this role.
    RemoveAccount(Role),
    /// Generate (or regenerate) one's own backup verification codes.
    GenerateBackupCodes,
    /// Sign in with one of one's own backup verification codes.
    RedeemBackupCode,
    /// See how many of one's own backup verification codes remain.
    ViewBackupCodes,
}

impl Action {
    /// The Casbin object and action this maps to.
    fn object_and_act(self) -> (String, &'static str) {
        match self {
            Self::ListMembers => ("members".to_owned(), "list"),
            Self::AddAccount(role) => (format!("account:{}", role.as_str()), "add"),
            Self::RemoveAccount(role) => (format!("account:{}", role.as_str()), "remove"),
            Self::GenerateBackupCodes => ("backup_codes".to_owned(), "generate"),
            Self::RedeemBackupCode => ("backup_codes".to_owned(), "redeem"),
            Self::ViewBackupCodes => ("backup_codes".to_owned(), "status"),
        }
    }
}

/// A refusal from the gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("You are not allowed to do that.")]
pub struct Denied;

/// The gate failed to load or evaluate its policy.
#[derive(Debug, thiserror::Error)]
#[error("authorization policy: {0}")]
pub struct PolicyError(String);

/// The enforcer, shared by the whole server behind a lock.
#[derive(Clone)]
pub struct Authz {
    enforcer: Arc<RwLock<Enforcer>>,
}

impl Authz {
    /// The gate with the committed model and baseline policy.
    pub async fn baseline() -> Result<Self, PolicyError> {
        Self::with_policy(BASELINE_POLICY).await
    }

    /// The gate with the committed model and the policy `csv` in place of the baseline
    /// (tests use it to check that a refusal is obeyed everywhere).
    pub async fn with_policy(csv: &str) -> Result<Self, PolicyError> {
        let model = DefaultModel::from_str(MODEL)
            .await
            .map_err(|e| PolicyError(e.to_string()))?;
        let enforcer = Enforcer::new(model, StringAdapter::new(csv.to_owned()))
            .await
            .map_err(|e| PolicyError(e.to_string()))?;
        Ok(Self {
            enforcer: Arc::new(RwLock::new(enforcer)),
        })
    }

    /// Whether `actor` may do `action` in the organization `org_id`.
    pub async fn allows(
        &self,
        actor: &Member,
        org_id: i32,
        action: Action,
    ) -> Result<bool, PolicyError> {
        // An actor from another organization holds no role there.
        let subject = if actor.org_id == org_id {
            actor.role.as_str()
        } else {
            "outsider"
        };
        let (object, act) = action.object_and_act();
        let domain = format!("org:{org_id}");
        self.enforcer
            .read()
            .await
            .enforce((subject, domain.as_str(), object.as_str(), act))
            .map_err(|e| PolicyError(e.to_string()))
    }

    /// `Ok` if `actor` may do `action` in `org_id`, [`AuthzError::Denied`] if not.
    pub async fn require(
        &self,
        actor: &Member,
        org_id: i32,
        action: Action,
    ) -> Result<(), AuthzError> {
        if self.allows(actor, org_id, action).await? {
            Ok(())
        } else {
            Err(AuthzError::Denied(Denied))
        }
    }
}

/// Why [`Authz::require`] did not let a request through.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn actor(role: Role, org_id: i32) -> Member {
        Member {
            id: 1,
            org_id,
            email: "a@acme.test".into(),
            role,
            mfa_enabled: false,
            created_at: Utc::now(),
        }
    }

    /// Every cell of roles × actions × own organization / another one.
    #[tokio::test]
    async fn the_baseline_policy_decides_every_role_and_action() {
        use Action::*;
        use Role::*;
        let authz = Authz::baseline().await.unwrap();
        let actions = [
            ListMembers,
            AddAccount(Member),
            AddAccount(Admin),
            AddAccount(Owner),
            RemoveAccount(Member),
            RemoveAccount(Admin),
            RemoveAccount(Owner),
            GenerateBackupCodes,
            RedeemBackupCode,
            ViewBackupCodes,
        ];
        let own_codes = [GenerateBackupCodes, RedeemBackupCode, ViewBackupCodes];
        // (role, allowed actions in its own organization)
        let table: [(Role, &[Action]); 3] = [
            (Owner, &actions),
            (
                Admin,
                &[
                    ListMembers,
                    AddAccount(Member),
                    RemoveAccount(Member),
                    GenerateBackupCodes,
                    RedeemBackupCode,
                    ViewBackupCodes,
                ],
            ),
            (Member, &own_codes),
        ];
        for (role, allowed) in table {
            for action in actions {
                let own = authz.allows(&actor(role, 7), 7, action).await.unwrap();
                assert_eq!(
                    own,
                    allowed.contains(&action),
                    "{role:?} {action:?} in own org"
                );
                let other = authz.allows(&actor(role, 8), 7, action).await.unwrap();
                assert!(!other, "{role:?} {action:?} in another org");
            }
        }
    }

    #[tokio::test]
    async fn require_turns_a_refusal_into_denied() {
        let authz = Authz::baseline().await.unwrap();
        assert!(
            authz
                .require(&actor(Role::Admin, 1), 1, Action::ListMembers)
                .await
                .is_ok()
        );
        assert!(matches!(
            authz
                .require(&actor(Role::Member, 1), 1, Action::ListMembers)
                .await,
            Err(AuthzError::Denied(Denied))
        ));
    }
}
