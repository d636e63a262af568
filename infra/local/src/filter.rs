//! Lambda's event filtering (`FilterCriteria` of an event source mapping),
//! for the patterns the template uses: a record that matches none of the
//! filters is dropped before the function is invoked, as Lambda drops it
//! (and does not bill it). An operator this does not know is refused when
//! the template is read, never ignored: a filter that silently let
//! everything through would hide what AWS would drop.

use anyhow::{Result, bail};
use serde_json::Value;

/// The filters of one mapping; a record passes if any filter matches it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    patterns: Vec<Value>,
}

impl EventFilter {
    /// From the `Pattern` strings of `FilterCriteria.Filters`.
    pub fn parse(patterns: &[String]) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|raw| {
                let pattern: Value = serde_json::from_str(raw).map_err(|err| {
                    anyhow::anyhow!("a filter pattern is not JSON ({err}): {raw}")
                })?;
                check(&pattern)?;
                Ok(pattern)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { patterns })
    }

    /// Whether `record` (as the function would receive it) is delivered.
    pub fn admits(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| matches(p, Some(record)))
    }
}

const OPERATORS: [&str; 3] = ["prefix", "anything-but", "exists"];

fn check(pattern: &Value) -> Result<()> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(check),
        Value::Array(matchers) => matchers.iter().try_for_each(|matcher| match matcher {
            Value::Object(op) => match op.keys().next().map(String::as_str) {
                Some(name) if op.len() == 1 && OPERATORS.contains(&name) => Ok(()),
                _ => bail!("a filter operator the local stack does not implement: {matcher}"),
            },
            Value::Array(_) => bail!("a filter matcher cannot be a list: {matcher}"),
            _ => Ok(()),
        }),
        other => bail!("a filter pattern's values are objects or lists, not {other}"),
    }
}

/// Whether `value` (None: absent) matches `pattern`.
fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, inner)| matches(inner, value.and_then(|v| v.get(key)))),
        Value::Array(matchers) => matchers.iter().any(|m| matcher(m, value)),
        _ => false,
    }
}

fn matcher(matcher: &Value, value: Option<&Value>) -> bool {
    let Value::Object(op) = matcher else {
        return value == Some(matcher);
    };
    match (op.get("prefix"), op.get("anything-but"), op.get("exists")) {
        (Some(Value::String(prefix)), _, _) => value
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(prefix.as_str())),
        (_, Some(excluded), _) => value.is_some_and(|v| match excluded {
            Value::Array(list) => !list.contains(v),
            Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                Some(prefix) => v.as_str().is_some_and(|s| !s.starts_with(prefix)),
                None => false,
            },
            literal => v != literal,
        }),
        (_, _, Some(Value::Bool(exists))) => value.is_some() == *exists,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event: &str, sk: &str) -> Value {
        json!({"eventName": event, "dynamodb": {"Keys": {"PK": {"S": "USER#u"}, "SK": {"S": sk}}}})
    }

    #[test]
    fn a_record_passes_if_any_filter_matches_it() {
        let filter = EventFilter::parse(&[
            r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"SK": {"S": [{"prefix": "REC#"}]}}}}"#.into(),
            r#"{"dynamodb": {"Keys": {"SK": {"S": ["PRESENCE"]}}}}"#.into(),
        ])
        .unwrap();
        assert!(filter.admits(&record("MODIFY", "REC#notes#n1")));
        assert!(filter.admits(&record("REMOVE", "PRESENCE")));
        assert!(!filter.admits(&record("REMOVE", "REC#notes#n1")));
        assert!(!filter.admits(&record("MODIFY", "CONN#abc=")));
        assert!(
            !filter.admits(&json!({"eventName": "MODIFY"})),
            "absent keys match nothing"
        );
        assert!(EventFilter::default().admits(&record("REMOVE", "CONN#abc=")));
    }

    #[test]
    fn anything_but_and_exists() {
        let filter = EventFilter::parse(&[
            r#"{"eventName": [{"anything-but": ["REMOVE"]}], "dynamodb": {"NewImage": {"status": [{"exists": true}]}, "Keys": {"SK": {"S": [{"anything-but": {"prefix": "CONN#"}}]}}}}"#.into(),
        ])
        .unwrap();
        let mut ready = record("MODIFY", "MEDIA#m1");
        ready["dynamodb"]["NewImage"] = json!({"status": {"S": "ready"}});
        assert!(filter.admits(&ready));
        let mut gone = ready.clone();
        gone["eventName"] = json!("REMOVE");
        assert!(!filter.admits(&gone));
        assert!(!filter.admits(&record("MODIFY", "MEDIA#m1")), "no status");
        let mut connection = ready;
        connection["dynamodb"]["Keys"]["SK"]["S"] = json!("CONN#x");
        assert!(!filter.admits(&connection));
    }

    #[test]
    fn what_the_local_stack_cannot_match_is_refused_not_ignored() {
        for pattern in [
            r#"{"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 0]}]}}}}"#,
            r#"{"eventName": "MODIFY"}"#,
            "not json",
        ] {
            assert!(EventFilter::parse(&[pattern.into()]).is_err(), "{pattern}");
        }
    }
}
