//! The one-off upgrade from the layout before the change feed (sync records
//! in `USER#<sub>#<collection>` partitions, read through GSI1) to the table
//! with the `Feed` index. Adding a local secondary index replaces the table,
//! so this copies every item of the old table into the new one:
//!
//! - sync records are merged into the new table with the merge engine and
//!   get new versions, as a push would give them (edits pushed to the new
//!   table meanwhile are kept: merging is commutative and idempotent);
//! - client watermarks keep the larger of old and new, so mutation ids go on;
//! - the old version counters are not copied: the new feed numbers its own
//!   versions, and a cursor from the old one answers `cursor_expired`;
//! - everything else (profiles, media, devices, idempotency records, push
//!   marks) is copied unless the new table already has the item.
//!
//! Every step is conditional or a merge, so running it again changes nothing.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::keys::{self, ItemKey};
use shared::model::ids::UserId;
use shared::store::{Table, legacy_record};
use shared::sync::RecordKey;
use shared::sync::merge::RecordState;

type Item = HashMap<String, AttributeValue>;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Migrated {
    /// Items read from the old table.
    pub read: usize,
    /// Sync records whose state changed in the new table.
    pub records_changed: usize,
    /// Other items written (copied, or watermarks raised).
    pub items_written: usize,
}

pub async fn run(sdk: &aws_config::SdkConfig, from: &str, to: &str) -> Result<Migrated> {
    let client = Client::new(sdk);
    let table = Table::new(sdk, to);
    let mut migrated = Migrated::default();
    let mut records: BTreeMap<UserId, Vec<(RecordKey, RecordState)>> = BTreeMap::new();
    let mut pages = client
        .scan()
        .table_name(from)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.with_context(|| format!("scanning {from}"))?;
        migrated.read += 1;
        if let Some((user, key, state)) = legacy_record(&item) {
            records.entry(user).or_default().push((key, state));
            continue;
        }
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let parsed = ItemKey::parse(
            &text(keys::PK).unwrap_or_default(),
            &text(keys::SK).unwrap_or_default(),
        );
        let written = match parsed {
            Some(ItemKey::SyncVersion { .. }) => false,
            Some(ItemKey::Watermark { .. }) => put_if(&client, to, item, WATERMARK_RAISES).await?,
            _ => put_if(&client, to, item, "attribute_not_exists(PK)").await?,
        };
        migrated.items_written += usize::from(written);
    }
    for (user, states) in records {
        migrated.records_changed += table
            .merge_records(&user, &states)
            .await
            .with_context(|| format!("merging the records of {user}"))?;
    }
    Ok(migrated)
}

/// A watermark is copied only above the one the new table holds.
const WATERMARK_RAISES: &str = "attribute_not_exists(PK) OR lastMutationId < :copied";

/// Puts `item` into `table` if `condition` holds; false if it did not.
async fn put_if(client: &Client, table: &str, item: Item, condition: &str) -> Result<bool> {
    let mut put = client
        .put_item()
        .table_name(table)
        .condition_expression(condition);
    if condition.contains(":copied") {
        let copied = item
            .get("lastMutationId")
            .cloned()
            .unwrap_or(AttributeValue::N("0".into()));
        put = put.expression_attribute_values(":copied", copied);
    }
    match put.set_item(Some(item)).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if shared::adapters::aws::error_code(&err)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(err).context("writing an item"),
    }
}
