//! What a push may carry: the envelope checked whole, each mutation's
//! content checked alone (a [`Rejection`] rather than an error).

use serde_json::Value;

use super::hlc::Hlc;
use super::merge::Op;
use super::{Mutation, RecordKey, Rejection, WireMutation, size};
use crate::model::ids::ClientId;
use crate::{Code, Error};

/// Bounds on what one push may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_mutations: usize,
    pub max_fields: usize,
    /// Bytes of one field's JSON value.
    pub max_value_bytes: usize,
    /// How far in the future a stamp may be, in milliseconds.
    pub max_clock_skew_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_mutations: 1000,
            max_fields: 64,
            max_value_bytes: 4 * 1024,
            max_clock_skew_ms: 5 * 60 * 1000,
        }
    }
}

fn valid_collection(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// 1-256 characters, as documented, and at most 900 bytes: the record's
/// sort key (`REC#<collection>#<id>`) must fit DynamoDB's 1,024.
fn valid_record_id(id: &str) -> bool {
    (1..=256).contains(&id.chars().count()) && id.len() <= 900 && !id.chars().any(char::is_control)
}

/// Checks a push. A malformed envelope is an error for the whole push
/// (client id, ids consecutive, shapes, stamps): the app library never
/// sends one. A well-formed mutation whose content the store cannot hold
/// is marked with its [`Rejection`] instead, so the rest goes through.
pub fn validate(
    client_id: &ClientId,
    mutations: Vec<WireMutation>,
    limits: &Limits,
    now_ms: u64,
) -> Result<Vec<Mutation>, Error> {
    if mutations.len() > limits.max_mutations {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("at most {} mutations per push", limits.max_mutations),
        ));
    }
    let mut out = Vec::with_capacity(mutations.len());
    for (index, wire) in mutations.into_iter().enumerate() {
        let at = |what: String| Error::invalid(format!("mutations[{index}]: {what}"));
        if wire.id == 0 {
            return Err(at("id starts at 1".into()));
        }
        if let Some(previous) = out.last().map(|m: &Mutation| m.id)
            && wire.id != previous + 1
        {
            return Err(at(format!(
                "ids must be consecutive: {} after {previous}",
                wire.id
            )));
        }
        if !valid_collection(&wire.collection) {
            return Err(at("collection must be 1-64 of [A-Za-z0-9_.-]".into()));
        }
        if !valid_record_id(&wire.record_id) {
            return Err(at(
                "recordId must be 1-256 printable characters, at most 900 bytes in UTF-8".into(),
            ));
        }
        let hlc = Hlc::parse(&wire.hlc).map_err(|err| at(err.to_string()))?;
        if hlc.node != client_id.as_str() {
            return Err(at("the hlc's client id must be the pushing clientId".into()));
        }
        if hlc.millis > now_ms.saturating_add(limits.max_clock_skew_ms) {
            return Err(Error::new(
                Code::ClockSkew,
                format!(
                    "mutations[{index}]: the hlc is more than {} s ahead of the server clock",
                    limits.max_clock_skew_ms / 1000
                ),
            ));
        }
        let mut rejection = None;
        let op = match (wire.op.as_str(), wire.fields) {
            ("put", Some(fields)) => {
                if fields.is_empty() {
                    return Err(at("put needs at least one field".into()));
                }
                if fields
                    .keys()
                    .any(|name| name.is_empty() || name.len() > 128)
                {
                    return Err(at("field names are 1-128 bytes".into()));
                }
                rejection = refusal(&fields, limits);
                Op::Put(fields.into_iter().collect())
            }
            ("put", None) => return Err(at("put needs fields".into())),
            ("delete", _) => Op::Delete,
            (other, _) => return Err(at(format!("op must be put or delete, not {other:?}"))),
        };
        out.push(Mutation {
            id: wire.id,
            key: RecordKey {
                space: wire.space_id,
                collection: wire.collection,
                record_id: wire.record_id,
            },
            op,
            hlc,
            rejection,
        });
    }
    Ok(out)
}

/// Why a put's fields cannot be stored, if they cannot.
fn refusal(fields: &serde_json::Map<String, Value>, limits: &Limits) -> Option<Rejection> {
    if fields.len() > limits.max_fields {
        return Some(Rejection::TooManyFields);
    }
    if fields
        .values()
        .any(|v| size::depth(v) > size::MAX_VALUE_DEPTH)
    {
        return Some(Rejection::ValueTooDeep);
    }
    if fields
        .values()
        .any(|v| v.to_string().len() > limits.max_value_bytes)
    {
        return Some(Rejection::ValueTooLarge);
    }
    None
}
