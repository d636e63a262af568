//! The change feed's cursor rule, and the property it must hold: after a
//! push is acknowledged, every later pull from any cursor at or below that
//! push's versions returns it.
//!
//! The store reads each page with `ConsistentRead` on the `Feed` index and
//! only up to the user's version counter, which moves in the same
//! transaction as the records: a page holds every committed version in
//! `(cursor, last of page]`, none missing. A cursor that moves to the last
//! version of the page therefore never passes a change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Change;
use crate::{Code, Error};

/// The cursor after a page read from `after`: the last version it holds,
/// or `after` when it is empty.
pub fn next_cursor(after: u64, page: &[Change]) -> u64 {
    page.last().map_or(after, |change| change.version)
}

/// Where a client stands: the version of its own feed, and the generation
/// of the answer that named its positions in spaces (kept on the server,
/// see `spaces`). Both fit a cursor whatever the number of spaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullCursor {
    pub own: u64,
    pub generation: u64,
}

/// Cursors are opaque to clients. `v3` is the own feed's version and the
/// generation of the space positions; `v2` (before spaces) was the own
/// version alone and reads as generation 0, so such a client is sent
/// its spaces whole. A `v1` cursor counted the feed before the migration
/// (`migrate-sync-feed`), whose versions mean nothing now: the client is
/// told to pull from the start.
pub fn encode_cursor(cursor: PullCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("v3:{}:{}", cursor.own, cursor.generation))
}

pub fn decode_cursor(cursor: &str) -> Result<PullCursor, Error> {
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    if let Some((own, generation)) = text.strip_prefix("v3:").and_then(|v| v.split_once(':'))
        && let (Ok(own), Ok(generation)) = (own.parse(), generation.parse())
    {
        return Ok(PullCursor { own, generation });
    }
    if let Some(own) = text.strip_prefix("v2:").and_then(|v| v.parse().ok()) {
        return Ok(PullCursor { own, generation: 0 });
    }
    if text
        .strip_prefix("v1:")
        .is_some_and(|v| v.parse::<u64>().is_ok())
    {
        return Err(Error::new(
            Code::CursorExpired,
            "this cursor predates the current change feed; pull without a cursor to start over",
        ));
    }
    Err(Error::invalid(
        "cursor is not valid; pull without one to start over",
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::model::ids::{ClientId, UserId};
    use crate::sync::WireMutation;
    use crate::sync::memory::MemoryServer;

    fn id(raw: &str) -> ClientId {
        ClientId::parse(raw).unwrap()
    }

    fn me() -> UserId {
        UserId::parse("me").unwrap()
    }

    const NOW: u64 = 1_800_000_000_000;

    /// The server's rules in memory, with one device pushing `edits`
    /// (record, value; 0 deletes) in acknowledged pushes.
    #[derive(Default)]
    struct Server {
        server: MemoryServer,
        next_id: u64,
    }

    impl Server {
        fn push(&mut self, edits: &[(u8, u8)]) {
            let wires = edits
                .iter()
                .map(|(record, value)| {
                    self.next_id += 1;
                    WireMutation {
                        id: self.next_id,
                        space_id: None,
                        collection: if record % 2 == 0 { "notes" } else { "todos" }.into(),
                        record_id: format!("r{record}"),
                        op: if *value == 0 { "delete" } else { "put" }.into(),
                        fields: (*value != 0)
                            .then(|| json!({"v": value}).as_object().unwrap().clone()),
                        hlc: crate::sync::hlc::Hlc::new(NOW + self.next_id, 0, "phone").to_string(),
                    }
                })
                .collect();
            self.server
                .push_own(&me(), &id("phone"), wires, NOW + 1_000_000)
                .unwrap();
        }

        fn page(&self, after: u64, limit: usize) -> (Vec<Change>, bool) {
            let feed = self.server.pull_own(&me(), &id("tablet"), after, limit);
            (feed.changes, feed.has_more)
        }
    }

    /// A device pulling: its cursor and what it holds.
    #[derive(Default)]
    struct Device {
        cursor: u64,
        replica: BTreeMap<(String, String), Change>,
    }

    impl Device {
        fn pull_page(&mut self, server: &Server, limit: usize) -> bool {
            let (page, more) = server.page(self.cursor, limit);
            self.cursor = next_cursor(self.cursor, &page);
            for change in page {
                self.replica.insert(
                    (change.collection.clone(), change.record_id.clone()),
                    change,
                );
            }
            more
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Push(Vec<(u8, u8)>),
        /// A pull that stops after this many pages (an app sent to the
        /// background mid-sync), with this page size.
        Pull {
            pages: usize,
            limit: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            prop::collection::vec((0u8..12, 0u8..4), 1..20).prop_map(Step::Push),
            (1usize..4, 1usize..6).prop_map(|(pages, limit)| Step::Pull { pages, limit }),
        ]
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for (own, generation) in [(0, 0), (1, 7), (42, 0), (u64::MAX, u64::MAX)] {
            let cursor = PullCursor { own, generation };
            assert_eq!(decode_cursor(&encode_cursor(cursor)).unwrap(), cursor);
        }
        let before_spaces = URL_SAFE_NO_PAD.encode("v2:42");
        assert_eq!(
            decode_cursor(&before_spaces).unwrap(),
            PullCursor {
                own: 42,
                generation: 0
            }
        );
        for bad in ["", "abc", "djI6eA", "!!"] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().code,
                Code::InvalidRequest,
                "{bad}"
            );
        }
        let before_the_feed = URL_SAFE_NO_PAD.encode("v1:42");
        assert_eq!(
            decode_cursor(&before_the_feed).unwrap_err().code,
            Code::CursorExpired
        );
    }

    proptest! {
        /// After any interleaving of pushes and partial pulls: every record
        /// at or below the device's cursor is exactly as the server holds
        /// it (the cursor passed no change), and pulling to the end
        /// converges the device with the server.
        #[test]
        fn the_cursor_never_passes_a_change(steps in prop::collection::vec(step(), 1..40)) {
            let mut server = Server::default();
            let mut device = Device::default();
            for step in steps {
                match step {
                    Step::Push(edits) => server.push(&edits),
                    Step::Pull { pages, limit } => {
                        for _ in 0..pages {
                            if !device.pull_page(&server, limit) {
                                break;
                            }
                        }
                    }
                }
                for (key, (state, version)) in server.server.records(&me()) {
                    if version <= device.cursor {
                        let held = device.replica.get(&(key.collection.clone(), key.record_id.clone()));
                        prop_assert!(held.is_some(), "{key:?} at version {version} was skipped");
                        prop_assert_eq!(&held.unwrap().fields, &state.values());
                    }
                }
            }
            while device.pull_page(&server, 3) {}
            // The record changed last holds the counter's version.
            prop_assert_eq!(device.cursor, server.server.counter(&me()));
            for (key, (state, _)) in server.server.records(&me()) {
                let held = &device.replica[&(key.collection.clone(), key.record_id.clone())];
                prop_assert_eq!(held.deleted, state.is_deleted());
                prop_assert_eq!(&held.fields, &state.values());
            }
        }
    }
}
