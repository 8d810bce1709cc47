//! Personal access tokens on every backend: who may make one, what is stored, and that a
//! revocation arriving 200 times at once is done and recorded once.

use chrono::Duration;
use domain::{
    api_tokens::{self, BearerError, Scope, TokenError, TokenForm},
    audit::Source,
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::Role,
    testing::migrated_databases,
};

use crate::fixtures::{add_member, owner, t0};

fn form(scopes: &[Scope]) -> TokenForm {
    TokenForm {
        name: "Directory sync".to_owned(),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        lifetime_days: "30".to_owned(),
    }
}

#[tokio::test]
async fn owners_and_admins_make_tokens_members_are_refused_on_the_record() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let authz = Authz::load(db).await.unwrap();
        let owner = owner(&test_db, &hasher).await;
        let admin = add_member(&test_db, &hasher, owner.org_id, "a@acme.test", Role::Admin).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        let source = Source::default();
        for maker in [&owner, &admin] {
            let made = api_tokens::create(
                &Command::new(db, &authz, maker, &source, t0()),
                &form(&[Scope::MembersRead, Scope::AuditRead]),
            )
            .await
            .unwrap();
            // Only the digest is stored, and the token works until its end, as its maker.
            let stored = test_db
                .count(&format!(
                    "api_token WHERE digest <> '{}' AND prefix = '{}' AND member_id = {}",
                    made.token.expose(),
                    made.listing.prefix,
                    maker.id
                ))
                .await;
            assert_eq!(stored, 1, "{backend:?}");
            let bearer = api_tokens::authenticate(db, made.token.expose(), t0())
                .await
                .unwrap();
            assert_eq!(bearer.member.id, maker.id);
            assert!(bearer.has(Scope::AuditRead) && !bearer.has(Scope::PolicyWrite));
            assert!(matches!(
                api_tokens::authenticate(db, made.token.expose(), t0() + Duration::days(30)).await,
                Err(BearerError::Refused)
            ));
        }
        let refused = api_tokens::create(
            &Command::new(db, &authz, &member, &source, t0()),
            &form(&[Scope::MembersRead]),
        )
        .await;
        assert!(
            matches!(refused, Err(TokenError::NotAllowed)),
            "{backend:?}"
        );
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'api_token.created' AND outcome = 'denied'")
                .await,
            1,
            "{backend:?}"
        );
        assert!(matches!(
            api_tokens::list(db, &authz, &member, t0()).await,
            Err(TokenError::NotAllowed)
        ));
        assert_eq!(
            api_tokens::list(db, &authz, &admin, t0())
                .await
                .unwrap()
                .len(),
            2,
            "{backend:?}: admins see the organization's tokens"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_revocations_at_once_revoke_and_record_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let authz = Authz::load(db).await.unwrap();
        let owner = owner(&test_db, &hasher).await;
        let source = Source::default();
        let made = api_tokens::create(
            &Command::new(db, &authz, &owner, &source, t0()),
            &form(&[Scope::MembersRead]),
        )
        .await
        .unwrap();
        let revocations = (0..200).map(|_| {
            let (db, authz, owner, source) =
                (db.clone(), authz.clone(), owner.clone(), source.clone());
            let id = made.listing.id;
            tokio::spawn(async move {
                api_tokens::revoke(&Command::new(&db, &authz, &owner, &source, t0()), id).await
            })
        });
        let mut done = 0;
        for revocation in revocations {
            match revocation.await.unwrap() {
                Ok(()) => done += 1,
                Err(TokenError::Unknown) => {}
                Err(other) => panic!("{backend:?}: {other}"),
            }
        }
        assert_eq!(done, 1, "{backend:?}");
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'api_token.revoked'")
                .await,
            1,
            "{backend:?}"
        );
        assert!(matches!(
            api_tokens::authenticate(db, made.token.expose(), t0()).await,
            Err(BearerError::Refused)
        ));
    }
}
