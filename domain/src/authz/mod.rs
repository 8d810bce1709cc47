//! The authorization gate: every permission decision is made here, by Casbin, against the
//! model and baseline policy in `policies/` (compiled into the binary, so a deployment cannot
//! drift from the tested files) and each organization's own rules, which live in the
//! database (`casbin_rule`, in the layout of casbin's SeaORM adapter). Nothing else calls
//! Casbin, and nothing else decides.
//!
//! Casbin evaluates its matcher against every rule of an enforcer, so one enforcer holding
//! every organization's rules gets slower with each organization (38 ms a decision at 10,000
//! of them). The gate keeps one enforcer per organization instead, with the baseline and that
//! organization's rules only, built on first use and kept for the most recently used
//! organizations ([`ENFORCERS_KEPT`]).
//!
//! Three subjects are asked about, most particular first; the first whose rules speak of the
//! act decides:
//! 1. the member themself (`member:<id>`): an exception an admin made for them in their
//!    organization;
//! 2. each group Casbin's grouping (`g, member:<id>, group:<id>, org:<id>`) puts them in, in
//!    the organization the request is about: an exception for the group (when two of their
//!    groups speak and disagree, deny wins, as it does between one subject's rules);
//! 3. their role in that organization, read from the account (one source of truth, the
//!    accounts table); anyone from another organization is an `outsider` there.
//!
//! Every instance sharing a database sees a change: changes raise a revision counter in the
//! same transaction, and the gate reloads its rules when the counter differs from the one it
//! loaded. It reads the counter at most every [`revision::TRUSTED_FOR`], except after this
//! process changed the rules (then at once); [`revision`] says why. Between changes, each
//! organization's answers are kept: the same question about the same rules gets the same
//! answer, so it is asked of Casbin once ([`ANSWERS_KEPT`]). The rules an organization's
//! policy compiles to, and their writes, are in [`rules`].
//!
//! This module is on the first floor: it imports only the ground floor. Recording a refusal
//! in the audit log is [`crate::command::Command::require`]'s work.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, RbacApi, StringAdapter};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{
    entity::{casbin_rule, policy_revision},
    identity::{Member, Role},
};

mod cache;
pub mod revision;
pub mod rules;

use self::{
    cache::{Answer, EnforcerCache, Question},
    revision::KnownRevision,
};

/// Organizations whose enforcers are kept in memory (each is the model, Casbin's expression
/// engine and a few dozen rules); the least recently used one goes first.
pub const ENFORCERS_KEPT: usize = 512;

/// Answers kept per organization's enforcer (one per subject, object and act asked about:
/// a role's question is shared by all its members); the least used go first. At most
/// [`ENFORCERS_KEPT`] × this many in all, a few hundred bytes each.
pub const ANSWERS_KEPT: usize = 256;

/// The Casbin model, as committed in `policies/model.conf`.
pub const MODEL: &str = include_str!("../../../policies/model.conf");
/// The baseline policy, as committed in `policies/policy.csv`.
pub const BASELINE_POLICY: &str = include_str!("../../../policies/policy.csv");

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
    /// See the organization's policy, its exceptions and why a decision was made.
    ViewPolicy,
    /// Change the organization's policy and its exceptions.
    ManagePolicy,
    /// Issue (request, approve, reveal) a recovery code for a member with this role.
    IssueRecoveryCode(Role),
    /// Revoke the codes of, reset the MFA of, or change the role of a member with this role.
    ManageMember(Role),
    /// End the locks on the sign-in factors of a member with this role.
    UnlockMember(Role),
    /// Read and export the organization's audit log.
    ViewAudit,
    /// Register and remove the organization's webhooks, and see their deliveries.
    ManageWebhooks,
    /// Request, download and delete backups of the organization's data (owners; admins when
    /// the policy lets them).
    RequestBackups,
    /// Create personal access tokens for the JSON API, and see and revoke the organization's.
    ManageApiTokens,
    /// Assist the member with this id (issue them recovery codes, end their locks): what a
    /// help-desk member scoped to groups may do for those groups' members alone. Asked beside
    /// the role-based question ([`Action::IssueRecoveryCode`], [`Action::UnlockMember`]).
    Assist(i32),
    /// Create, fill and delete groups of members, scope the help desk to them, and give them
    /// exceptions.
    ManageGroups,
}

impl Action {
    /// The Casbin object and action this maps to.
    pub fn object_and_act(self) -> (String, &'static str) {
        match self {
            Self::ListMembers => ("members".to_owned(), "list"),
            Self::AddAccount(role) => (format!("account:{}", role.as_str()), "add"),
            Self::RemoveAccount(role) => (format!("account:{}", role.as_str()), "remove"),
            Self::GenerateBackupCodes => (BACKUP_CODES.to_owned(), "generate"),
            Self::RedeemBackupCode => (BACKUP_CODES.to_owned(), "redeem"),
            Self::ViewBackupCodes => (BACKUP_CODES.to_owned(), "status"),
            Self::ViewPolicy => ("policy".to_owned(), "view"),
            Self::ManagePolicy => ("policy".to_owned(), "manage"),
            Self::IssueRecoveryCode(role) => (recovery_code_object(role), ISSUE),
            Self::ManageMember(role) => (format!("member:{}", role.as_str()), "manage"),
            Self::UnlockMember(role) => (format!("member:{}", role.as_str()), "unlock"),
            Self::ViewAudit => ("audit".to_owned(), "view"),
            Self::ManageWebhooks => ("webhooks".to_owned(), "manage"),
            Self::RequestBackups => (BACKUPS.to_owned(), "request"),
            Self::ManageApiTokens => ("api_tokens".to_owned(), "manage"),
            Self::Assist(member_id) => (member_subject(member_id), ASSIST),
            Self::ManageGroups => ("groups".to_owned(), "manage"),
        }
    }
}

/// The Casbin object of backup codes, as organization rules name it.
pub const BACKUP_CODES: &str = "backup_codes";

/// The Casbin object of data backups, as organization rules name it.
pub const BACKUPS: &str = "backups";

/// The Casbin object of issuing recovery codes for members with `role`.
pub fn recovery_code_object(role: Role) -> String {
    format!("recovery_code:{}", role.as_str())
}

/// The Casbin action of issuing a recovery code.
pub const ISSUE: &str = "issue";

/// The Casbin action of assisting a member ([`Action::Assist`]).
pub const ASSIST: &str = "assist";

/// The Casbin domain of an organization.
pub fn org_domain(org_id: i32) -> String {
    format!("org:{org_id}")
}

/// The Casbin subject of one member, for exceptions made for them.
pub fn member_subject(member_id: i32) -> String {
    format!("member:{member_id}")
}

/// The Casbin subject (and grouping role) of one group of members.
pub fn group_subject(group_id: i32) -> String {
    format!("group:{group_id}")
}

/// A refusal from the gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("You are not allowed to do that.")]
pub struct Denied;

/// The gate failed to load or evaluate its policy.
#[derive(Debug, thiserror::Error)]
#[error("authorization policy: {0}")]
pub struct PolicyError(String);

impl PolicyError {
    fn from(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// A decision and the rules that made it, for "why was this allowed or denied?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The subject the deciding rules were about: `member:<id>` for an exception,
    /// `group:<id>` for a group's (several, comma-separated, when more than one group spoke),
    /// or a role.
    pub subject: String,
    /// The matching rules, each as `p, sub, dom, obj, act, eft`; empty when no rule matched
    /// (then the answer is no).
    pub rules: Vec<String>,
}

/// The gate, shared by the whole server.
#[derive(Clone)]
pub struct Authz {
    rules: Arc<Rules>,
    /// Whether each decision first compares the database's revision with the loaded one
    /// (not for a [`Authz::refreshed`] copy, which asks many questions of one set of rules).
    checks_revision: bool,
}

enum Rules {
    /// One fixed policy for every organization (tests, and tools that need no
    /// organization rules).
    Fixed(Arc<OrgRules>),
    /// The baseline plus each organization's rules in this database, one enforcer per
    /// organization.
    Database {
        db: DatabaseConnection,
        cache: Mutex<EnforcerCache>,
    },
}

/// One organization's enforcer, and what its rules say of particular members and groups.
struct OrgRules {
    enforcer: Enforcer,
    /// Casbin's answers so far: the rules do not change under an enforcer (a change builds
    /// another), so each question is evaluated once.
    answers: quick_cache::sync::Cache<Question, Arc<Answer>>,
    /// Each `member:<id>` and `group:<id>` subject of the rules, with the acts its rules speak
    /// of: such a subject decides those acts (and only those) for its members.
    speaks: HashMap<String, HashSet<String>>,
    /// The acts some group's rules speak of (most organizations: none, and then the grouping
    /// is not consulted).
    group_acts: HashSet<String>,
}

impl OrgRules {
    fn new(enforcer: Enforcer) -> Self {
        let mut speaks: HashMap<String, HashSet<String>> = HashMap::new();
        let mut group_acts = HashSet::new();
        for rule in enforcer.get_policy() {
            let (Some(subject), Some(act)) = (rule.first(), rule.get(3)) else {
                continue;
            };
            if subject.starts_with("group:") {
                group_acts.insert(act.clone());
            } else if !subject.starts_with("member:") {
                continue;
            }
            speaks
                .entry(subject.clone())
                .or_default()
                .insert(act.clone());
        }
        Self {
            enforcer,
            answers: quick_cache::sync::Cache::new(ANSWERS_KEPT),
            speaks,
            group_acts,
        }
    }

    /// What Casbin answers of `subject` doing `act` on `object` in `domain`, and the rules
    /// that matched; evaluated once per question while these rules stand.
    fn ask(
        &self,
        subject: &str,
        domain: &str,
        object: &str,
        act: &str,
    ) -> Result<Arc<Answer>, PolicyError> {
        let question = Question::borrowed(subject, domain, object, act);
        if let Some(answer) = self.answers.get(&question) {
            return Ok(answer);
        }
        let (allowed, matched) = self
            .enforcer
            .enforce_ex((subject, domain, object, act))
            .map_err(PolicyError::from)?;
        let answer = Arc::new(Answer {
            allowed,
            rules: matched.iter().map(|rule| format_rule(rule)).collect(),
        });
        self.answers.insert(question.owned(), Arc::clone(&answer));
        Ok(answer)
    }

    /// Whether `subject`'s own rules speak of `act`.
    fn speaks_of(&self, subject: &str, act: &str) -> bool {
        self.speaks
            .get(subject)
            .is_some_and(|acts| acts.contains(act))
    }

    /// The groups Casbin's grouping puts `member` in, in `domain`, whose rules speak of `act`.
    fn groups_speaking(&self, member: &str, domain: &str, act: &str) -> Vec<String> {
        if !self.group_acts.contains(act) {
            return Vec::new();
        }
        self.enforcer
            .get_roles_for_user(member, Some(domain))
            .into_iter()
            .filter(|group| self.speaks_of(group, act))
            .collect()
    }

    /// Whether anything particular may decide for `member` in `domain`: rules of their own,
    /// or groups at all (a report asks about them one by one, not by role).
    fn is_particular(&self, member: &str, domain: &str) -> bool {
        self.speaks.contains_key(member)
            || (!self.group_acts.is_empty()
                && !self
                    .enforcer
                    .get_roles_for_user(member, Some(domain))
                    .is_empty())
    }

    /// What the member's own rules, or else their groups', decide of `act` on `object` in
    /// `domain`; `None` when neither speaks of it (their role decides).
    fn particular(
        &self,
        member: &str,
        domain: &str,
        object: &str,
        act: &str,
    ) -> Result<Option<Decision>, PolicyError> {
        if self.speaks_of(member, act) {
            let answer = self.ask(member, domain, object, act)?;
            return Ok(Some(answer.decision(member)));
        }
        let groups = self.groups_speaking(member, domain, act);
        if groups.is_empty() {
            return Ok(None);
        }
        let mut decision = Decision {
            allowed: true,
            subject: groups.join(", "),
            rules: Vec::new(),
        };
        for group in &groups {
            let answer = self.ask(group, domain, object, act)?;
            decision.allowed &= answer.allowed;
            decision.rules.extend(answer.rules.iter().cloned());
        }
        Ok(Some(decision))
    }
}

impl Authz {
    /// The gate with the committed model and baseline policy, and no organization rules.
    pub async fn baseline() -> Result<Self, PolicyError> {
        Self::with_policy(BASELINE_POLICY).await
    }

    /// The gate with the committed model and the policy `csv` in place of the baseline
    /// (tests use it to check that a refusal is obeyed everywhere).
    pub async fn with_policy(csv: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            rules: Arc::new(Rules::Fixed(Arc::new(OrgRules::new(
                enforcer_with(csv).await?,
            )))),
            checks_revision: false,
        })
    }

    /// The gate the server runs: the baseline, and every organization's rules in `db`,
    /// reloaded whenever another request (on any instance) changed them.
    pub async fn load(db: &DatabaseConnection) -> Result<Self, PolicyError> {
        let started = Instant::now();
        let cache = EnforcerCache::new(KnownRevision::read(revision(db).await?, started));
        Ok(Self {
            rules: Arc::new(Rules::Database {
                db: db.clone(),
                cache: Mutex::new(cache),
            }),
            checks_revision: true,
        })
    }

    /// This gate with its rules brought up to date once (as [`Authz::decide`] would), for an
    /// operation that asks many questions (a page of members): its decisions share one set
    /// of rules and read the database no more.
    pub async fn refreshed(&self) -> Result<Self, PolicyError> {
        self.refresh().await?;
        Ok(Self {
            rules: Arc::clone(&self.rules),
            checks_revision: false,
        })
    }

    /// Forgets the enforcers if the database's revision moved since they were built; reads
    /// it only when the one known is no longer trusted ([`revision`]).
    async fn refresh(&self) -> Result<(), PolicyError> {
        let Rules::Database { db, cache } = &*self.rules else {
            return Ok(());
        };
        let started = Instant::now();
        if lock(cache).known.is_trusted(started) {
            return Ok(());
        }
        let read = KnownRevision::read(revision(db).await?, started);
        lock(cache).learn(read);
        Ok(())
    }

    /// The enforcer for decisions in `org_id`: the baseline and that organization's rules.
    async fn enforcer_for(&self, org_id: i32) -> Result<Arc<OrgRules>, PolicyError> {
        let (db, cache) = match &*self.rules {
            Rules::Fixed(enforcer) => return Ok(Arc::clone(enforcer)),
            Rules::Database { db, cache } => (db, cache),
        };
        let revision = {
            let mut cache = lock(cache);
            if let Some(enforcer) = cache.get(org_id) {
                return Ok(enforcer);
            }
            cache.known.revision
        };
        // The rules are read after the revision: a change landing in between is in them, or
        // has raised the revision again so that the next decision rebuilds. Never older.
        let enforcer = Arc::new(organization_enforcer(db, org_id).await?);
        let mut cache = lock(cache);
        if cache.known.revision == revision {
            cache.insert(org_id, Arc::clone(&enforcer));
        }
        Ok(enforcer)
    }

    /// Whether `actor` may do `action` in the organization `org_id`, and which rules said so.
    pub async fn decide(
        &self,
        actor: &Member,
        org_id: i32,
        action: Action,
    ) -> Result<Decision, PolicyError> {
        if self.checks_revision {
            self.refresh().await?;
        }
        let (object, act) = action.object_and_act();
        let domain = org_domain(org_id);
        let rules = self.enforcer_for(org_id).await?;
        // An exception made for this member, or else for their groups, in this organization
        // decides first (most members have neither: two set lookups).
        if actor.org_id == org_id
            && let Some(decision) =
                rules.particular(&member_subject(actor.id), &domain, &object, act)?
        {
            return Ok(decision);
        }
        // An actor from another organization holds no role there.
        let subject = if actor.org_id == org_id {
            actor.role.as_str()
        } else {
            "outsider"
        };
        Ok(rules.ask(subject, &domain, &object, act)?.decision(subject))
    }

    /// Whether each of `members` may do `action` in the organization `org_id`, in order:
    /// [`Authz::allows`] for each, but one rules revision for all, and one question per
    /// role for the members neither a rule nor a group names (most of them), so that a
    /// report over 100,000 members asks Casbin a handful of times.
    pub async fn allows_each(
        &self,
        members: &[Member],
        org_id: i32,
        action: Action,
    ) -> Result<Vec<bool>, PolicyError> {
        let gate = self.refreshed().await?;
        let rules = gate.enforcer_for(org_id).await?;
        let domain = org_domain(org_id);
        let mut by_role: HashMap<(Role, bool), bool> = HashMap::new();
        let mut answers = Vec::with_capacity(members.len());
        for member in members {
            let own = member.org_id == org_id;
            let answer = if own && rules.is_particular(&member_subject(member.id), &domain) {
                gate.allows(member, org_id, action).await?
            } else if let Some(known) = by_role.get(&(member.role, own)) {
                *known
            } else {
                let answer = gate.allows(member, org_id, action).await?;
                by_role.insert((member.role, own), answer);
                answer
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    /// What a database query needs to count or list the members of organization `org_id`
    /// the gate lets do `action`, without asking Casbin member by member: the roles that may
    /// (one question per role), and whether any exception, a member's or a group's, speaks
    /// of the action (the query then reads the exceptions themselves from their tables,
    /// [`crate::org_policy::exceptions`]). Casbin weighs each question against every rule of
    /// the organization, so one question per excepted member would cost exceptions × rules.
    pub async fn allowance(&self, org_id: i32, action: Action) -> Result<Allowance, PolicyError> {
        let gate = self.refreshed().await?;
        let rules = gate.enforcer_for(org_id).await?;
        let (object, act) = action.object_and_act();
        let domain = org_domain(org_id);
        let mut roles = Vec::new();
        for role in Role::ALL {
            if rules.ask(role.as_str(), &domain, &object, act)?.allowed {
                roles.push(role);
            }
        }
        // Every subject in `speaks` is a member's or a group's.
        let any_exception = rules.speaks.values().any(|acts| acts.contains(act));
        Ok(Allowance {
            roles,
            any_exception,
        })
    }

    /// Whether `actor` may do `action` in the organization `org_id`.
    pub async fn allows(
        &self,
        actor: &Member,
        org_id: i32,
        action: Action,
    ) -> Result<bool, PolicyError> {
        Ok(self.decide(actor, org_id, action).await?.allowed)
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

/// The enforcer cache, whoever held it before.
fn lock(cache: &Mutex<EnforcerCache>) -> MutexGuard<'_, EnforcerCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The revision of the organizations' rules in `db`.
async fn revision(db: &DatabaseConnection) -> Result<i64, PolicyError> {
    Ok(policy_revision::Entity::find()
        .one(db)
        .await
        .map_err(PolicyError::from)?
        .map_or(0, |row| row.revision))
}

/// An enforcer with the committed model and the policy `csv`.
async fn enforcer_with(csv: &str) -> Result<Enforcer, PolicyError> {
    let model = DefaultModel::from_str(MODEL)
        .await
        .map_err(PolicyError::from)?;
    let mut enforcer = Enforcer::new(model, StringAdapter::new(csv.to_owned()))
        .await
        .map_err(PolicyError::from)?;
    // Rules added later stay in memory: the baseline is the committed file's, and an
    // organization's rules are the database's; neither is written back anywhere.
    enforcer.enable_auto_save(false);
    Ok(enforcer)
}

/// An enforcer for decisions in the organization `org_id`: the committed baseline, and that
/// organization's rules from `db`.
async fn organization_enforcer(
    db: &DatabaseConnection,
    org_id: i32,
) -> Result<OrgRules, PolicyError> {
    let domain = org_domain(org_id);
    let own: Vec<Vec<String>> = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::Ptype.eq("p"))
        .filter(casbin_rule::Column::V1.eq(&domain))
        .all(db)
        .await
        .map_err(PolicyError::from)?
        .into_iter()
        .map(|rule| vec![rule.v0, rule.v1, rule.v2, rule.v3, rule.v4])
        .collect();
    // Grouping rows carry their domain third: `g, member:<id>, group:<id>, org:<id>`.
    let grouping: Vec<Vec<String>> = casbin_rule::Entity::find()
        .filter(casbin_rule::Column::Ptype.eq("g"))
        .filter(casbin_rule::Column::V2.eq(&domain))
        .all(db)
        .await
        .map_err(PolicyError::from)?
        .into_iter()
        .map(|rule| vec![rule.v0, rule.v1, rule.v2])
        .collect();
    let mut enforcer = enforcer_with(BASELINE_POLICY).await?;
    if !own.is_empty() {
        enforcer
            .add_policies(own)
            .await
            .map_err(PolicyError::from)?;
    }
    if !grouping.is_empty() {
        enforcer
            .add_grouping_policies(grouping)
            .await
            .map_err(PolicyError::from)?;
    }
    Ok(OrgRules::new(enforcer))
}

/// Who in one organization may do one action, as a query over its members needs it
/// ([`Authz::allowance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    /// The roles whose members may, unless an exception decides for them.
    pub roles: Vec<Role>,
    /// Whether an exception (a member's or a group's) speaks of the action: when none does,
    /// the roles alone decide.
    pub any_exception: bool,
}

fn format_rule(rule: &[String]) -> String {
    format!("p, {}", rule.join(", "))
}

/// Why [`Authz::require`] did not let a request through.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Recording a refusal, or reading the rules, failed.
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
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
            mfa_setup_required: false,
            session_epoch: 0,
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
            ViewPolicy,
            ManagePolicy,
            IssueRecoveryCode(Member),
            IssueRecoveryCode(Admin),
            IssueRecoveryCode(Owner),
            ManageMember(Member),
            ManageMember(Admin),
            ManageMember(Owner),
            ViewAudit,
            ManageWebhooks,
            RequestBackups,
            ManageApiTokens,
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
                    ViewPolicy,
                    ManagePolicy,
                    IssueRecoveryCode(Member),
                    ManageMember(Member),
                    ViewAudit,
                    ManageApiTokens,
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
