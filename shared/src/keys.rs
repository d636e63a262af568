//! Every key of the single table is built here and nowhere else. Every key a
//! user can touch starts with that user's `sub`: authorization is a prefix.

pub const PK: &str = "PK";
pub const SK: &str = "SK";

pub const PROFILE: &str = "PROFILE";

pub fn user(sub: &str) -> String {
    format!("USER#{sub}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_start_with_the_sub() {
        assert_eq!(user("abc"), "USER#abc");
    }
}
