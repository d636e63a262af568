//! What one pull costs a user in 1, 50 and 500 spaces: DynamoDB calls and
//! capacity of the first pull, a pull with nothing new, and a pull after
//! one space changed. Run by scripts/bench against the emulator at
//! AWS_ENDPOINT_URL.

use std::sync::atomic::Ordering;

use shared::model::ids::{ClientId, SpaceId, UserId};
use shared::store::Table;
use shared::sync::feed::PullCursor;
use shared::sync::hlc::Hlc;
use shared::sync::store::{Memberships, SyncStore};
use shared::sync::{Limits, WireMutation, validate};

/// Pulls every page from `cursor`; the cursor after, and the calls and
/// capacity units that took.
async fn pull_to_end(
    table: &Table,
    grant: &shared::model::access::Grant,
    client: &ClientId,
    mut cursor: PullCursor,
) -> anyhow::Result<(PullCursor, u64, f64, usize)> {
    let (calls, capacity) = (
        table.usage().calls.load(Ordering::Relaxed),
        table.usage().capacity_milli.load(Ordering::Relaxed),
    );
    let mut changes = 0;
    loop {
        let page = table.pull(grant, client, cursor, 500).await?;
        changes += page.changes.len();
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    let calls = table.usage().calls.load(Ordering::Relaxed) - calls;
    let capacity =
        (table.usage().capacity_milli.load(Ordering::Relaxed) - capacity) as f64 / 1000.0;
    Ok((cursor, calls, capacity, changes))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let emulator = e2e::emulator_url();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template())?;
    println!(
        "| spaces | first pull: calls | no change: calls | no change: capacity reported | one space changed: calls | capacity reported |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [1usize, 50, 500] {
        let stack = format!("spaces{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let resources = local_stack::provision::provision(&sdk, &template, &stack).await?;
        let table = Table::new(&sdk, &resources.table_name);
        let user = UserId::parse(&format!("bench-{n}"))?;
        let client = ClientId::parse("bench")?;
        let grant = table.check_session(&user, 0, None).await?.own();
        let spaces: Vec<SpaceId> = (0..n)
            .map(|i| SpaceId::parse(&format!("space-{i:04}")))
            .collect::<Result<_, _>>()?;
        for space in &spaces {
            Memberships::create_space(&table, &user, space, "bench").await?;
        }
        // One record in every space, so each has a feed to read.
        let now = chrono::Utc::now().timestamp_millis() as u64;
        let wires: Vec<WireMutation> = spaces
            .iter()
            .enumerate()
            .map(|(i, space)| WireMutation {
                id: i as u64 + 1,
                space_id: Some(space.clone()),
                collection: "items".into(),
                record_id: "first".into(),
                op: "put".into(),
                fields: serde_json::json!({"n": i}).as_object().cloned(),
                hlc: Hlc::new(now, i as u32, "bench").to_string(),
            })
            .collect();
        for chunk in wires.chunks(1000) {
            let mutations = validate(&client, chunk.to_vec(), &Limits::default(), now)?;
            table.push(&grant, &client, mutations).await?;
        }
        let (cursor, first_calls, _, first_changes) =
            pull_to_end(&table, &grant, &client, PullCursor::default()).await?;
        assert_eq!(
            first_changes, n,
            "the first pull brings every space's record"
        );
        let (cursor, idle_calls, idle_capacity, idle_changes) =
            pull_to_end(&table, &grant, &client, cursor).await?;
        assert_eq!(idle_changes, 0);
        let changed = validate(
            &client,
            vec![WireMutation {
                id: n as u64 + 1,
                space_id: Some(spaces[n / 2].clone()),
                collection: "items".into(),
                record_id: "second".into(),
                op: "put".into(),
                fields: serde_json::json!({"n": 1}).as_object().cloned(),
                hlc: Hlc::new(now + 1, 0, "bench").to_string(),
            }],
            &Limits::default(),
            now + 1,
        )?;
        table.push(&grant, &client, changed).await?;
        let (_, one_calls, one_capacity, one_changes) =
            pull_to_end(&table, &grant, &client, cursor).await?;
        assert_eq!(one_changes, 1);
        println!(
            "| {n} | {first_calls} | {idle_calls} | {idle_capacity:.1} | {one_calls} | {one_capacity:.1} |"
        );
    }
    println!();
    println!(
        "Calls of a pull: 1 query of the memberships (1 MB a page: about 5,000 spaces), \
         ceil((spaces + 2) / 100) consistent BatchGetItems of the counters, then per \
         changed space one Feed query and one UpdateItem of its position."
    );
    Ok(())
}
