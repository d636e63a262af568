//! Every key of the single table is built here and nowhere else. Every key a
//! user can touch starts with that user's `sub`: authorization is a prefix.

pub const PK: &str = "PK";
pub const SK: &str = "SK";

pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";

pub const PROFILE: &str = "PROFILE";
/// The user's sync version counter.
pub const SYNC_VERSION: &str = "SYNCVER";

pub fn user(sub: &str) -> String {
    format!("USER#{sub}")
}

/// The partition of one collection of a user's sync records.
pub fn collection(sub: &str, collection: &str) -> String {
    format!("USER#{sub}#{collection}")
}

pub fn record(record_id: &str) -> String {
    format!("REC#{record_id}")
}

/// A media item (ids are UUIDv7: sort order is upload order).
pub fn media(media_id: &str) -> String {
    format!("MEDIA#{media_id}")
}

/// A registered phone.
pub fn device(device_id: &str) -> String {
    format!("DEVICE#{device_id}")
}

/// A client's watermark: the last mutation id applied.
pub fn client(client_id: &str) -> String {
    format!("CLIENT#{client_id}")
}

/// Marks that the ready push of `media_id` reached `device_id`: stream
/// records are redelivered, pushes must not be.
pub fn pushed(media_id: &str, device_id: &str) -> String {
    format!("PUSHED#{media_id}#{device_id}")
}

/// A stored first response for an `Idempotency-Key`, per route.
pub fn idempotency(route: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{route}#{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_start_with_the_sub() {
        assert_eq!(user("abc"), "USER#abc");
        assert!(collection("abc", "notes").starts_with(&user("abc")));
    }
}
