//! TOTP enrolment, verification and replay protection, on every backend.

use chrono::Duration;
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    backup_codes::{self, CodePolicy},
    command::Command,
    hashing::PasswordHasher,
    lookup_secret::BackupCodeHasher,
    mfa::{self, MfaError},
    secrets::{Password, SecretKey},
    testing::migrated_databases,
};
use sea_orm::ConnectionTrait;

use crate::fixtures::{owner, owner_with_mfa, t0};

#[tokio::test]
async fn enrolment_is_confirmed_with_a_current_code_and_the_secret_is_stored_sealed() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = owner(&test_db, &hasher).await;
        let enrolment = mfa::begin_enrolment(db, &key, owner.id).await.unwrap();
        assert!(
            enrolment
                .otpauth_url
                .starts_with("otpauth://totp/Lifeline:owner%40acme.test?")
        );
        assert!(!format!("{enrolment:?}").contains(&enrolment.setup_key));

        // Not in force until confirmed.
        assert!(
            !accounts::member(db, owner.id)
                .await
                .unwrap()
                .unwrap()
                .mfa_enabled
        );
        let wrong = mfa::confirm_enrolment(
            db,
            &key,
            owner.id,
            "000000",
            &domain::audit::Source::default(),
            t0(),
        )
        .await;
        let right_code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
        if right_code != "000000" {
            assert!(matches!(wrong, Err(MfaError::WrongCode)));
        }
        mfa::confirm_enrolment(
            db,
            &key,
            owner.id,
            &right_code,
            &domain::audit::Source::default(),
            t0(),
        )
        .await
        .unwrap();
        assert!(
            accounts::member(db, owner.id)
                .await
                .unwrap()
                .unwrap()
                .mfa_enabled
        );

        // The database holds no readable secret.
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT totp_secret FROM user_account WHERE id = {}",
                    owner.id
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let stored: Vec<u8> = row.try_get("", "totp_secret").unwrap();
        let readable = String::from_utf8_lossy(&stored);
        assert!(
            !readable.contains(&enrolment.setup_key),
            "{:?}",
            test_db.backend
        );

        // Once MFA is on, the key is never shown again, and no new enrolment starts.
        assert!(matches!(
            mfa::current_enrolment(db, &key, owner.id).await,
            Err(MfaError::AlreadyEnabled)
        ));
        assert!(matches!(
            mfa::begin_enrolment(db, &key, owner.id).await,
            Err(MfaError::AlreadyEnabled)
        ));
    }
}

#[tokio::test]
async fn codes_are_accepted_one_step_either_side_and_never_twice() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, setup_key) = owner_with_mfa(&test_db, &hasher, &key).await;
        let code = |at| mfa::code_at(&setup_key, at).unwrap();

        // The confirming code cannot sign in again within its window.
        let replay = mfa::verify_code(db, &key, owner.id, &code(t0()), t0()).await;
        assert!(
            matches!(replay, Err(MfaError::WrongCode)),
            "{:?}",
            test_db.backend
        );

        // One step later, the previous-step tolerance accepts a code typed just after it rolled.
        let later = t0() + Duration::seconds(60);
        mfa::verify_code(
            db,
            &key,
            owner.id,
            &code(later - Duration::seconds(30)),
            later,
        )
        .await
        .unwrap();
        // ...but the same code again is a replay.
        assert!(matches!(
            mfa::verify_code(
                db,
                &key,
                owner.id,
                &code(later - Duration::seconds(30)),
                later
            )
            .await,
            Err(MfaError::WrongCode)
        ));
        // The next step's code (a clock slightly ahead) is accepted once.
        mfa::verify_code(
            db,
            &key,
            owner.id,
            &code(later + Duration::seconds(30)),
            later,
        )
        .await
        .unwrap();
        // Two steps away is too far.
        let much_later = later + Duration::seconds(300);
        assert!(matches!(
            mfa::verify_code(
                db,
                &key,
                owner.id,
                &code(much_later - Duration::seconds(90)),
                much_later
            )
            .await,
            Err(MfaError::WrongCode)
        ));
        // Letters never reach the comparison.
        assert!(matches!(
            mfa::verify_code(db, &key, owner.id, "12a456", much_later).await,
            Err(MfaError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_code_let_exactly_one_through() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let (owner, setup_key) = owner_with_mfa(&test_db, &hasher, &key).await;

        let later = t0() + Duration::seconds(120);
        let code = mfa::code_at(&setup_key, later).unwrap();
        let attempts = (0..10).map(|_| {
            let (db, key, code) = (test_db.db.clone(), key.clone(), code.clone());
            tokio::spawn(async move { mfa::verify_code(&db, &key, owner.id, &code, later).await })
        });
        let mut successes = 0;
        for attempt in attempts {
            if attempt.await.unwrap().is_ok() {
                successes += 1;
            }
        }
        assert_eq!(successes, 1, "{:?}", test_db.backend);
    }
}

#[tokio::test]
async fn disabling_requires_the_password_and_clears_the_secret() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, setup_key) = owner_with_mfa(&test_db, &hasher, &key).await;
        let code = mfa::code_at(&setup_key, t0()).unwrap();

        assert!(matches!(
            mfa::disable(
                db,
                &hasher,
                owner.id,
                &Password::new("not my password"),
                &domain::audit::Source::default(),
                t0()
            )
            .await,
            Err(MfaError::WrongPassword)
        ));
        assert!(
            accounts::member(db, owner.id)
                .await
                .unwrap()
                .unwrap()
                .mfa_enabled
        );

        mfa::disable(
            db,
            &hasher,
            owner.id,
            &Password::new("correct horse battery"),
            &domain::audit::Source::default(),
            t0(),
        )
        .await
        .unwrap();
        assert!(
            !accounts::member(db, owner.id)
                .await
                .unwrap()
                .unwrap()
                .mfa_enabled
        );
        assert!(matches!(
            mfa::verify_code(db, &key, owner.id, &code, t0()).await,
            Err(MfaError::NotEnabled)
        ));
    }
}

#[tokio::test]
async fn only_the_right_key_opens_the_stored_secrets() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        // Nothing stored yet: any key will do.
        assert!(
            mfa::key_opens_stored_secrets(db, &SecretKey::generate())
                .await
                .unwrap()
        );
        let owner = owner(&test_db, &hasher).await;
        mfa::begin_enrolment(db, &key, owner.id).await.unwrap();
        assert!(mfa::key_opens_stored_secrets(db, &key).await.unwrap());
        assert!(
            !mfa::key_opens_stored_secrets(db, &SecretKey::generate())
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn a_new_key_version_reseals_every_secret_and_the_old_version_still_opens_until_then() {
    let hasher = PasswordHasher::new(2).unwrap();
    let old = SecretKey::generate();
    let rotated = old.with_new_version();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, setup_key) = owner_with_mfa(&test_db, &hasher, &old).await;
        let pending = crate::fixtures::add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "pending@acme.test",
            domain::identity::Role::Member,
        )
        .await;
        let shown = mfa::begin_enrolment(db, &old, pending.id).await.unwrap();
        // The owner is moving to a new phone: a replacement waits, sealed by version 1 too.
        let replacing = mfa::current_replacement(db, &old, owner.id).await.unwrap();
        let version = |id: i32| async move {
            db.query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT totp_key_version FROM user_account WHERE id = {id}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i32>("", "totp_key_version")
            .unwrap()
        };
        assert_eq!((version(owner.id).await, version(pending.id).await), (1, 1));
        // Before re-sealing, the rotated key opens what version 1 sealed.
        assert!(mfa::key_opens_stored_secrets(db, &rotated).await.unwrap());

        assert_eq!(mfa::reseal_secrets(db, &rotated).await.unwrap(), 3);
        assert_eq!((version(owner.id).await, version(pending.id).await), (2, 2));
        assert_eq!(mfa::reseal_secrets(db, &rotated).await.unwrap(), 0);
        // The same secrets, under version 2: codes verify and the pending set-up shows the
        // same key; a key without version 2 opens nothing.
        let code = mfa::code_at(&setup_key, t0() + Duration::minutes(5)).unwrap();
        mfa::verify_code(db, &rotated, owner.id, &code, t0() + Duration::minutes(5))
            .await
            .unwrap();
        let again = mfa::current_enrolment(db, &rotated, pending.id)
            .await
            .unwrap();
        assert_eq!(again.setup_key, shown.setup_key, "{:?}", test_db.backend);
        let still_replacing = mfa::current_replacement(db, &rotated, owner.id)
            .await
            .unwrap();
        assert_eq!(still_replacing.setup_key, replacing.setup_key);
        assert_eq!(
            test_db
                .count("user_account WHERE totp_replacement_key_version = 2")
                .await,
            1
        );
        assert!(!mfa::key_opens_stored_secrets(db, &old).await.unwrap());
    }
}

/// Issue 16, item 6: a new phone without MFA ever off. The old authenticator signs in until
/// the new one is confirmed; of 200 confirmations at once exactly one replaces; then only
/// the new one works, the confirming code does not sign in again, and the backup codes stay
/// or end as the member chose. Turning MFA off drops a replacement half set up.
#[tokio::test]
async fn a_new_authenticator_replaces_the_old_one_only_once_it_is_confirmed() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let authz = Authz::baseline().await.unwrap();
    let source = Source::default();
    let minutes = |n: i64| t0() + Duration::minutes(n);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, old_key) = owner_with_mfa(&test_db, &hasher, &key).await;
        backup_codes::generate(
            &Command::new(db, &authz, &owner, &source, t0()),
            &codes,
            &CodePolicy::default(),
        )
        .await
        .unwrap();
        let replacement = |keep_codes: bool, code: String, at| {
            let (db, key, source) = (db.clone(), key.clone(), source.clone());
            async move {
                mfa::confirm_replacement(&db, &key, owner.id, &code, keep_codes, &source, at).await
            }
        };
        let replaced_events = || async {
            test_db
                .count("audit_event WHERE action = 'mfa.replaced'")
                .await
        };

        // Set up beside the old one: the same key on every reload, and the old one still
        // signs in.
        let shown = mfa::current_replacement(db, &key, owner.id).await.unwrap();
        assert_ne!(shown.setup_key, old_key);
        let again = mfa::current_replacement(db, &key, owner.id).await.unwrap();
        assert_eq!(again.setup_key, shown.setup_key);
        let old_code = |at| mfa::code_at(&old_key, at).unwrap();
        mfa::verify_code(db, &key, owner.id, &old_code(minutes(1)), minutes(1))
            .await
            .unwrap();

        // A code from the old authenticator, or input that is no code, replaces nothing.
        let new_code = |at| mfa::code_at(&shown.setup_key, at).unwrap();
        if old_code(minutes(2)) != new_code(minutes(2)) {
            assert!(matches!(
                replacement(true, old_code(minutes(2)), minutes(2)).await,
                Err(MfaError::WrongCode)
            ));
        }
        assert!(matches!(
            replacement(true, "12a456".into(), minutes(2)).await,
            Err(MfaError::Invalid(_))
        ));
        assert_eq!(replaced_events().await, 0);
        mfa::verify_code(db, &key, owner.id, &old_code(minutes(3)), minutes(3))
            .await
            .unwrap();

        // Two hundred confirmations at once: one replaces.
        let confirmations: Vec<_> = (0..200)
            .map(|_| tokio::spawn(replacement(true, new_code(minutes(4)), minutes(4))))
            .collect();
        let mut replaced = 0;
        for confirmation in confirmations {
            match confirmation.await.unwrap() {
                Ok(()) => replaced += 1,
                Err(MfaError::NotEnrolling) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(replaced, 1, "{:?}", test_db.backend);
        assert_eq!(replaced_events().await, 1);

        // Only the new one signs in now, and not with the code that confirmed it.
        assert!(matches!(
            mfa::verify_code(db, &key, owner.id, &new_code(minutes(4)), minutes(4)).await,
            Err(MfaError::WrongCode)
        ));
        if old_code(minutes(6)) != new_code(minutes(6)) {
            assert!(matches!(
                mfa::verify_code(db, &key, owner.id, &old_code(minutes(6)), minutes(6)).await,
                Err(MfaError::WrongCode)
            ));
        }
        mfa::verify_code(db, &key, owner.id, &new_code(minutes(6)), minutes(6))
            .await
            .unwrap();
        let member = accounts::member(db, owner.id).await.unwrap().unwrap();
        assert!(member.mfa_enabled);
        let status = |at| {
            let (authz, member) = (&authz, &member);
            async move {
                backup_codes::status(db, authz, member, &CodePolicy::default(), at)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(status(minutes(6)).await.map(|s| s.remaining), Some(10));

        // Another phone, and this time the codes end with the old authenticator.
        let third = mfa::current_replacement(db, &key, owner.id).await.unwrap();
        mfa::confirm_replacement(
            db,
            &key,
            owner.id,
            &mfa::code_at(&third.setup_key, minutes(8)).unwrap(),
            false,
            &source,
            minutes(8),
        )
        .await
        .unwrap();
        assert_eq!(status(minutes(8)).await, None);
        let latest = domain::audit::latest(db, owner.org_id, 1).await.unwrap();
        assert_eq!(latest[0].action, "mfa.replaced");
        assert_eq!(latest[0].details["backup_codes_ended"], true);

        // Turning MFA off drops a replacement half set up; with MFA off there is none to make.
        mfa::current_replacement(db, &key, owner.id).await.unwrap();
        mfa::disable(
            db,
            &hasher,
            owner.id,
            &Password::new("correct horse battery"),
            &source,
            minutes(9),
        )
        .await
        .unwrap();
        assert_eq!(
            test_db
                .count("user_account WHERE totp_replacement_secret IS NOT NULL")
                .await,
            0
        );
        assert!(matches!(
            mfa::current_replacement(db, &key, owner.id).await,
            Err(MfaError::NotEnabled)
        ));
    }
}
