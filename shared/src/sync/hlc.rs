//! Hybrid logical clock stamps as the wire carries them:
//! `<15-digit unix millis>-<5-digit counter>-<client id>`. Fixed widths make
//! the string order the causal order, so stamps compare as strings.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hlc {
    pub millis: u64,
    pub counter: u32,
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hlc must look like 000001700000000-00000-<clientId>: {0}")]
pub struct HlcError(&'static str);

pub const MAX_MILLIS: u64 = 999_999_999_999_999;
pub const MAX_COUNTER: u32 = 99_999;

/// Client ids (and so hlc nodes): 1 to 64 of `[A-Za-z0-9_.:-]`.
pub fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl Hlc {
    pub fn new(millis: u64, counter: u32, node: impl Into<String>) -> Self {
        Self {
            millis,
            counter,
            node: node.into(),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, HlcError> {
        let mut parts = raw.splitn(3, '-');
        let millis = parts.next().ok_or(HlcError("empty"))?;
        let counter = parts.next().ok_or(HlcError("no counter"))?;
        let node = parts.next().ok_or(HlcError("no client id"))?;
        if millis.len() != 15 || !millis.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HlcError("millis must be 15 digits"));
        }
        if counter.len() != 5 || !counter.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HlcError("counter must be 5 digits"));
        }
        if !valid_client_id(node) {
            return Err(HlcError("client id must be 1-64 of [A-Za-z0-9_.:-]"));
        }
        Ok(Self {
            millis: millis.parse().map_err(|_| HlcError("millis"))?,
            counter: counter.parse().map_err(|_| HlcError("counter"))?,
            node: node.to_string(),
        })
    }
}

/// A replica's hybrid logical clock: stamps that follow the wall clock when
/// it moves, and still order after everything the replica has seen when it
/// does not (a phone whose clock is slow orders its new edits after what it
/// pulled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    last: Hlc,
}

impl Clock {
    /// A clock for `node` that has issued or seen `last` (None: nothing yet).
    pub fn new(node: impl Into<String>, last: Option<&Hlc>) -> Self {
        let node = node.into();
        let last = match last {
            Some(hlc) => Hlc::new(hlc.millis, hlc.counter, node),
            None => Hlc::new(0, 0, node),
        };
        Self { last }
    }

    /// The next stamp, given the wall clock in milliseconds: later than
    /// every stamp issued or observed before.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let wall_ms = wall_ms.min(MAX_MILLIS);
        if wall_ms > self.last.millis {
            self.last.millis = wall_ms;
            self.last.counter = 0;
        } else if self.last.counter < MAX_COUNTER {
            self.last.counter += 1;
        } else {
            // The counter is spent: borrow a millisecond from the future.
            self.last.millis = (self.last.millis + 1).min(MAX_MILLIS);
            self.last.counter = 0;
        }
        self.last.clone()
    }

    /// Takes in a stamp from elsewhere, so the next tick orders after it.
    pub fn observe(&mut self, remote: &Hlc) {
        if (remote.millis, remote.counter) > (self.last.millis, self.last.counter) {
            self.last.millis = remote.millis;
            self.last.counter = remote.counter;
        }
    }

    /// The last stamp issued or observed (to persist the clock).
    pub fn last(&self) -> &Hlc {
        &self.last
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:015}-{:05}-{}", self.millis, self.counter, self.node)
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.millis, self.counter, self.node.as_bytes()).cmp(&(
            other.millis,
            other.counter,
            other.node.as_bytes(),
        ))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Hlc::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn any_hlc() -> impl Strategy<Value = Hlc> {
        (0..=MAX_MILLIS, 0..=MAX_COUNTER, "[A-Za-z0-9_.:-]{1,12}")
            .prop_map(|(millis, counter, node)| Hlc::new(millis, counter, node))
    }

    #[test]
    fn formats_with_fixed_widths() {
        let hlc = Hlc::new(1_700_000_000_000, 7, "phone-1");
        assert_eq!(hlc.to_string(), "001700000000000-00007-phone-1");
        assert_eq!(Hlc::parse(&hlc.to_string()).unwrap(), hlc);
    }

    #[test]
    fn refuses_malformed_stamps() {
        for raw in [
            "",
            "1700000000000-00007-a",
            "001700000000000-7-a",
            "001700000000000-00007-",
            "001700000000000-00007",
            "00170000000000x-00007-a",
            "001700000000000-00007-a b",
            "001700000000000-00007-a#b",
        ] {
            assert!(Hlc::parse(raw).is_err(), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn string_order_is_clock_order(a in any_hlc(), b in any_hlc()) {
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        }

        #[test]
        fn parse_inverts_display(a in any_hlc()) {
            prop_assert_eq!(Hlc::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn order_is_total_and_antisymmetric(a in any_hlc(), b in any_hlc(), c in any_hlc()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        }

        #[test]
        fn parse_never_panics(raw in any::<String>()) {
            let _ = Hlc::parse(&raw);
        }

        /// Whatever the wall clock does, a tick orders after every stamp
        /// issued or observed before it.
        #[test]
        fn ticks_order_after_everything_seen(
            steps in proptest::collection::vec((any::<bool>(), 0u64..2_000, any_hlc()), 1..60)
        ) {
            let mut clock = Clock::new("phone", None);
            let mut seen: Option<Hlc> = None;
            for (observe, wall, remote) in steps {
                if observe {
                    clock.observe(&remote);
                    let remote_order = (remote.millis, remote.counter);
                    let max = seen.as_ref().map_or(remote_order, |s| remote_order.max((s.millis, s.counter)));
                    seen = Some(Hlc::new(max.0, max.1, "x"));
                } else {
                    let stamp = clock.tick(1_000_000 + wall);
                    if let Some(before) = &seen {
                        prop_assert!((stamp.millis, stamp.counter) > (before.millis, before.counter));
                    }
                    prop_assert_eq!(&stamp.node, "phone");
                    seen = Some(stamp);
                }
            }
        }
    }
}
