//! The server killed with SIGKILL, four times, in the middle of concurrent regenerations and
//! redemptions: every set stays whole, every spent code has its audit event, and the codes a
//! member saw are the ones that work.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{
    accounts::{self, NewMember},
    authz::Authz,
    hashing::PasswordHasher,
    identity::Role,
    mfa,
    secrets::{Password, SecretKey},
    testing::{TestDatabase, fresh_databases},
};
use reqwest::{Client, StatusCode};
use tokio::task::JoinHandle;

use super::{
    GIVE_UP_AFTER, Reply,
    database::{assert_sets_are_whole, assert_spent_codes_are_audited, set_in_force, spent},
    regenerate,
};
use crate::support::{
    PASSWORD,
    cli::{cli, create_org},
    client::{SecondFactor, client_with_timeout, password_step, sign_in_with, succeeded, try_post},
    organizations::enrol_with_codes,
    process::Server,
};

/// Members of the crash test, each with MFA on and a set of codes.
const MEMBERS: usize = 6;
/// When each round's SIGKILL comes: once this many of the round's nine requests (a
/// redemption per member, a regeneration for every other member) have been answered, and
/// then up to 25 ms later; with none, 50 to 200 ms after sending. The first round kills
/// while argon2 is still digesting; the later ones while commits are happening.
const KILL_WHEN_ANSWERED: [usize; 4] = [0, 1, 3, 6];

/// What happened to the requests in flight at the kills, for the report.
#[derive(Default)]
struct Tally {
    redeemed: usize,
    refused: usize,
    regenerated: usize,
    cut_off: usize,
    /// Regenerations that committed but whose answer died with the server.
    lost_sets: usize,
    /// Redemptions likewise: the code is spent, the member never heard.
    spent_unanswered: usize,
    /// Answers none is expected to get: a 5xx status, or a regeneration refused.
    unexpected: Vec<String>,
}

/// Sends a backup code at the second sign-in step of the `pending` session.
async fn redeem(client: Client, url: String, pending: String, code: String) -> Reply<()> {
    let sent = try_post(
        &client,
        &url,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", code.as_str())],
    )
    .await;
    match sent {
        Ok(response) if succeeded(response.status()) => Reply::Done(()),
        Ok(response) => Reply::Refused(response.status()),
        Err(_) => Reply::CutOff,
    }
}

/// One member of the crash test, and what the test knows of their codes.
struct Holder {
    id: i32,
    email: String,
    setup_key: String,
    /// A signed-in session id; sessions live in the database, so it outlives the server.
    session: String,
    /// The id of the set whose codes the test holds.
    set_id: i64,
    /// That set's codes, slot 1 first.
    codes: Vec<String>,
    /// Codes before this index have been sent to the server.
    next: usize,
    /// A code never sent, of a set since replaced: it must no longer work.
    superseded: Option<String>,
}

impl Holder {
    /// Takes the code in force that was never sent, marking it sent.
    fn take_code(&mut self) -> String {
        let code = self.codes[self.next].clone();
        self.next += 1;
        code
    }

    /// The test now holds the codes of `set_id`, which replaced the set it held.
    fn replaced_by(&mut self, set_id: i64, codes: Vec<String>) {
        assert_ne!(
            set_id, self.set_id,
            "{}: a new set is the set in force",
            self.email
        );
        self.superseded = Some(self.codes[self.next].clone());
        self.set_id = set_id;
        self.codes = codes;
        self.next = 0;
    }
}

/// The owner of "Acme" and `MEMBERS - 1` members, each with MFA on (enrolled at `now`) and a
/// set of codes made with `key`, as the server started with that key makes them.
async fn members_with_codes(
    database: &TestDatabase,
    key: &SecretKey,
    now: chrono::DateTime<Utc>,
) -> Vec<Holder> {
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let db = &database.db;
    let hasher = PasswordHasher::new(2).unwrap();
    let authz = Authz::baseline().await.unwrap();
    let password = Password::new(PASSWORD);
    let mut holders = Vec::new();
    for n in 0..MEMBERS {
        let member = if n == 0 {
            accounts::member(db, 1).await.unwrap().unwrap()
        } else {
            let email = format!("member{n}@acme.test");
            let new = NewMember {
                email: &email,
                password: &password,
                role: Role::Member,
            };
            accounts::create_member(db, &hasher, None, 1, new, now)
                .await
                .unwrap()
        };
        let enrolled = enrol_with_codes(db, &authz, key, member.id, now).await;
        holders.push(Holder {
            id: member.id,
            email: member.email,
            setup_key: enrolled.setup_key,
            session: String::new(),
            set_id: set_in_force(db, member.id).await,
            codes: enrolled.codes,
            next: 0,
            superseded: None,
        });
    }
    holders
}

/// Signs each holder in with password and authenticator code; `enrolled_at` is when their
/// authenticator was confirmed (that step's code is spent, so the next step's is used).
async fn sign_in_with_totp(
    client: &Client,
    server: &Server,
    holders: &mut [Holder],
    enrolled_at: chrono::DateTime<Utc>,
) {
    for holder in holders {
        let code = mfa::code_at(
            &holder.setup_key,
            enrolled_at + chrono::Duration::seconds(30),
        )
        .unwrap();
        let factor = SecondFactor::AuthenticatorCode(&code);
        holder.session = sign_in_with(client, server, &holder.email, factor).await;
    }
}

/// Up to `most_ms` milliseconds of jitter from the clock, so the kills land at varying moments.
fn jitter(most_ms: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    Duration::from_millis(u64::from(nanos % (most_ms + 1)))
}

#[tokio::test]
async fn sigkill_mid_regeneration_and_redemption_leaves_whole_sets_and_audited_spent_codes() {
    for database in fresh_databases().await {
        let backend = database.backend;
        let started = Instant::now();
        // The test key: the chain these servers extend is verified by the CLI, which uses it.
        let key = domain::testing::secret_key();
        let enrolled_at = Utc::now();
        let mut holders = members_with_codes(&database, &key, enrolled_at).await;
        let db = &database.db;
        let client = client_with_timeout(GIVE_UP_AFTER);
        let mut server = Server::start_with_key(&database.url, &key, &[]).await;
        sign_in_with_totp(&client, &server, &mut holders, enrolled_at).await;

        let mut tally = Tally::default();
        for (round, answered) in KILL_WHEN_ANSWERED.into_iter().enumerate() {
            let mut pending = Vec::new();
            for holder in &holders {
                pending.push(password_step(&client, &server, &holder.email, PASSWORD).await);
            }
            // Every member redeems a code; half of them regenerate at the same time, racing
            // their own redemption. The halves swap each round.
            let mut requests = Vec::new();
            for (index, (holder, pending)) in holders.iter_mut().zip(pending).enumerate() {
                let regenerating = ((index + round) % 2 == 0).then(|| {
                    tokio::spawn(regenerate(
                        client.clone(),
                        server.base_url.clone(),
                        holder.session.clone(),
                    ))
                });
                let sent = holder.next;
                let code = holder.take_code();
                let redeeming = tokio::spawn(redeem(
                    client.clone(),
                    server.base_url.clone(),
                    pending,
                    code,
                ));
                requests.push((sent, regenerating, redeeming));
            }
            let sent_at = Instant::now();
            let total = requests
                .iter()
                .map(|(_, a, _)| 1 + usize::from(a.is_some()))
                .sum::<usize>();
            let finished = |requests: &[(usize, Option<JoinHandle<_>>, JoinHandle<_>)]| {
                requests
                    .iter()
                    .map(|(_, a, b)| {
                        usize::from(a.as_ref().is_some_and(JoinHandle::is_finished))
                            + usize::from(b.is_finished())
                    })
                    .sum::<usize>()
            };
            while finished(&requests) < answered {
                assert!(sent_at.elapsed() < Duration::from_secs(30), "no answers");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(if answered == 0 {
                Duration::from_millis(50) + jitter(150)
            } else {
                jitter(25)
            })
            .await;
            let (killed_at, answered) = (sent_at.elapsed(), finished(&requests));
            let log = server.kill_hard().await;
            assert!(
                !log.iter().any(|line| line.contains("panicked")),
                "{log:#?}"
            );
            let mut replies = Vec::new();
            for (sent, regenerating, redeeming) in requests {
                let regenerated = match regenerating {
                    Some(handle) => Some(handle.await.unwrap()),
                    None => None,
                };
                replies.push((sent, regenerated, redeeming.await.unwrap()));
            }
            server = Server::start_with_key(&database.url, &key, &[]).await;
            assert_sets_are_whole(db).await;

            for (holder, (sent, regenerated, redeemed)) in holders.iter_mut().zip(replies) {
                let before = holder.set_id;
                let now_in_force = set_in_force(db, holder.id).await;
                let who = format!("{backend:?} round {} {}", round + 1, holder.email);
                match redeemed {
                    Reply::Done(()) => {
                        tally.redeemed += 1;
                        assert!(
                            spent(db, before, sent + 1).await,
                            "{who}: a code accepted at sign-in is spent"
                        );
                    }
                    Reply::Refused(status) => {
                        tally.refused += 1;
                        if status.is_server_error() {
                            tally
                                .unexpected
                                .push(format!("{who}: redeem answered {status}"));
                        }
                        assert!(
                            !spent(db, before, sent + 1).await,
                            "{who}: a refused code ({status}) is not spent"
                        );
                        // A real, unsent code of the set in force is refused only because a
                        // regeneration replaced its set meanwhile.
                        assert_ne!(
                            now_in_force, before,
                            "{who}: a good code refused ({status}) with its set still in force"
                        );
                    }
                    Reply::CutOff => {
                        tally.cut_off += 1;
                        if spent(db, before, sent + 1).await {
                            tally.spent_unanswered += 1;
                        }
                    }
                }
                match regenerated {
                    None => assert_eq!(
                        now_in_force, before,
                        "{who}: the set changed with no regeneration"
                    ),
                    Some(Reply::Done(codes)) => {
                        tally.regenerated += 1;
                        holder.replaced_by(now_in_force, codes);
                    }
                    Some(other) => {
                        if let Reply::Refused(status) = other {
                            tally
                                .unexpected
                                .push(format!("{who}: regenerate answered {status}"));
                        } else {
                            tally.cut_off += 1;
                        }
                        if now_in_force != before {
                            // Committed, but the answer died with the server: the member
                            // never saw these codes, and generates again.
                            tally.lost_sets += 1;
                            let Reply::Done(codes) = regenerate(
                                client.clone(),
                                server.base_url.clone(),
                                holder.session.clone(),
                            )
                            .await
                            else {
                                panic!("{who}: generating again after the restart failed");
                            };
                            holder.replaced_by(set_in_force(db, holder.id).await, codes);
                        }
                    }
                }
            }
            eprintln!(
                "{backend:?} round {}: killed {killed_at:?} after sending, with {answered} of \
                 {total} requests answered",
                round + 1,
            );
        }

        // An attempt in flight when the server was killed stays counted until its window
        // ends: the limit fails closed, and a member who had several may find backup-code
        // sign-in locked for that while. The operator ends those locks, as after a real
        // crash, so that what is checked next is the codes, not the limit.
        for holder in &holders {
            let (ok, _, stderr) = cli(
                &database.url,
                &["unlock", "--org", "acme", "--email", &holder.email],
                "",
            )
            .await;
            assert!(ok, "{stderr}");
        }

        // Codes seen in a generate answer work; codes of a replaced set do not.
        for holder in &mut holders {
            let pending = password_step(&client, &server, &holder.email, PASSWORD).await;
            if let Some(old) = holder.superseded.clone() {
                let refused = redeem(
                    client.clone(),
                    server.base_url.clone(),
                    pending.clone(),
                    old,
                )
                .await;
                assert!(
                    matches!(refused, Reply::Refused(StatusCode::UNPROCESSABLE_ENTITY)),
                    "{}: a code of a replaced set: {refused:?}",
                    holder.email
                );
            }
            let code = holder.take_code();
            let accepted = redeem(client.clone(), server.base_url.clone(), pending, code).await;
            assert!(
                matches!(accepted, Reply::Done(())),
                "{}: a code of the set in force: {accepted:?}",
                holder.email
            );
        }
        let (_, log) = server.terminate().await;
        assert!(!log.iter().any(|line| line.contains("panicked")));

        for holder in &holders {
            set_in_force(db, holder.id).await;
        }
        assert_sets_are_whole(db).await;
        let spent_codes = assert_spent_codes_are_audited(db).await;
        let (ok, stdout, stderr) =
            cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(ok, "audit verify: {stdout}{stderr}");
        assert!(tally.unexpected.is_empty(), "{:#?}", tally.unexpected);
        assert!(tally.cut_off > 0, "no request was in flight at any kill");
        eprintln!(
            "{backend:?}: {} kills; during them {} redemptions succeeded, {} were refused, {} \
             regenerations succeeded, {} requests were cut off ({} codes and {} sets committed \
             whose answer was lost); {spent_codes} codes spent in all; {:?}",
            KILL_WHEN_ANSWERED.len(),
            tally.redeemed,
            tally.refused,
            tally.regenerated,
            tally.cut_off,
            tally.spent_unanswered,
            tally.lost_sets,
            started.elapsed()
        );
    }
}
