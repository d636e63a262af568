//! A month's AWS bill from measured usage: DynamoDB's request units by
//! its own rules from the billing facts the emulator records
//! (`infra/emulator/meter.py`), everything else from counts, priced with
//! the dated list prices in `infra/pricing/aws-us-east-1.yaml`. Pure: the
//! cost benchmark (`tests/examples/cost.rs`) measures, this prices.

use std::collections::BTreeMap;

use serde::Deserialize;

/// DynamoDB reads are billed per 4 KB, writes per 1 KB, each rounded up.
const READ_BLOCK: u64 = 4096;
const WRITE_BLOCK: u64 = 1024;

/// Read request units for `bytes` read in one unit of rounding (an item of
/// a GetItem or BatchGetItem, or all the items of a Query page).
pub fn read_units(bytes: u64, mode: ReadMode) -> f64 {
    let blocks = bytes.div_ceil(READ_BLOCK).max(1) as f64;
    match mode {
        ReadMode::Eventual => blocks / 2.0,
        ReadMode::Strong => blocks,
        ReadMode::Transactional => blocks * 2.0,
    }
}

/// Write request units for one item of `bytes` (the larger of before and
/// after), doubled in a transaction.
pub fn write_units(bytes: u64, transactional: bool) -> f64 {
    let blocks = bytes.div_ceil(WRITE_BLOCK).max(1) as f64;
    if transactional { blocks * 2.0 } else { blocks }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    Strong,
    Eventual,
    Transactional,
}

/// What the emulator's meter recorded.
#[derive(Debug, Default, Deserialize)]
pub struct Meter {
    pub dynamodb: Vec<DynamoRequest>,
    /// "service Operation (caller)" -> requests.
    pub requests: BTreeMap<String, u64>,
    /// What each table stores now, as DynamoDB bills storage.
    #[serde(default, rename = "tableBytes")]
    pub table_bytes: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamoRequest {
    pub op: String,
    pub reads: Vec<Read>,
    pub writes: Vec<Write>,
    pub index_writes: Vec<IndexWrite>,
}

#[derive(Debug, Deserialize)]
pub struct Read {
    pub bytes: u64,
    pub mode: ReadMode,
}

#[derive(Debug, Deserialize)]
pub struct Write {
    pub bytes: u64,
    pub tx: bool,
}

#[derive(Debug, Deserialize)]
pub struct IndexWrite {
    pub index: String,
    pub bytes: u64,
}

impl DynamoRequest {
    pub fn read_units(&self) -> f64 {
        let read: f64 = self.reads.iter().map(|r| read_units(r.bytes, r.mode)).sum();
        // A read that found nothing still costs the least a read costs.
        if self.reads.is_empty() && is_read(&self.op) {
            return read_units(0, ReadMode::Eventual);
        }
        read
    }

    /// The table's writes and its indexes' (an index entry is a standard
    /// write of its projected size, in a transaction too).
    pub fn write_units(&self) -> f64 {
        let table: f64 = self.writes.iter().map(|w| write_units(w.bytes, w.tx)).sum();
        let indexes: f64 = self
            .index_writes
            .iter()
            .map(|w| write_units(w.bytes, false))
            .sum();
        table + indexes
    }
}

fn is_read(op: &str) -> bool {
    matches!(op, "GetItem" | "BatchGetItem" | "Query" | "Scan")
}

impl Meter {
    pub fn read_units(&self) -> f64 {
        self.dynamodb.iter().map(DynamoRequest::read_units).sum()
    }

    pub fn write_units(&self) -> f64 {
        self.dynamodb.iter().map(DynamoRequest::write_units).sum()
    }

    /// Requests of one service whose operation starts with `operation`,
    /// by every caller (`""`: all of the service's).
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        let prefix = format!("{service} {operation}");
        self.requests
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The price list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    pub as_of: String,
    pub region: String,
    pub prices: BTreeMap<String, Price>,
    pub free_tier: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
pub struct Price {
    pub usd: f64,
    pub unit: String,
    pub source: String,
}

impl Prices {
    /// The project's price list.
    pub fn load() -> Self {
        Self::load_named("aws-us-east-1")
    }

    /// `infra/pricing/NAME.yaml`: `aws-us-east-1`, and for the comparison
    /// `firebase` and `amplify`.
    pub fn load_named(name: &str) -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../infra/pricing/{name}.yaml"));
        Self::parse(&std::fs::read_to_string(&path).expect("the price list"))
    }

    pub fn parse(text: &str) -> Self {
        serde_yaml::from_str(text).expect("the price list parses")
    }
}

/// One user's month: a quantity of each priced unit (the price list's
/// names).
pub type Quantities = BTreeMap<&'static str, f64>;

/// One line of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    pub quantity: f64,
    pub unit_usd: f64,
    pub usd: f64,
    /// What the monthly free tier takes off this line.
    pub free_usd: f64,
}

/// The bill of `users` monthly active users who each use `per_user`.
pub fn bill(prices: &Prices, per_user: &Quantities, users: u64) -> Vec<Line> {
    per_user
        .iter()
        .map(|(item, quantity)| {
            let price = prices
                .prices
                .get(*item)
                .unwrap_or_else(|| panic!("no price for {item}"));
            let quantity = quantity * users as f64;
            let free = prices.free_tier.get(*item).copied().unwrap_or(0.0);
            Line {
                item: item.to_string(),
                quantity,
                unit_usd: price.usd,
                usd: quantity * price.usd,
                free_usd: quantity.min(free) * price.usd,
            }
        })
        .collect()
}

/// The line that costs most, named with its share of the list price.
pub fn largest(lines: &[Line]) -> String {
    let (gross, _) = total(lines);
    lines
        .iter()
        .max_by(|a, b| a.usd.total_cmp(&b.usd))
        .map(|l| format!("{} ({:.0}%)", l.item, 100.0 * l.usd / gross))
        .unwrap_or_default()
}

pub fn total(lines: &[Line]) -> (f64, f64) {
    let usd: f64 = lines.iter().map(|l| l.usd).sum();
    let free: f64 = lines.iter().map(|l| l.free_usd).sum();
    (usd, usd - free)
}

/// A user's month in operations any backend has, counted while the
/// workload ran: what the comparison maps to Firebase's and Amplify's units.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    /// Times a device opened the data (a session's pull, a follower's).
    pub pulls: f64,
    /// Records written (one mutation each).
    pub edits: f64,
    /// Records a device holds: what a listener re-attached after 30
    /// minutes reads again on Firestore.
    pub records_held: f64,
    /// Bytes the user's records take in the table.
    pub record_bytes: f64,
    pub photos: f64,
    /// Objects made per photo (variants).
    pub variants_per_photo: f64,
    /// Bytes stored per photo, variants, and the original's.
    pub variant_bytes_per_photo: f64,
    pub original_bytes_per_photo: f64,
    /// Variant downloads and their bytes.
    pub views: f64,
    pub bytes_viewed: f64,
    /// Pushes delivered to devices.
    pub pushes: f64,
    pub live_minutes: f64,
    /// Modelled Lambda time of one resize, and its memory.
    pub resize_seconds: f64,
    pub resize_gb: f64,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The same month on Firebase: each edit one Firestore write; each time a
/// device opens the data its listener re-reads every document (Firestore
/// bills a listener re-attached after 30 minutes as a new query); photos
/// in Cloud Storage with the original kept (the Resize Images extension's
/// default), made by a function that also fans out each edit's FCM push
/// (FCM itself is free); authentication free up to 50,000 MAU.
pub fn firebase_quantities(ops: &Operations) -> Quantities {
    // Cloud Functions bill per started 100 ms; 1st gen: 256 MB is 0.4 GHz,
    // 1 GB 1.4 GHz.
    let resize_billed = (ops.resize_seconds * 10.0).ceil() / 10.0;
    let push_billed = 0.1;
    Quantities::from([
        ("firestoreWrite", ops.edits),
        ("firestoreRead", ops.pulls * ops.records_held.max(1.0)),
        ("firestoreStorageGib", ops.record_bytes / GIB),
        (
            "storageGbMonth",
            ops.photos * (ops.variant_bytes_per_photo + ops.original_bytes_per_photo) / GIB,
        ),
        ("storageClassA", ops.photos * (1.0 + ops.variants_per_photo)),
        ("storageClassB", ops.views + ops.photos),
        ("egressGb", ops.bytes_viewed / GIB),
        ("functionsInvocation", ops.edits + ops.photos),
        (
            "functionsGbSecond",
            ops.photos * resize_billed * ops.resize_gb + ops.edits * push_billed * 0.25,
        ),
        (
            "functionsGhzSecond",
            ops.photos * resize_billed * 1.4 + ops.edits * push_billed * 0.4,
        ),
        ("authMau", 1.0),
    ])
}

/// The same month on Amplify Gen 2 (AppSync over DynamoDB). Gen 2 has no
/// offline sync of its own (DataStore stayed in Gen 1), so the app is
/// taken to do what ours does with its API: each edit a mutation writing
/// the model item and two index entries, by owner and by `updatedAt` for
/// the delta query (3 write units for items under 1 KB); each pull a list
/// query by `updatedAt` (half a read unit, eventually consistent);
/// live-channel minutes as subscription minutes; photos in S3 served from
/// the bucket (no CDN), variants made by a resize Lambda as ours.
pub fn amplify_quantities(ops: &Operations) -> Quantities {
    Quantities::from([
        ("appsyncOperation", ops.edits + ops.pulls),
        ("appsyncConnectionMinute", ops.live_minutes),
        ("dynamodbWriteRequestUnit", ops.edits * 3.0),
        ("dynamodbReadRequestUnit", ops.pulls * 0.5),
        (
            "s3StorageGbMonth",
            ops.photos * ops.variant_bytes_per_photo / GIB,
        ),
        ("s3PutRequest", ops.photos * (1.0 + ops.variants_per_photo)),
        ("s3GetRequest", ops.views + ops.photos),
        ("s3TransferOutGb", ops.bytes_viewed / GIB),
        ("lambdaRequest", ops.photos),
        (
            "lambdaArmGbSecond",
            ops.photos * ops.resize_seconds * ops.resize_gb,
        ),
        ("cognitoEssentialsMau", 1.0),
        ("snsMobilePush", ops.pushes),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of DynamoDB's pricing page ("Read capacity unit",
    // "Write capacity unit"), which on-demand request units follow.
    #[test]
    fn reads_are_billed_per_4_kb_halved_when_eventual_doubled_in_transactions() {
        assert_eq!(read_units(8 * 1024, ReadMode::Strong), 2.0);
        assert_eq!(read_units(8 * 1024, ReadMode::Eventual), 1.0);
        assert_eq!(read_units(8 * 1024, ReadMode::Transactional), 4.0);
        // An item up to 4 KB is one unit; a byte more is two.
        assert_eq!(read_units(4096, ReadMode::Strong), 1.0);
        assert_eq!(read_units(4097, ReadMode::Strong), 2.0);
        // A read that finds nothing costs the least a read costs.
        assert_eq!(read_units(0, ReadMode::Eventual), 0.5);
    }

    #[test]
    fn writes_are_billed_per_1_kb_doubled_in_transactions() {
        assert_eq!(write_units(1024, false), 1.0);
        assert_eq!(write_units(3 * 1024, false), 3.0);
        assert_eq!(write_units(3 * 1024, true), 6.0);
        assert_eq!(write_units(1, false), 1.0);
        assert_eq!(write_units(1025, false), 2.0);
    }

    /// "Query ... the total size of all items returned, rounded up to the
    /// next 4 KB" against BatchGetItem's per item rounding: ten items of
    /// 1.5 KB are 4 units by Query and 10 by BatchGetItem.
    #[test]
    fn a_query_rounds_its_total_once_a_batch_each_item() {
        let item = 1536;
        let query: Meter = serde_json::from_value(serde_json::json!({
            "dynamodb": [{"op": "Query", "reads": [{"bytes": 10 * item, "mode": "strong", "per": "request"}],
                          "writes": [], "indexWrites": []}],
            "requests": {}
        }))
        .unwrap();
        assert_eq!(query.read_units(), 4.0);
        let reads: Vec<_> = (0..10)
            .map(|_| serde_json::json!({"bytes": item, "mode": "strong", "per": "item"}))
            .collect();
        let batch: Meter = serde_json::from_value(serde_json::json!({
            "dynamodb": [{"op": "BatchGetItem", "reads": reads, "writes": [], "indexWrites": []}],
            "requests": {}
        }))
        .unwrap();
        assert_eq!(batch.read_units(), 10.0);
    }

    #[test]
    fn index_entries_are_writes_of_their_own() {
        let put: DynamoRequest = serde_json::from_value(serde_json::json!({
            "op": "TransactWriteItems",
            "reads": [],
            "writes": [{"bytes": 1500, "tx": true}],
            "indexWrites": [{"index": "Feed", "bytes": 1500}],
        }))
        .unwrap();
        // 2 KB in a transaction (4) and its index entry (2).
        assert_eq!(put.write_units(), 6.0);
    }

    #[test]
    fn the_comparison_maps_each_operation_to_the_others_units_at_their_prices() {
        let ops = Operations {
            pulls: 60.0,
            edits: 180.0,
            records_held: 40.0,
            photos: 2.0,
            variants_per_photo: 8.0,
            variant_bytes_per_photo: 1000.0,
            original_bytes_per_photo: 3000.0,
            views: 20.0,
            resize_seconds: 0.45,
            resize_gb: 1.0,
            live_minutes: 300.0,
            ..Operations::default()
        };
        let firebase = firebase_quantities(&ops);
        assert_eq!(firebase["firestoreRead"], 2400.0);
        assert_eq!(firebase["firestoreWrite"], 180.0);
        assert_eq!(firebase["storageClassA"], 18.0);
        assert!((firebase["functionsGbSecond"] - (2.0 * 0.5 + 180.0 * 0.025)).abs() < 1e-9);
        let amplify = amplify_quantities(&ops);
        assert_eq!(amplify["appsyncOperation"], 240.0);
        assert_eq!(amplify["dynamodbWriteRequestUnit"], 540.0);
        // Every quantity has a price in its provider's list.
        for (name, quantities) in [("firebase", firebase), ("amplify", amplify)] {
            let prices = Prices::load_named(name);
            for item in quantities.keys() {
                assert!(prices.prices.contains_key(*item), "{name}: {item}");
            }
            for (item, price) in &prices.prices {
                assert!(price.source.starts_with("https://"), "{name}: {item}");
            }
        }
    }

    #[test]
    fn every_price_names_its_source_and_the_free_tier_comes_off_separately() {
        let prices = Prices::load();
        assert_eq!(prices.region, "us-east-1");
        for (name, price) in &prices.prices {
            assert!(price.usd > 0.0, "{name}");
            assert!(
                price.source.starts_with("https://aws.amazon.com/"),
                "{name}"
            );
            assert!(!price.unit.is_empty(), "{name}");
        }
        for name in prices.free_tier.keys() {
            assert!(prices.prices.contains_key(name), "free tier of {name}");
        }
        let per_user = Quantities::from([("lambdaRequest", 300.0), ("cognitoEssentialsMau", 1.0)]);
        let lines = bill(&prices, &per_user, 10_000);
        let requests = lines.iter().find(|l| l.item == "lambdaRequest").unwrap();
        assert_eq!(requests.quantity, 3_000_000.0);
        assert!((requests.usd - 0.6).abs() < 1e-9);
        assert!((requests.free_usd - 0.2).abs() < 1e-9);
        // 10,000 users are all inside Cognito's free 10,000.
        let (usd, after_free) = total(&lines);
        assert!((usd - (0.6 + 150.0)).abs() < 1e-6);
        assert!((after_free - 0.4).abs() < 1e-6);
    }
}
