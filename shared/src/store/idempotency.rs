//! Idempotency records: a claim per user, route and key, answered from the
//! store on a repeat (see [`crate::model::idempotency`] for the rules).

use super::{Stored, Table, item_key, number};
use crate::keys::ItemKey;
use crate::model::idempotency::{Claim, Decision, StoredResponse, judge};
use crate::model::ids::UserId;
use crate::{Code, Error, adapters::aws};

fn idempotency_key(user_id: &UserId, route: &str, key: &str) -> ItemKey {
    ItemKey::Idempotency {
        user: user_id.clone(),
        route: route.into(),
        key: key.into(),
    }
}

impl Table {
    /// Claims `key` for `route` or says what its first request answered.
    pub async fn claim_idempotency_key(
        &self,
        user_id: &UserId,
        route: &str,
        key: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<Decision, Error> {
        let item_id = idempotency_key(user_id, route, key);
        // Two rounds: a claim that loses to a record which then turns out to
        // be dead (it expired between the put and the read) tries once more.
        for _ in 0..2 {
            let item = Stored::item(&item_id, Claim::new(fingerprint, now), None)?;
            let claimed = aws::conditional(
                self.client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .condition_expression(
                        "attribute_not_exists(PK) OR expiresAt <= :now \
                         OR (attribute_not_exists(#response) AND leaseUntil <= :now)",
                    )
                    .expression_attribute_names("#response", "response")
                    .expression_attribute_values(":now", number(now))
                    .send()
                    .await,
            )?;
            if claimed {
                return Ok(Decision::Run);
            }
            let existing: Option<Stored<Claim>> = self.get(&item_id).await?;
            if let Some(decision) = existing.and_then(|s| judge(&s.value, fingerprint, now)) {
                return decision;
            }
        }
        Err(Error::new(
            Code::IdempotencyKeyInUse,
            "this Idempotency-Key is contended; retry in a moment",
        ))
    }

    /// Stores the first response for `key`, to be replayed for 24 hours.
    pub async fn complete_idempotency_key(
        &self,
        user_id: &UserId,
        route: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), Error> {
        let response = serde_dynamo::to_attribute_value(response).map_err(Error::internal)?;
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&idempotency_key(user_id, route, key))))
            .update_expression("SET #response = :response")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":response", response)
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Frees `key` after a failed request, so that a retry runs again.
    pub async fn release_idempotency_key(
        &self,
        user_id: &UserId,
        route: &str,
        key: &str,
    ) -> Result<(), Error> {
        // A stored response (someone else's success) is left alone.
        aws::conditional(
            self.client
                .delete_item()
                .table_name(&self.name)
                .set_key(Some(item_key(&idempotency_key(user_id, route, key))))
                .condition_expression("attribute_not_exists(#response)")
                .expression_attribute_names("#response", "response")
                .send()
                .await,
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_item_has_one_expires_at() {
        let item = Stored::item(
            &idempotency_key(&UserId::parse("u").unwrap(), "POST /uploads", "k"),
            Claim::new("f", 100),
            None,
        )
        .unwrap();
        assert_eq!(item["expiresAt"], number(100 + 24 * 3600));
        assert_eq!(item["leaseUntil"], number(115));
    }
}
