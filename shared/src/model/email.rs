//! Email addresses as accounts know them: trimmed and lower-cased, so that
//! `Ann@Example.com ` and `ann@example.com` are one account.

use crate::{Code, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let email = raw.trim().to_lowercase();
        let bad = || Error::new(Code::InvalidRequest, "email is not a valid address");
        if email.is_empty() || email.len() > 254 || email.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_and_spaces() {
        assert_eq!(
            Email::parse("  Ann.Lee@Example.COM ").unwrap().as_str(),
            "ann.lee@example.com"
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for raw in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@example..com",
            "ann@.example.com",
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.code, Code::InvalidRequest, "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_is_idempotent(raw in "[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,20}\\.[A-Za-z]{2,6}") {
            let once = Email::parse(&raw).unwrap();
            let twice = Email::parse(once.as_str()).unwrap();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = Email::parse(&raw);
        }
    }
}
