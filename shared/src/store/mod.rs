//! The data layer: the single DynamoDB table behind one [`Table`] handle,
//! with one file per item family. Keys come from [`crate::keys`]; items
//! convert to and from the domain types with `serde_dynamo`. Everything
//! else asks the table.

mod change;
mod connection;
mod device;
mod idempotency;
mod janitor;
mod limit;
mod media;
mod migration;
mod profile;
mod space;
mod sync;

pub use change::{Pushers, TableChange};
pub use migration::legacy_record;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};

pub use janitor::{Finding, ScanPage, ScanPosition};
pub use media::{Page, Readied};
pub use space::{Accepted, NewInvitation, SpaceAccess, SpacePage};

use crate::keys::{self, ItemKey};
use crate::model::ids::{Partition, UserId};
use crate::model::purge::Swept;
use crate::model::quota::Quotas;
use crate::{Error, adapters::aws};

/// Items grouped by the user `user_of` names (connections, devices).
pub fn by_user<T>(items: Vec<T>, user_of: impl Fn(&T) -> &UserId) -> BTreeMap<UserId, Vec<T>> {
    let mut grouped: BTreeMap<_, Vec<T>> = BTreeMap::new();
    for item in items {
        grouped
            .entry(user_of(&item).clone())
            .or_default()
            .push(item);
    }
    grouped
}

type Item = HashMap<String, AttributeValue>;

/// The single table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
    usage: Arc<Usage>,
    /// What a partition or a user may hold; the table refuses writes past
    /// them.
    quotas: Quotas,
}

/// DynamoDB work done by sync, for the cost benchmark.
#[derive(Debug, Default)]
pub struct Usage {
    pub calls: AtomicU64,
    /// Consumed capacity units, in thousandths.
    pub capacity_milli: AtomicU64,
}

impl Usage {
    /// Counts one call and the capacity units it reported.
    fn add_call(&self, consumed: &[aws_sdk_dynamodb::types::ConsumedCapacity]) {
        self.add(
            consumed
                .iter()
                .filter_map(|c| c.capacity_units())
                .reduce(|a, b| a + b),
        );
    }

    fn add(&self, capacity: Option<f64>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.capacity_milli
            .fetch_add((capacity.unwrap_or(0.0) * 1000.0) as u64, Ordering::Relaxed);
    }
}

impl Table {
    pub fn new(sdk: &aws_config::SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: Client::new(sdk),
            name: name.into(),
            usage: Arc::default(),
            quotas: Quotas::default(),
        }
    }

    /// The table enforcing `quotas` instead of the defaults.
    pub fn with_quotas(self, quotas: Quotas) -> Self {
        Self { quotas, ..self }
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// One item by key (consistent read), deserialized; None if absent.
    async fn get<T: serde::de::DeserializeOwned>(&self, key: &ItemKey) -> Result<Option<T>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(item_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws::classify)?;
        output
            .item
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(Error::internal)
    }

    /// Deletes at most `limit` items of the partition (of a deleted account
    /// or space) and says whether any are left: one bounded step, which the
    /// next call resumes by asking again. The partition's marker stays (the
    /// profile, which refuses the account's tokens until its TTL ends it,
    /// or the space's item, marked deleted). What lives outside the
    /// partition but only for its items goes with them: an invitation's
    /// code lookup, a space photo's location.
    pub async fn sweep_partition(
        &self,
        partition: &Partition,
        limit: usize,
    ) -> Result<Swept, Error> {
        let marker = item_key(&ItemKey::marker(partition));
        // One more than asked, so a page holding the marker still holds
        // `limit` items to delete.
        let page = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::partition_key(partition)))
            .projection_expression("PK, SK, codeHash")
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1) + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(aws::classify)?;
        let mut doomed = Vec::new();
        for item in page.items() {
            let key: Item = item
                .iter()
                .filter(|(name, _)| *name == "PK" || *name == "SK")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            if key == marker {
                continue;
            }
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
            match text("PK")
                .zip(text("SK"))
                .and_then(|(pk, sk)| ItemKey::parse(pk, sk))
            {
                Some(ItemKey::Invitation { .. }) => {
                    if let Some(code_hash) = text("codeHash") {
                        doomed.push(item_key(&ItemKey::InvitationCode {
                            code_hash: code_hash.clone(),
                        }));
                    }
                }
                Some(ItemKey::Media {
                    partition: Partition::Space(_),
                    media_id,
                }) => doomed.push(item_key(&ItemKey::MediaLocation { media_id })),
                _ => {}
            }
            doomed.push(key);
        }
        let deleted = doomed.len();
        for chunk in doomed.chunks(25) {
            let requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(Error::internal)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, Error>>()?;
            self.batch_write(requests).await?;
        }
        Ok(Swept {
            deleted,
            more: page.last_evaluated_key.is_some(),
        })
    }

    /// `BatchWriteItem` until nothing is left unprocessed, backing off between
    /// rounds as AWS asks.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), Error> {
        for attempt in 0..8u32 {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.name, requests)
                .send()
                .await
                .map_err(aws::classify)?;
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.name))
                .unwrap_or_default();
        }
        Err(Error::unavailable(std::io::Error::other(
            "BatchWriteItem left items unprocessed after 8 attempts",
        )))
    }
}

impl Table {
    /// Adds (`ADD`) or removes (`DELETE`) ids of the string set `ids` of an
    /// index item (a user's presence, their devices): concurrent changes
    /// of one set never overwrite each other.
    async fn change_id_set(
        &self,
        key: &ItemKey,
        action: &str,
        ids: Vec<String>,
    ) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(key)))
            .update_expression(format!("{action} ids :ids"))
            .expression_attribute_values(":ids", AttributeValue::Ss(ids))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }
}

/// The `PK`/`SK` attribute map of an item.
fn item_key(key: &ItemKey) -> Item {
    HashMap::from([
        (keys::PK.to_string(), AttributeValue::S(key.pk())),
        (keys::SK.to_string(), AttributeValue::S(key.sk())),
    ])
}

/// An item as stored: its key attributes beside the domain value's.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<T> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    value: T,
}

impl<T: serde::Serialize> Stored<T> {
    /// The item for `value` under `key`, expiring (DynamoDB TTL) at
    /// `expires_at` Unix seconds if given.
    fn item(key: &ItemKey, value: T, expires_at: Option<i64>) -> Result<Item, Error> {
        let mut item: Item = serde_dynamo::to_item(Stored {
            pk: key.pk(),
            sk: key.sk(),
            value,
        })
        .map_err(Error::internal)?;
        if let Some(at) = expires_at {
            item.insert(EXPIRES_AT.into(), number(at));
        }
        Ok(item)
    }
}

/// The items that decode as `T`; one that does not (written by another
/// version, or damaged) is logged and left out, so it never fails a list,
/// a fan-out or a deletion of everything else.
fn decode_each<T: serde::de::DeserializeOwned>(items: Vec<Item>, what: &str) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|item| {
            // Only the key is kept for the log line, not a copy of the item.
            let key = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (pk, sk) = (key(keys::PK), key(keys::SK));
            match serde_dynamo::from_item::<_, Stored<T>>(item) {
                Ok(stored) => Some(stored.value),
                Err(err) => {
                    tracing::error!(what, ?pk, ?sk, error = %err, "an item that does not decode was left out");
                    None
                }
            }
        })
        .collect()
}

/// The table's TTL attribute.
const EXPIRES_AT: &str = "expiresAt";

fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// How a `TransactWriteItems` ended: what a caller decides on, read from
/// the cancellation reasons; any other failure is an error.
pub(in crate::store) enum Ended {
    Committed,
    /// Canceled: whether each item failed its condition.
    Failed(Vec<bool>),
    /// Canceled by another transaction on the same items: try again.
    Conflict,
}

pub(in crate::store) fn ended<T>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>>,
) -> Result<Ended, Error> {
    let err = match result {
        Ok(_) => return Ok(Ended::Committed),
        Err(err) => err,
    };
    if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
        err.as_service_error()
    {
        let reasons = canceled.cancellation_reasons();
        let failed: Vec<bool> = reasons
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect();
        if failed.contains(&true) {
            return Ok(Ended::Failed(failed));
        }
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return Ok(Ended::Conflict);
        }
    }
    Err(aws::classify(err))
}
