//! Crash safety and log hygiene through the real binary: the server killed with SIGKILL in
//! the middle of concurrent regenerations and redemptions leaves whole sets and an audit
//! event for every spent code; and a whole journey logged at trace level writes no secret.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{
    accounts::{self, NewMember, Role},
    audit::Source,
    authz::Authz,
    backup_codes::{self, BackupCodeHasher, CodePolicy},
    hashing::PasswordHasher,
    mfa,
    secrets::{Password, SecretKey},
    testing::{TestDatabase, fresh_databases},
};
use reqwest::{Client, StatusCode, header};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};
use tokio::task::JoinHandle;

use crate::{
    accounts::{PASSWORD, cli, create_org, password_step, post, session_cookie},
    harness::Server,
};

/// Members of the crash test, each with MFA on and a set of codes.
const MEMBERS: usize = 6;
/// When each round's SIGKILL comes: once this many of the round's nine requests (a
/// redemption per member, a regeneration for every other member) have been answered, and
/// then up to 25 ms later; with none, 50 to 200 ms after sending. The first round kills
/// while argon2 is still digesting; the later ones while commits are happening.
const KILL_WHEN_ANSWERED: [usize; 4] = [0, 1, 3, 6];

/// How a request the test sent ended.
#[derive(Debug)]
enum Reply<T> {
    /// It did what was asked.
    Done(T),
    /// The server answered, with a refusal or an error.
    Refused(StatusCode),
    /// No answer: the server died with the request in flight.
    CutOff,
}

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

/// A client that shows redirects instead of following them, and gives up on a dead server.
fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn succeeded(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

/// The codes on a page that answers the "Generate New Codes" form, slot 1 first.
fn codes_on_page(html: &str) -> Vec<String> {
    html.split("<code class=\"backup-code\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect()
}

/// Posts the "Generate New Codes" form as the signed-in `session` (signed in moments ago,
/// so no password is asked); the new codes, or how the request ended.
async fn regenerate(client: Client, url: String, session: String) -> Reply<Vec<String>> {
    let sent = client
        .post(format!("{url}/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .form(&[("password", "")])
        .send()
        .await;
    let Ok(response) = sent else {
        return Reply::CutOff;
    };
    let status = response.status();
    let Ok(html) = response.text().await else {
        return Reply::CutOff;
    };
    let codes = codes_on_page(&html);
    if status == StatusCode::OK && codes.len() == 10 {
        Reply::Done(codes)
    } else if status == StatusCode::OK {
        // The page answered without codes: an error shown on the page.
        Reply::Refused(StatusCode::UNPROCESSABLE_ENTITY)
    } else {
        Reply::Refused(status)
    }
}

/// Sends a backup code at the second sign-in step of the `pending` session.
async fn redeem(client: Client, url: String, pending: String, code: String) -> Reply<()> {
    let sent = client
        .post(format!("{url}/api/sign_in/backup_code"))
        .header(header::COOKIE, format!("lifeline_session={pending}"))
        .header(header::ACCEPT, "application/json")
        .form(&[("code", code.as_str())])
        .send()
        .await;
    match sent {
        Ok(response) if succeeded(response.status()) => Reply::Done(()),
        Ok(response) => Reply::Refused(response.status()),
        Err(_) => Reply::CutOff,
    }
}

/// Runs `sql` on the test's own connection to the database the server uses.
async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    db.query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// An integer column, whether the engine reports it as 32 or 64 bits.
fn int(row: &QueryResult, column: &str) -> i64 {
    row.try_get::<i64>("", column)
        .or_else(|_| row.try_get::<i32>("", column).map(i64::from))
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
}

/// The id of `member_id`'s set in force; there must be exactly one.
async fn set_in_force(db: &DatabaseConnection, member_id: i32) -> i64 {
    let sets = rows(
        db,
        &format!("SELECT id FROM backup_code_set WHERE user_id = {member_id} AND ended_at IS NULL"),
    )
    .await;
    assert_eq!(
        sets.len(),
        1,
        "member {member_id} holds {} sets in force",
        sets.len()
    );
    int(&sets[0], "id")
}

async fn spent(db: &DatabaseConnection, set_id: i64, slot: usize) -> bool {
    let found = rows(
        db,
        &format!(
            "SELECT CASE WHEN used_at IS NULL THEN 0 ELSE 1 END AS spent \
             FROM backup_code WHERE set_id = {set_id} AND slot = {slot}"
        ),
    )
    .await;
    assert_eq!(found.len(), 1, "set {set_id} has no slot {slot}");
    int(&found[0], "spent") == 1
}

/// Every set, in force or ended, holds exactly its `code_count` codes in slots 1..=n; every
/// set has exactly one audit event saying it was generated, and every such event its set.
async fn assert_sets_are_whole(db: &DatabaseConnection) {
    let sets = rows(
        db,
        "SELECT s.id, s.code_count, COUNT(c.id) AS codes, \
         COALESCE(MIN(c.slot), 0) AS first, COALESCE(MAX(c.slot), 0) AS last \
         FROM backup_code_set s LEFT JOIN backup_code c ON c.set_id = s.id \
         GROUP BY s.id, s.code_count ORDER BY s.id",
    )
    .await;
    let mut set_ids = Vec::new();
    for set in &sets {
        let (id, count) = (int(set, "id"), int(set, "code_count"));
        assert_eq!(
            (int(set, "codes"), int(set, "first"), int(set, "last")),
            (count, 1, count),
            "set {id} is not whole"
        );
        set_ids.push(id);
    }
    let mut generated: Vec<i64> = audit_details(
        db,
        "action IN ('backup_codes.generated', 'backup_codes.replaced')",
    )
    .await
    .iter()
    .map(|details| details["set"].as_i64().expect("a set id in the event"))
    .collect();
    generated.sort_unstable();
    assert_eq!(
        generated, set_ids,
        "each set and its 'generated' event were written together"
    );
}

/// The `details` of the audit events matching `condition`, oldest first.
async fn audit_details(db: &DatabaseConnection, condition: &str) -> Vec<serde_json::Value> {
    rows(
        db,
        &format!("SELECT details FROM audit_event WHERE {condition} ORDER BY seq"),
    )
    .await
    .iter()
    .map(|row| {
        let text: String = row.try_get("", "details").unwrap();
        serde_json::from_str(&text).unwrap()
    })
    .collect()
}

/// Every spent code has exactly one `backup_code.redeemed` event, and every such event names
/// a spent code.
async fn assert_spent_codes_are_audited(db: &DatabaseConnection) -> usize {
    let mut spent: Vec<(i64, i64)> = rows(
        db,
        "SELECT set_id, slot FROM backup_code WHERE used_at IS NOT NULL",
    )
    .await
    .iter()
    .map(|row| (int(row, "set_id"), int(row, "slot")))
    .collect();
    spent.sort_unstable();
    let mut redeemed: Vec<(i64, i64)> = audit_details(db, "action = 'backup_code.redeemed'")
        .await
        .iter()
        .map(|details| {
            (
                details["set"].as_i64().expect("set"),
                details["slot"].as_i64().expect("slot"),
            )
        })
        .collect();
    redeemed.sort_unstable();
    assert_eq!(
        spent, redeemed,
        "spent codes (set, slot) and their 'redeemed' events"
    );
    spent.len()
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
    let digests = BackupCodeHasher::new(hasher.clone(), key);
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
        let enrolment = mfa::begin_enrolment(db, key, member.id).await.unwrap();
        let code = mfa::code_at(&enrolment.setup_key, now).unwrap();
        mfa::confirm_enrolment(db, key, member.id, &code, &Source::default(), now)
            .await
            .unwrap();
        let fresh = backup_codes::generate(
            db,
            &authz,
            &digests,
            &member,
            &CodePolicy::default(),
            &Source::default(),
            now,
        )
        .await
        .unwrap();
        holders.push(Holder {
            id: member.id,
            email: member.email,
            setup_key: enrolment.setup_key,
            session: String::new(),
            set_id: set_in_force(db, member.id).await,
            codes: fresh.codes.iter().map(|code| code.grouped()).collect(),
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
        let pending = password_step(client, server, &holder.email, PASSWORD).await;
        let code = mfa::code_at(
            &holder.setup_key,
            enrolled_at + chrono::Duration::seconds(30),
        )
        .unwrap();
        let response = post(
            client,
            server,
            "/api/sign_in/code",
            Some(&pending),
            &[("code", &code)],
        )
        .await;
        assert!(
            succeeded(response.status()),
            "{}: {}",
            holder.email,
            response.status()
        );
        holder.session = session_cookie(&response).unwrap().0;
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
        let key = SecretKey::generate();
        let hex = key.to_hex();
        let vars = [
            ("DATABASE_URL", database.url.as_str()),
            ("LIFELINE_SECRET_KEY", hex.as_str()),
        ];
        let enrolled_at = Utc::now();
        let mut holders = members_with_codes(&database, &key, enrolled_at).await;
        let db = &database.db;
        let client = client();
        let mut server = Server::start_with(&vars).await;
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
            server = Server::start_with(&vars).await;
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

/// The text between `start` and the next `<` on a page.
fn text_after<'a>(html: &'a str, start: &str) -> Option<&'a str> {
    let at = html.find(start)? + start.len();
    html[at..].split('<').next()
}

/// RFC 4648 base32 (the TOTP setup key) to bytes: the raw secret, to look for it in hex.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut count, mut bytes) = (0u32, 0, Vec::new());
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("a base32 character");
        bits = (bits << 5) | u32::try_from(value).unwrap();
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push(u8::try_from((bits >> count) & 0xff).unwrap());
        }
    }
    bytes
}

/// A 12-digit code in every way it may be typed or form-encoded.
fn code_spellings(code: &str) -> Vec<String> {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let groups = [&digits[0..4], &digits[4..8], &digits[8..12]];
    vec![
        digits.clone(),
        groups.join(" "),
        groups.join("-"),
        groups.join("+"),
        groups.join("%20"),
    ]
}

/// A password as typed and as a form encodes it.
fn password_spellings(password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        password.replace(' ', "+"),
        password.replace(' ', "%20"),
    ]
}

/// The log lines in which the 6-digit `code` stands as a number of its own: not part of a
/// longer run of digits, nor the fraction of a timestamp or a duration (`.123456`). A 6-digit
/// number may turn up by chance; this keeps that chance far below one in a thousand.
fn lines_with_number<'a>(log: &'a [String], code: &str) -> Vec<&'a String> {
    log.iter()
        .filter(|line| {
            let bytes = line.as_bytes();
            line.match_indices(code).any(|(at, _)| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + code.len()).copied();
                !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
                    && !after.is_some_and(|b| b.is_ascii_digit())
            })
        })
        .collect()
}

/// GETs a page as the signed-in `session`.
async fn page(client: &Client, server: &Server, session: &str, path: &str) -> String {
    client
        .get(server.url(path))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_whole_journey_logged_at_trace_level_writes_no_password_code_key_or_session_id() {
    const NEW_MEMBER_PASSWORD: &str = "initial password 4417 for a newcomer";
    const WRONG_PASSWORD: &str = "wrong password guessed 2931";
    const WRONG_BACKUP_CODE: &str = "2718 2818 2845";

    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let key = SecretKey::generate().to_hex();
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SECRET_KEY", &key),
        ("LIFELINE_LOG", "trace"),
    ])
    .await;
    let client = client();
    // (what it is, the text that must not be logged)
    let mut secrets: Vec<(String, String)> = vec![("the server's secret key".into(), key.clone())];
    for (what, password) in [
        ("the owner's password", PASSWORD),
        ("the new member's initial password", NEW_MEMBER_PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
    ] {
        for spelling in password_spellings(password) {
            secrets.push((what.into(), spelling));
        }
    }
    let mut totp_codes = Vec::new();
    let mut sessions = Vec::new();

    // Signing in with the password; the session id changes at each step.
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    sessions.push(session_cookie(&step1).unwrap().0);
    let owner = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    sessions.push(owner.clone());

    // Turning on MFA with the setup key the page shows.
    let setup = page(&client, &server, &owner, "/account/mfa/setup").await;
    let setup_key = text_after(&setup, "<code class=\"setup-key\">")
        .unwrap_or_else(|| panic!("the setup key on the page: {setup}"))
        .to_owned();
    let compact = setup_key.replace(' ', "");
    assert!(compact.len() >= 16, "{setup_key}");
    let raw = base32_decode(&compact);
    for spelling in [setup_key.clone(), compact.clone(), compact.to_lowercase()] {
        secrets.push(("the TOTP setup key".into(), spelling));
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    for spelling in [hex.clone(), hex.to_uppercase(), format!("{raw:?}")] {
        secrets.push(("the raw TOTP secret".into(), spelling));
    }
    let enrolled_at = Utc::now();
    let first = mfa::code_at(&compact, enrolled_at).unwrap();
    totp_codes.push(first.clone());
    let confirmed = post(
        &client,
        &server,
        "/api/account/mfa/confirm",
        Some(&owner),
        &[("code", &first)],
    )
    .await;
    assert!(succeeded(confirmed.status()), "{}", confirmed.status());

    // The owner adds a member with an initial password.
    let added = post(
        &client,
        &server,
        "/api/members/add",
        Some(&owner),
        &[
            ("email", "newcomer@acme.test"),
            ("password", NEW_MEMBER_PASSWORD),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(added.status(), StatusCode::OK);

    // Generating backup codes.
    let Reply::Done(codes) =
        regenerate(client.clone(), server.base_url.clone(), owner.clone()).await
    else {
        panic!("generating backup codes failed");
    };
    for code in codes.iter().map(String::as_str).chain([WRONG_BACKUP_CODE]) {
        for spelling in code_spellings(code) {
            secrets.push(("a backup code".into(), spelling));
        }
    }
    let out = post(&client, &server, "/api/sign_out", Some(&owner), &[]).await;
    assert!(succeeded(out.status()));

    // A wrong password, then the right one, a wrong authenticator code, then the right one.
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    let first_step = session_cookie(&step1).unwrap().0;
    sessions.push(first_step.clone());
    let wrong = post(
        &client,
        &server,
        "/api/sign_in/password",
        Some(&first_step),
        &[("password", WRONG_PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = post(
        &client,
        &server,
        "/api/sign_in/password",
        Some(&first_step),
        &[("password", PASSWORD)],
    )
    .await;
    let pending = session_cookie(&right).unwrap().0;
    sessions.push(pending.clone());
    // The code of ten minutes later: a real code of this authenticator, but not now.
    let next = mfa::code_at(&compact, enrolled_at + chrono::Duration::seconds(30)).unwrap();
    let mut later = mfa::code_at(&compact, enrolled_at + chrono::Duration::minutes(10)).unwrap();
    if later == next {
        later = if next == "000000" { "111111" } else { "000000" }.into();
    }
    totp_codes.extend([later.clone(), next.clone()]);
    let refused = post(
        &client,
        &server,
        "/api/sign_in/code",
        Some(&pending),
        &[("code", &later)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/code",
        Some(&pending),
        &[("code", &next)],
    )
    .await;
    assert!(succeeded(accepted.status()), "{}", accepted.status());
    let signed_in = session_cookie(&accepted).unwrap().0;
    sessions.push(signed_in.clone());
    post(&client, &server, "/api/sign_out", Some(&signed_in), &[]).await;

    // A wrong backup code, then a right one typed with dashes.
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    sessions.push(pending.clone());
    let refused = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", WRONG_BACKUP_CODE)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let dashed = codes[0].replace(' ', "-");
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &dashed)],
    )
    .await;
    assert!(succeeded(accepted.status()), "{}", accepted.status());
    sessions.push(session_cookie(&accepted).unwrap().0);

    // The newcomer signs in with the initial password.
    let newcomer = password_step(&client, &server, "newcomer@acme.test", NEW_MEMBER_PASSWORD).await;
    sessions.push(newcomer);

    for session in sessions {
        secrets.push(("a session id".into(), session));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();

    // The log really is at trace level: absence below means something.
    let level = |level: &str| {
        log.iter()
            .filter(|line| line.contains(&format!(" {level} ")))
            .count()
    };
    assert!(
        level("TRACE") > 0 && level("DEBUG") > 0,
        "no trace-level lines in the log: {log:#?}"
    );
    assert!(
        log.iter().any(|line| line.contains("tower_http")),
        "the request traces are in the log"
    );

    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        if let Some(line) = log.iter().find(|line| line.contains(secret.as_str())) {
            leaks.push(format!("{what} ({secret}) in: {line}"));
        }
    }
    for code in &totp_codes {
        if let Some(line) = lines_with_number(&log, code).first() {
            leaks.push(format!("an authenticator code ({code}) in: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the server log ({} lines):\n{}",
        log.len(),
        leaks.join("\n")
    );
    eprintln!(
        "trace log: {} lines ({} TRACE, {} DEBUG), {} secrets and {} authenticator codes \
         looked for",
        log.len(),
        level("TRACE"),
        level("DEBUG"),
        secrets.len(),
        totp_codes.len()
    );
}
