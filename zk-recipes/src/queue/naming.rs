//! Curator's queue node names: how each flavour of queue encodes its ordering key in the name
//! of the item node, and how consumers sort the children of the queue path.
//!
//! * plain (`DistributedQueue`): `queue-NNNNNNNNNN`, sorted as strings;
//! * priority (`DistributedPriorityQueue.priorityToString`): `queue-` + `1` for a priority
//!   `>= 0` or `0` for a negative one + the priority as 8 upper-case hex digits of its 32-bit
//!   two's complement + the sequence, sorted as strings (so -2 < -1 < 0 < 1);
//! * delay (`DistributedDelayQueue.epochToString`): `queue-|<epoch ms, %08X>|NNNNNNNNNN`,
//!   sorted by the epoch between the last two `|` (0 when it does not parse);
//! * id (`DistributedIdQueue.makeIdPath`): `queue-|<id, '/' and '|' replaced by '_'>|N`,
//!   sorted on the name without the `|<id>|` part (i.e. on the sequence).

use std::cmp::Ordering;
use std::num::IntErrorKind;
use std::time::Duration;

/// The prefix of every item node of a [`DistributedQueue`](super::DistributedQueue) and its
/// variants (Curator's `DistributedQueue.QUEUE_ITEM_NAME`).
pub const QUEUE_ITEM_NAME: &str = "queue-";

/// The prefix of the item nodes of a [`SimpleDistributedQueue`](super::SimpleDistributedQueue)
/// (Curator's and ZooKeeper's `qn-`).
pub const SIMPLE_ITEM_NAME: &str = "qn-";

/// The separator of the delay and id encodings.
const SEPARATOR: char = '|';

/// The length of a sequence suffix (`%010d`).
const SEQUENCE_LEN: usize = 10;

/// How a queue orders its items (the flavour of queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// FIFO on the sequence number.
    Plain,
    /// Priority first, then FIFO; re-list after this many items once the children changed.
    Priority { min_items_before_refresh: usize },
    /// Due time first, then FIFO; items not due are not delivered.
    Delay,
    /// FIFO on the sequence number, ignoring the id.
    Id,
}

impl Flavor {
    /// The queue items among `children` (names starting with [`QUEUE_ITEM_NAME`]), in the
    /// order consumers take them.
    pub(crate) fn sorted(self, children: Vec<String>) -> Vec<String> {
        let mut items: Vec<String> = children
            .into_iter()
            .filter(|c| {
                let ours = c.starts_with(QUEUE_ITEM_NAME);
                if !ours {
                    tracing::trace!(node = %c, "foreign node in a queue path; ignored");
                }
                ours
            })
            .collect();
        match self {
            Flavor::Plain | Flavor::Priority { .. } => items.sort(),
            Flavor::Delay => items.sort_by(|a, b| compare_delay(a, b)),
            Flavor::Id => {
                items.sort_by(|a, b| id_cleaned(a).cmp(&id_cleaned(b)).then_with(|| a.cmp(b)))
            }
        }
        items
    }

    /// How long the item `name` is still to wait at `now_ms` (ms since the Unix epoch); zero
    /// when it is due (always, except for delay queues).
    pub(crate) fn delay(self, name: &str, now_ms: u64) -> Duration {
        match self {
            Flavor::Delay => Duration::from_millis(epoch_of(name).saturating_sub(now_ms)),
            _ => Duration::ZERO,
        }
    }

    /// After how many items of one listing a changed children list makes the consumer list
    /// again (priority queues only; Curator's `minItemsBeforeRefresh`).
    pub(crate) fn refresh_after(self) -> Option<usize> {
        match self {
            Flavor::Priority {
                min_items_before_refresh,
            } => Some(min_items_before_refresh),
            _ => None,
        }
    }
}

fn compare_delay(a: &str, b: &str) -> Ordering {
    epoch_of(a).cmp(&epoch_of(b)).then_with(|| a.cmp(b))
}

/// The node name (before the sequence) of an item with `priority`.
pub(crate) fn priority_name(priority: i32) -> String {
    let sign = if priority >= 0 { '1' } else { '0' };
    // The 32-bit two's complement, as Curator's `(long) priority & 0xFFFFFFFFL`.
    format!("{QUEUE_ITEM_NAME}{sign}{:08X}", priority as u32)
}

/// The node name (before the sequence) of an item due at `epoch_ms`.
pub(crate) fn delay_name(epoch_ms: u64) -> String {
    format!("{QUEUE_ITEM_NAME}{SEPARATOR}{epoch_ms:08X}{SEPARATOR}")
}

/// The node name (before the sequence) of an item with `id` (`/` and `|` become `_`).
pub(crate) fn id_name(id: &str) -> String {
    let fixed: String = id
        .chars()
        .map(|c| if c == '/' || c == SEPARATOR { '_' } else { c })
        .collect();
    format!("{QUEUE_ITEM_NAME}{SEPARATOR}{fixed}{SEPARATOR}")
}

/// The due time (ms since the Unix epoch) encoded between the last two `|` of `name`; 0 when
/// there is none or it does not parse (Curator's `getEpoch`). Unlike Curator, which parses a
/// signed `long` (and so delivers an item due at or after 2^63 ms at once), the hex is read
/// as unsigned and a value too large for 64 bits is clamped to `u64::MAX`: such an item is
/// never due.
pub(crate) fn epoch_of(name: &str) -> u64 {
    let Some(second) = name.rfind(SEPARATOR) else {
        return 0;
    };
    let Some(first) = name.get(..second).and_then(|head| head.rfind(SEPARATOR)) else {
        return 0;
    };
    if first == 0 || second <= first + 1 {
        return 0;
    }
    // Unsigned, so a due time at or past 2^63 ms is not mistaken for 0 (due at once); a
    // larger one than fits in 64 bits is clamped to the end of time (never due).
    match name
        .get(first + 1..second)
        .map(|hex| u64::from_str_radix(hex, 16))
    {
        Some(Ok(v)) => v,
        Some(Err(e)) if *e.kind() == IntErrorKind::PosOverflow => u64::MAX,
        _ => 0,
    }
}

/// The id encoded between the first two `|` of `name` (Curator's `parseId`).
pub(crate) fn id_of(name: &str) -> Option<&str> {
    let first = name.find(SEPARATOR)?;
    let rest = name.get(first + 1..)?;
    let len = rest.find(SEPARATOR)?;
    rest.get(..len)
}

/// `name` without its `|<id>|` part (the whole name if it has none).
fn id_cleaned(name: &str) -> String {
    match (name.find(SEPARATOR), id_of(name)) {
        (Some(first), Some(id)) => {
            let head = name.get(..first).unwrap_or("");
            let tail = name.get(first + id.len() + 2..).unwrap_or("");
            format!("{head}{tail}")
        }
        _ => name.to_owned(),
    }
}

/// The name a requeued item is created under: the item's name without its sequence, so it
/// keeps its priority, due time or id (the sequence makes it the newest of its kind).
pub(crate) fn requeue_name(name: &str) -> String {
    let split = name.len().checked_sub(SEQUENCE_LEN);
    match split.and_then(|i| Some((name.get(..i)?, name.get(i..)?))) {
        Some((head, seq))
            if head.starts_with(QUEUE_ITEM_NAME) && seq.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head.to_owned()
        }
        _ => QUEUE_ITEM_NAME.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_encoded_as_curator_does() {
        assert_eq!(priority_name(0), "queue-100000000");
        assert_eq!(priority_name(5), "queue-100000005");
        assert_eq!(priority_name(255), "queue-1000000FF");
        assert_eq!(priority_name(-1), "queue-0FFFFFFFF");
        assert_eq!(priority_name(-2), "queue-0FFFFFFFE");
        assert_eq!(priority_name(i32::MIN), "queue-080000000");
        assert_eq!(priority_name(i32::MAX), "queue-17FFFFFFF");
        let names: Vec<String> = [3, -7, i32::MAX, 0, -1, i32::MIN, 1]
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}{i:010}", priority_name(*p)))
            .collect();
        let sorted = Flavor::Priority {
            min_items_before_refresh: 0,
        }
        .sorted(names);
        let order: Vec<&str> = sorted.iter().map(|n| &n[6..15]).collect();
        assert_eq!(
            order,
            [
                "080000000",
                "0FFFFFFF9",
                "0FFFFFFFF",
                "100000000",
                "100000001",
                "100000003",
                "17FFFFFFF"
            ]
        );
    }

    #[test]
    fn delays_are_encoded_and_parsed_as_curator_does() {
        assert_eq!(delay_name(0x1234), "queue-|00001234|");
        assert_eq!(delay_name(1_700_000_000_000), "queue-|18BCFE56800|");
        assert_eq!(epoch_of("queue-|18BCFE56800|0000000007"), 1_700_000_000_000);
        assert_eq!(epoch_of("queue-0000000007"), 0);
        assert_eq!(epoch_of("queue-|zz|0000000007"), 0);
        // At or past 2^63 ms (and past 2^64): far in the future, not due at once.
        assert_eq!(epoch_of("queue-|8000000000000000|0000000007"), 1 << 63);
        assert_eq!(epoch_of("queue-|FFFFFFFFFFFFFFFF|0000000007"), u64::MAX);
        assert_eq!(epoch_of("queue-|10000000000000000|0000000007"), u64::MAX);
        assert!(
            Flavor::Delay.delay("queue-|8000000000000000|0000000007", 1_700_000_000_000)
                > Duration::from_secs(86_400 * 365 * 1000)
        );
        assert!(
            Flavor::Delay.delay("queue-|10000000000000000|0000000007", 1_700_000_000_000)
                > Duration::from_secs(86_400 * 365 * 1000)
        );
        assert_eq!(
            epoch_of("|12|0000000007"),
            0,
            "Curator needs the first | past index 0"
        );
        let sorted = Flavor::Delay.sorted(vec![
            "queue-|00000030|0000000000".to_owned(),
            "queue-|00000010|0000000002".to_owned(),
            "queue-|00000020|0000000001".to_owned(),
            "queue-|00000010|0000000003".to_owned(),
        ]);
        assert_eq!(
            sorted,
            [
                "queue-|00000010|0000000002",
                "queue-|00000010|0000000003",
                "queue-|00000020|0000000001",
                "queue-|00000030|0000000000"
            ]
        );
        assert_eq!(
            Flavor::Delay.delay("queue-|00000030|0000000000", 0x20),
            Duration::from_millis(0x10)
        );
        assert_eq!(
            Flavor::Delay.delay("queue-|00000030|0000000000", 0x40),
            Duration::ZERO
        );
    }

    #[test]
    fn ids_are_fixed_parsed_and_ignored_when_sorting() {
        assert_eq!(id_name("a/b|c"), "queue-|a_b_c|");
        assert_eq!(id_of("queue-|order-7|0000000003"), Some("order-7"));
        assert_eq!(id_of("queue-0000000003"), None);
        assert_eq!(id_cleaned("queue-|order-7|0000000003"), "queue-0000000003");
        let sorted = Flavor::Id.sorted(vec![
            "queue-|zzz|0000000000".to_owned(),
            "queue-|aaa|0000000001".to_owned(),
            "other".to_owned(),
        ]);
        assert_eq!(sorted, ["queue-|zzz|0000000000", "queue-|aaa|0000000001"]);
    }

    #[test]
    fn requeued_items_keep_their_prefix() {
        assert_eq!(requeue_name("queue-0000000012"), "queue-");
        assert_eq!(requeue_name("queue-1000000050000000012"), "queue-100000005");
        assert_eq!(requeue_name("queue-|0A|0000000012"), "queue-|0A|");
        assert_eq!(requeue_name("queue-|id|0000000012"), "queue-|id|");
        assert_eq!(requeue_name("odd"), "queue-");
    }
}
