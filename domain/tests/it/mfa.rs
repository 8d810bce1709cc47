//! TOTP enrolment, verification and replay protection, on every backend.

use chrono::Duration;
use domain::{
    accounts,
    hashing::PasswordHasher,
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

        assert_eq!(mfa::reseal_secrets(db, &rotated).await.unwrap(), 2);
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
        assert!(!mfa::key_opens_stored_secrets(db, &old).await.unwrap());
    }
}
