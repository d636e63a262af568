//! What DynamoDB can hold, counted by its own rules, so a push refuses a
//! mutation before the store would (a 400 KB item, 32 levels of nesting)
//! instead of failing the whole push.
//!
//! Sizes follow "Item sizes and formats" in the DynamoDB developer guide:
//! a string is its UTF-8 bytes; a number about one byte per two
//! significant digits plus one; null and booleans one byte; a list or map
//! three bytes plus one per element (a map's element also counts its
//! name's bytes).

use serde_json::Value;

use super::hlc::Hlc;
use super::merge::{RecordState, Stamped};

/// DynamoDB's item limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// What a record item holds beside its fields: keys, collection and record
/// id, versions, origin, update time and their names. Generous: the keys
/// alone are at most ~350 bytes.
pub const RECORD_OVERHEAD_BYTES: usize = 2 * 1024;

/// The most a record's fields may take, as DynamoDB counts them.
pub const MAX_RECORD_FIELDS_BYTES: usize = MAX_ITEM_BYTES - RECORD_OVERHEAD_BYTES;

/// DynamoDB accepts at most 31 maps or lists around a scalar in one
/// top-level attribute (32 levels; measured on AWS: 31 wraps pass, 32 are
/// refused). A field is stored as `fields` → name → `{v, h}`, two wraps, so
/// a value may nest 29 deep.
pub const MAX_VALUE_DEPTH: usize = 29;

/// The size of a JSON value stored as a DynamoDB attribute value.
pub fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::String(s) => s.len(),
        Value::Number(n) => number_bytes(&n.to_string()),
        Value::Array(items) => 3 + items.iter().map(|v| value_bytes(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_bytes(v) + 1)
                .sum::<usize>()
        }
    }
}

/// A number's size: one byte per two significant digits, plus one.
fn number_bytes(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// How many maps and lists nest in `value` (a scalar is 0), without
/// recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, above)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let level = above + 1;
        deepest = deepest.max(level);
        pending.extend(children.map(|child| (child, level)));
    }
    deepest
}

fn hlc_bytes(hlc: &Hlc) -> usize {
    hlc.to_string().len()
}

/// One entry of the `fields` map: its name, `{v, h}` and the element byte.
pub fn field_bytes(name: &str, field: &Stamped) -> usize {
    // {v, h}: a map of two elements.
    let stamped = 3 + (1 + value_bytes(&field.value) + 1) + (1 + hlc_bytes(&field.hlc) + 1);
    name.len() + stamped + 1
}

/// The size of a record's `fields` and `deletedAt` attributes.
pub fn record_bytes(state: &RecordState) -> usize {
    let fields = "fields".len()
        + 3
        + state
            .fields
            .iter()
            .map(|(name, field)| field_bytes(name, field))
            .sum::<usize>();
    let tombstone = state
        .deleted_at
        .as_ref()
        .map_or(0, |hlc| "deletedAt".len() + hlc_bytes(hlc));
    fields + tombstone
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_the_developer_guide() {
        assert_eq!(value_bytes(&json!("abc")), 3);
        assert_eq!(value_bytes(&json!("né")), 3, "UTF-8 bytes");
        assert_eq!(value_bytes(&json!(null)), 1);
        assert_eq!(value_bytes(&json!(true)), 1);
        // 1 significant digit: 1 + 1; 123456: 3 + 1; trailing zeros trimmed.
        assert_eq!(value_bytes(&json!(7)), 2);
        assert_eq!(value_bytes(&json!(123456)), 4);
        assert_eq!(value_bytes(&json!(1000000)), 2);
        assert_eq!(value_bytes(&json!(0)), 2);
        assert_eq!(value_bytes(&json!(-12.5)), 3);
        // Containers: 3 bytes, one per element, names count.
        assert_eq!(value_bytes(&json!([])), 3);
        assert_eq!(value_bytes(&json!(["ab", true])), 3 + 3 + 2);
        assert_eq!(value_bytes(&json!({"key": "value"})), 3 + 3 + 5 + 1);
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!({ "k": deep });
        }
        assert_eq!(depth(&deep), 200);
    }
}
