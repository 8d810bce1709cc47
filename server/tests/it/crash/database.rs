//! What the database holds after the kills, read on the test's own connection: the set in
//! force, spent codes, whole sets, and an audit event for every set and every spent code.

use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};

/// Runs `sql` on the test's own connection to the database the server uses.
pub async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    db.query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// An integer column, whether the engine reports it as 32 or 64 bits.
pub fn int(row: &QueryResult, column: &str) -> i64 {
    row.try_get::<i64>("", column)
        .or_else(|_| row.try_get::<i32>("", column).map(i64::from))
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
}

/// The id of `member_id`'s set in force; there must be exactly one.
pub async fn set_in_force(db: &DatabaseConnection, member_id: i32) -> i64 {
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

pub async fn spent(db: &DatabaseConnection, set_id: i64, slot: usize) -> bool {
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

/// Every set, in force or ended, holds exactly its `code_count` codes in slots 1..=n, and
/// counts as spent (`codes_used`, `last_used_at`) exactly its codes spent; every set has
/// exactly one audit event saying it was generated, and every such event its set.
pub async fn assert_sets_are_whole(db: &DatabaseConnection) {
    let sets = rows(
        db,
        "SELECT s.id, s.code_count, s.codes_used, COUNT(c.id) AS codes, \
         COUNT(c.used_at) AS spent, \
         CASE WHEN s.last_used_at IS NOT DISTINCT FROM MAX(c.used_at) THEN 1 ELSE 0 END \
         AS last_use_agrees, \
         COALESCE(MIN(c.slot), 0) AS first, COALESCE(MAX(c.slot), 0) AS last \
         FROM backup_code_set s LEFT JOIN backup_code c ON c.set_id = s.id \
         GROUP BY s.id, s.code_count, s.codes_used, s.last_used_at ORDER BY s.id",
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
        assert_eq!(
            (int(set, "codes_used"), int(set, "last_use_agrees")),
            (int(set, "spent"), 1),
            "set {id} counts other codes spent than it holds"
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
pub async fn audit_details(db: &DatabaseConnection, condition: &str) -> Vec<serde_json::Value> {
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
pub async fn assert_spent_codes_are_audited(db: &DatabaseConnection) -> usize {
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
