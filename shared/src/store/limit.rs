//! Rate limit counters: one item per subject, policy and window, counted
//! with one conditional `UpdateItem` (one write unit), so a limit holds
//! across every container at once.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};

use super::{EXPIRES_AT, Table, item_key, number};
use crate::keys::{ItemKey, RateSubject};
use crate::limits::{Decision, Policy};
use crate::{Error, adapters::aws};

impl Table {
    /// Counts one request of `subject` against `policy` at `now` (Unix
    /// seconds). A refused request is not counted: a client that keeps
    /// retrying after its window ends gets in.
    pub async fn take(
        &self,
        subject: &RateSubject,
        policy: &Policy,
        now: i64,
    ) -> Result<Decision, Error> {
        let (window, reset) = policy.window_at(now);
        let key = ItemKey::Rate {
            subject: subject.clone(),
            policy: policy.name.to_string(),
            window,
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&key)))
            .update_expression("ADD #n :one SET #expires = if_not_exists(#expires, :expires)")
            .condition_expression("attribute_not_exists(#n) OR #n < :quota")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":quota", number(policy.quota))
            .expression_attribute_values(":expires", number(window + i64::from(policy.window) + 60))
            .return_values(ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.usage
                    .add(output.consumed_capacity().and_then(|c| c.capacity_units()));
                let count = output
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("n"))
                    .and_then(|n| match n {
                        AttributeValue::N(n) => n.parse::<u32>().ok(),
                        _ => None,
                    })
                    .unwrap_or(1);
                Ok(policy.decide(count, reset))
            }
            Err(err) if aws::error_code(&err) == Some("ConditionalCheckFailedException") => {
                // A failed condition is billed as a write too.
                self.usage.add(Some(1.0));
                Ok(policy.decide(policy.quota.saturating_add(1), reset))
            }
            Err(err) => Err(aws::classify(err)),
        }
    }
}
