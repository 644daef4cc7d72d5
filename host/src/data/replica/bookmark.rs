//! Read-your-writes across nodes: a [`Bookmark`] holds the log positions a client has seen,
//! per replicated file. It arrives with a request (the `ledge-bookmark` header, or the cookie
//! a browser returns), is raised by the request's writes, and goes back on the response, so
//! the client's next request, on whichever node, reads only from a copy that has applied that
//! far (or from the writer).
//!
//! Instances outlive requests and a p3 instance serves several at once, so an instance reads
//! through its [`Consistency`]: the bookmarks of the requests it serves now. Reads wait for
//! the highest of them and writes raise all of them: never stale, at worst a little more
//! waiting.
//!
//! A presented position is only a claim: a bookmark from before a log was made anew, or one
//! made up, may name a position past the log's end, which no copy ever reaches. Every
//! acknowledged write is in the log, so when a copy has not reached a floor in time and the
//! log, asked where it ends, ends below it, the positions presented past that end are lowered
//! to it ([`Consistency::log_ends_at`]): the request's later reads and the client's next
//! request stop waiting for them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue, RETRY_AFTER, SET_COOKIE};

/// The request and response header carrying a bookmark.
pub const HEADER: &str = "ledge-bookmark";
/// The response header saying a read came from a copy out of touch with the hub's log (it
/// may miss recent writes elsewhere).
pub const STALE_HEADER: &str = "ledge-stale";
/// The cookie carrying a bookmark for browsers.
pub const COOKIE_NAME: &str = "__ledge_bm";
/// How many positions a presented bookmark may hold; the rest is left out (an app has a few
/// stores and databases, not hundreds).
const MAX_PRESENTED: usize = 32;
/// How long a browser keeps the cookie: past it, replication has long caught up.
const COOKIE_MAX_AGE_SECONDS: u32 = 60;

/// Counts the bookmarks presented so far in this process (and the floors other nodes forwarded
/// here): a bookmark presented before the count a question to the log was asked at holds only
/// positions acknowledged before it.
static PRESENTED: AtomicU64 = AtomicU64::new(0);

/// The positions one request has seen or written, by file id.
#[derive(Debug, Default)]
pub struct Bookmark {
    positions: Mutex<BTreeMap<String, Position>>,
    /// [`PRESENTED`] when the request presented it.
    presented_at: u64,
    /// A write or a read at the writer failed because the writer could not be reached.
    writer_unreachable: AtomicBool,
    /// A read came from a copy out of touch with its log.
    read_stale: AtomicBool,
}

impl Bookmark {
    /// The bookmark a request presents: the header and the cookie, the higher position of the
    /// two for each file. Anything unreadable, and anything past [`MAX_PRESENTED`] positions,
    /// is left out.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let bookmark = Self {
            presented_at: PRESENTED.fetch_add(1, Ordering::SeqCst),
            ..Self::default()
        };
        let header = headers.get_all(HEADER).into_iter();
        let cookies = headers.get_all(COOKIE).into_iter().flat_map(|value| {
            let value = value.to_str().unwrap_or_default();
            value.split(';').filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE_NAME).then_some(value.to_string())
            })
        });
        let texts = header
            .filter_map(|value| value.to_str().ok().map(str::to_string))
            .chain(cookies);
        let items = texts.flat_map(|text| {
            let items: Vec<String> = text.split(['.', ',']).map(str::to_string).collect();
            items
        });
        for item in items.take(MAX_PRESENTED) {
            if let Some((id, position)) = item.trim().split_once('-')
                && id.len() == 16
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && let Ok(position @ 1..) = position.parse::<u64>()
            {
                let mut positions = bookmark.lock();
                let at = positions.entry(id.to_string()).or_default();
                at.presented = at.presented.max(position);
            }
        }
        bookmark
    }

    /// Whether `headers` carry a bookmark at all (the header or the cookie).
    pub fn presented(headers: &HeaderMap) -> bool {
        headers.contains_key(HEADER)
            || headers
                .get_all(COOKIE)
                .into_iter()
                .any(|value| value.to_str().is_ok_and(|v| v.contains(COOKIE_NAME)))
    }

    /// The position reads of file `id` must include.
    pub fn floor(&self, id: &str) -> u64 {
        self.lock().get(id).map_or(0, Position::floor)
    }

    /// Records that file `id` is at `position` for this request.
    pub fn raise(&self, id: &str, position: u64) {
        if position == 0 {
            return;
        }
        let mut positions = self.lock();
        let at = positions.entry(id.to_string()).or_default();
        at.seen = at.seen.max(position);
    }

    /// The log of file `id` ends at `end`, as it answered a question asked when [`asked`]
    /// gave `asked`: if this bookmark was presented before that, a position it presented past
    /// `end` was never acknowledged and is lowered to `end`. Whether it was.
    fn log_ends_at(&self, id: &str, end: u64, asked: u64) -> bool {
        if self.presented_at >= asked {
            return false;
        }
        let mut positions = self.lock();
        let Some(at) = positions.get_mut(id).filter(|at| at.presented > end) else {
            return false;
        };
        at.presented = end;
        if at.floor() == 0 {
            positions.remove(id);
        }
        true
    }

    /// Records that the writer could not be reached.
    pub fn writer_unreachable(&self) {
        self.writer_unreachable.store(true, Ordering::Relaxed);
    }

    /// Records a read from a copy out of touch with its log.
    pub fn read_stale(&self) {
        self.read_stale.store(true, Ordering::Relaxed);
    }

    /// The bookmark as the header and cookie carry it (`<id>-<position>` joined by `.`), if
    /// it holds any position.
    pub fn encode(&self) -> Option<String> {
        let positions = self.lock();
        (!positions.is_empty()).then(|| {
            positions
                .iter()
                .map(|(id, position)| format!("{id}-{}", position.floor()))
                .collect::<Vec<_>>()
                .join(".")
        })
    }

    /// Adds the bookmark to a response's `headers` (the header and the cookie), [`STALE_HEADER`]
    /// after a stale read, and to a 5xx answered after the writer could not be reached,
    /// `Retry-After`.
    pub fn annotate(&self, status: http::StatusCode, headers: &mut HeaderMap) {
        if let Some(encoded) = self.encode()
            && let Ok(value) = HeaderValue::from_str(&encoded)
        {
            let cookie = format!(
                "{COOKIE_NAME}={encoded}; Path=/; Max-Age={COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax"
            );
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, cookie);
            }
            headers.insert(HEADER, value);
        }
        if self.read_stale.load(Ordering::Relaxed) {
            headers.insert(STALE_HEADER, HeaderValue::from_static("1"));
        }
        if status.is_server_error()
            && self.writer_unreachable.load(Ordering::Relaxed)
            && !headers.contains_key(RETRY_AFTER)
        {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Position>> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a bookmark holds for one file: the position the client presented, and the highest
/// one this request's writes and reads at the writer have seen.
#[derive(Debug, Default, Clone, Copy)]
struct Position {
    presented: u64,
    seen: u64,
}

impl Position {
    fn floor(&self) -> u64 {
        self.presented.max(self.seen)
    }
}

/// The count of bookmarks presented so far: taken before a floor is read, and again as a
/// question to the log is sent; only bookmarks presented before the question's count can be
/// judged by its answer ([`Consistency::log_ends_at`]).
pub fn asked() -> u64 {
    PRESENTED.load(Ordering::SeqCst)
}

/// Counts a position presented to this node from elsewhere (the floor of a request another
/// node forwarded) and returns [`asked`] after it: only a question asked from now on may
/// judge it.
pub fn count_presented_elsewhere() -> u64 {
    PRESENTED.fetch_add(1, Ordering::SeqCst) + 1
}

/// What one instance's data calls read at and raise: the bookmarks of the requests it is
/// serving now.
#[derive(Debug, Default)]
pub struct Consistency(Mutex<Vec<Weak<Bookmark>>>);

impl Consistency {
    /// The instance starts serving a request with `bookmark`.
    pub fn enter(&self, bookmark: &Arc<Bookmark>) {
        let mut serving = self.lock();
        serving.retain(|bookmark| bookmark.strong_count() > 0);
        serving.push(Arc::downgrade(bookmark));
    }

    /// The position reads of file `id` must include: the highest of the requests served.
    pub fn floor(&self, id: &str) -> u64 {
        self.live().map(|b| b.floor(id)).max().unwrap_or(0)
    }

    /// Records a write (or a read at the writer) of file `id` at `position`.
    pub fn raise(&self, id: &str, position: u64) {
        self.live()
            .for_each(|bookmark| bookmark.raise(id, position));
    }

    /// The log of file `id` ends at `end`, as it answered a question asked when [`asked`] gave
    /// `asked`. Lowers the positions past `end` that requests presented before then (a
    /// bookmark from before the log was made anew, or a made-up one); whether there were any.
    pub fn log_ends_at(&self, id: &str, end: u64, asked: u64) -> bool {
        // Counted, not `any`: every bookmark is judged, not only up to the first one lowered.
        self.live()
            .filter(|bookmark| bookmark.log_ends_at(id, end, asked))
            .count()
            > 0
    }

    /// Records that the writer could not be reached.
    pub fn writer_unreachable(&self) {
        self.live()
            .for_each(|bookmark| bookmark.writer_unreachable());
    }

    /// Records a read from a copy out of touch with its log.
    pub fn read_stale(&self) {
        self.live().for_each(|bookmark| bookmark.read_stale());
    }

    fn live(&self) -> impl Iterator<Item = Arc<Bookmark>> {
        let serving: Vec<Arc<Bookmark>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        serving.into_iter()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Bookmark>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00112233445566aa";
    const B: &str = "00112233445566bb";

    #[test]
    fn header_and_cookie_give_the_higher_position_and_junk_is_left_out() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER,
            format!("{A}-5.{B}-2.nonsense.zz-1").parse().unwrap(),
        );
        headers.insert(
            COOKIE,
            format!("theme=dark; {COOKIE_NAME}={A}-9").parse().unwrap(),
        );
        let bookmark = Bookmark::from_headers(&headers);
        assert_eq!(bookmark.floor(A), 9);
        assert_eq!(bookmark.floor(B), 2);
        assert_eq!(bookmark.encode().unwrap(), format!("{A}-9.{B}-2"));
    }

    #[test]
    fn a_response_carries_the_bookmark_retry_after_when_the_writer_was_gone_and_staleness() {
        let bookmark = Bookmark::default();
        let mut headers = HeaderMap::new();
        bookmark.annotate(http::StatusCode::OK, &mut headers);
        assert!(headers.is_empty(), "nothing written, nothing to carry");
        bookmark.raise(A, 3);
        bookmark.writer_unreachable();
        bookmark.annotate(http::StatusCode::INTERNAL_SERVER_ERROR, &mut headers);
        assert_eq!(headers[HEADER], format!("{A}-3"));
        assert!(
            headers[SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with(COOKIE_NAME)
        );
        assert_eq!(headers[RETRY_AFTER], "1");
        assert!(!headers.contains_key(STALE_HEADER));
        bookmark.read_stale();
        bookmark.annotate(http::StatusCode::OK, &mut headers);
        assert_eq!(headers[STALE_HEADER], "1");
    }

    #[test]
    fn a_position_past_the_log_end_is_lowered_only_where_it_was_presented_before_asking() {
        let presented = |text: String| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, text.parse().unwrap());
            Arc::new(Bookmark::from_headers(&headers))
        };
        let consistency = Consistency::default();
        let (made_up, written) = (presented(format!("{A}-99")), presented(format!("{A}-99")));
        written.raise(A, 20);
        consistency.enter(&made_up);
        consistency.enter(&written);
        let question = asked();
        // Presented after the question: the answer may predate its position.
        let later = presented(format!("{A}-50.{B}-3"));
        consistency.enter(&later);

        assert!(consistency.log_ends_at(A, 12, question));
        assert_eq!(made_up.encode().unwrap(), format!("{A}-12"));
        assert_eq!(written.floor(A), 20, "a position this request wrote stays");
        assert_eq!(later.floor(A), 50);
        assert!(
            !consistency.log_ends_at(A, 12, question),
            "nothing left past 12"
        );
        assert!(!consistency.log_ends_at(B, 0, question));

        assert!(consistency.log_ends_at(A, 0, asked()));
        assert_eq!(
            made_up.encode(),
            None,
            "an empty log leaves nothing to carry"
        );
        assert_eq!((written.floor(A), later.floor(A)), (20, 0));
        assert_eq!(later.floor(B), 3);
    }

    #[test]
    fn an_instance_reads_at_the_highest_of_its_requests_and_forgets_ended_ones() {
        let consistency = Consistency::default();
        let (first, second) = (Arc::new(Bookmark::default()), Arc::new(Bookmark::default()));
        first.raise(A, 4);
        consistency.enter(&first);
        consistency.enter(&second);
        assert_eq!(consistency.floor(A), 4);
        consistency.raise(B, 7);
        assert_eq!((first.floor(B), second.floor(B)), (7, 7));
        drop(first);
        assert_eq!(consistency.floor(A), 0);
    }
}
