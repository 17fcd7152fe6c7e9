//! Paging through a Graph collection by `@odata.nextLink`, to the end. A next link (and a
//! delta round's `@odata.deltaLink`, or a saved one) must stay on the Graph endpoint (same
//! scheme, host and port): the bearer token goes with every page, so a link to any other
//! host is refused as a bad response.
//!
//! A paging loop fails the round at once instead of running until the run's budget: a
//! next link to any page already read in the round (A → B → A, not just a page linking to
//! itself), or more pages than any directory has ([`MAX_PAGES`]: a next link with a
//! counter that changes on every page never repeats).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::types::{HttpFailure, SyncError};
use crate::url::{AbsoluteUrl, display_url};

/// The most pages one round may read. Graph pages hold up to 999 objects and 100 or more
/// by default, so 100,000 pages is ten million objects or more: beyond the directory of
/// any tenant (Microsoft Entra ID's object quota is in the hundreds of thousands, raised on
/// request to a few million), while a loop whose link never repeats still ends in
/// bounded time. The seen links are kept as 8-byte hashes, so 100,000 pages cost 800 KB.
pub const MAX_PAGES: u32 = 100_000;

/// The position in a paged collection.
pub struct Pager {
    graph: String,
    next: Option<String>,
    pages: u32,
    max_pages: u32,
    /// Hashes of every URL read or to be read in this round (a 64-bit hash: a false
    /// "seen" is about one in 10^10 at the page cap).
    seen: HashSet<u64>,
}

fn link_hash(link: &str) -> u64 {
    let mut h = DefaultHasher::new();
    link.hash(&mut h);
    h.finish()
}

impl Pager {
    /// Starts at `first_url` (built by the engine on the Graph endpoint `graph`).
    pub fn new(graph: &str, first_url: String) -> Self {
        let mut seen = HashSet::new();
        seen.insert(link_hash(&first_url));
        Pager {
            graph: graph.to_owned(),
            next: Some(first_url),
            pages: 0,
            max_pages: MAX_PAGES,
            seen,
        }
    }

    /// Reads at most `max_pages` pages (at least one): for a caller that knows the size of
    /// the collection (a tenant's size hint), a tighter bound than [`MAX_PAGES`].
    pub fn with_max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// The URL of the next page to read, or `None` after the last.
    pub fn next_url(&mut self) -> Option<String> {
        self.next.take()
    }

    /// True once the last page was read (no next link).
    pub fn is_done(&self) -> bool {
        self.next.is_none()
    }

    /// Pages read so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Records that the page read from `current` linked to `next_link` (or was the last).
    pub fn advance(&mut self, current: &str, next_link: Option<String>) -> Result<(), SyncError> {
        self.pages += 1;
        let Some(link) = next_link else {
            return Ok(());
        };
        check_next_link(&self.graph, current, &link)?;
        if link == current {
            return Err(refused(
                current,
                "its @odata.nextLink points back to the same page (a paging loop)".into(),
            ));
        }
        if !self.seen.insert(link_hash(&link)) {
            return Err(refused(
                current,
                format!(
                    "its @odata.nextLink {} leads back to a page already read in this round, \
                     after {} page(s) (a paging loop)",
                    display_url(&link),
                    self.pages
                ),
            ));
        }
        if self.pages >= self.max_pages {
            return Err(refused(
                current,
                format!(
                    "it is page {} and still has an @odata.nextLink: no collection has that \
                     many pages, so the next links do not end (a paging loop)",
                    self.pages
                ),
            ));
        }
        self.next = Some(link);
        Ok(())
    }
}

/// Refuses a next link that is not an absolute URL on the Graph endpoint.
pub fn check_next_link(graph: &str, current: &str, link: &str) -> Result<(), SyncError> {
    check_link(graph, current, link, "@odata.nextLink")
}

/// Refuses a link (`annotation` names where it came from, e.g. `@odata.deltaLink`) that is
/// not an absolute URL on the Graph endpoint.
pub fn check_link(
    graph: &str,
    current: &str,
    link: &str,
    annotation: &str,
) -> Result<(), SyncError> {
    on_graph(graph, link).map_err(|why| refused(current, format!("its {annotation} {why}")))
}

/// Ok when `link` is an absolute URL with the origin (scheme, host, port) of the Graph
/// endpoint `graph`; else why not, in words that follow "its link".
pub fn on_graph(graph: &str, link: &str) -> Result<(), String> {
    let link_url = AbsoluteUrl::parse(link)
        .map_err(|e| format!("{:?} is not usable: {e}", display_url(link)))?;
    let graph_url = AbsoluteUrl::parse(graph).map_err(|e| {
        format!("cannot be checked: the Graph endpoint {graph:?} is not usable: {e}")
    })?;
    if !graph_url.same_origin(&link_url) {
        return Err(format!(
            "leads to {}://{}, not to the Graph endpoint {graph}; the engine does not send \
             the access token to another host",
            match link_url.scheme {
                crate::url::Scheme::Http => "http",
                crate::url::Scheme::Https => "https",
            },
            link_url.authority
        ));
    }
    Ok(())
}

fn refused(current: &str, why: String) -> SyncError {
    SyncError::BadResponse(HttpFailure {
        url: display_url(current),
        status: Some(200),
        graph_code: None,
        message: format!(
            "the answer to GET {} was refused: {why}",
            display_url(current)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_on_the_graph_endpoint() {
        let mut p = Pager::new(
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/v1.0/users".into(),
        );
        let first = p.next_url().unwrap();
        assert!(p.next_url().is_none());
        p.advance(
            &first,
            Some("https://graph.microsoft.com:443/v1.0/users?$skiptoken=x".into()),
        )
        .unwrap();
        let second = p.next_url().unwrap();
        assert_eq!(
            second,
            "https://graph.microsoft.com:443/v1.0/users?$skiptoken=x"
        );
        p.advance(&second, None).unwrap();
        assert!(p.next_url().is_none());
        assert_eq!(p.pages(), 2);
    }

    #[test]
    fn refuses_foreign_and_broken_links() {
        let g = "https://graph.microsoft.com";
        let cur = "https://graph.microsoft.com/v1.0/users?$skiptoken=SECRETPAGE";
        for link in [
            "https://evil.example/v1.0/users?$skiptoken=x",
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "/v1.0/users?$skiptoken=x",
            "https://user@graph.microsoft.com/v1.0/users",
        ] {
            let mut p = Pager::new(g, cur.into());
            p.next_url();
            let e = p.advance(cur, Some(link.into())).unwrap_err();
            let SyncError::BadResponse(f) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(
                f.url,
                "https://graph.microsoft.com/v1.0/users?$skiptoken=..."
            );
            assert!(f.message.contains("nextLink"), "{}", f.message);
            assert!(!f.message.contains("SECRETPAGE"));
            assert!(p.next_url().is_none());
        }
        let e = check_next_link(g, cur, "https://evil.example/x").unwrap_err();
        assert!(format!("{e:?}").contains("evil.example"));
        let e = check_link(
            g,
            cur,
            "https://evil.example/x?$deltatoken=T0K",
            "@odata.deltaLink",
        )
        .unwrap_err();
        let SyncError::BadResponse(f) = &e else {
            panic!("{e:?}")
        };
        assert!(
            f.message
                .contains("its @odata.deltaLink leads to https://evil.example")
        );
        assert!(!f.message.contains("T0K"));
        assert!(
            on_graph(
                g,
                "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"
            )
            .is_ok()
        );
    }

    fn loop_message(e: SyncError) -> String {
        let SyncError::BadResponse(f) = e else {
            panic!("{e:?}")
        };
        assert!(f.message.contains("a paging loop"), "{}", f.message);
        f.message
    }

    #[test]
    fn refuses_a_link_back_to_any_page_read_before() {
        let a = "https://g.test/v1.0/users";
        let b = "https://g.test/v1.0/users?$skiptoken=B";
        let c = "https://g.test/v1.0/users?$skiptoken=C";
        // A → B → A.
        let mut p = Pager::new("https://g.test", a.into());
        p.next_url();
        p.advance(a, Some(b.into())).unwrap();
        assert_eq!(p.next_url().as_deref(), Some(b));
        let m = loop_message(p.advance(b, Some(a.into())).unwrap_err());
        assert!(m.contains("already read"), "{m}");
        assert!(
            m.contains("GET https://g.test/v1.0/users?$skiptoken=..."),
            "{m}"
        );
        assert!(p.next_url().is_none());
        // A → B → C → B.
        let mut p = Pager::new("https://g.test", a.into());
        p.next_url();
        p.advance(a, Some(b.into())).unwrap();
        p.next_url();
        p.advance(b, Some(c.into())).unwrap();
        p.next_url();
        loop_message(p.advance(c, Some(b.into())).unwrap_err());
    }

    #[test]
    fn a_next_link_with_a_changing_counter_stops_at_the_page_bound() {
        let link = |n: u32| format!("https://g.test/v1.0/users?$skiptoken={n}");
        let mut p = Pager::new("https://g.test", link(0)).with_max_pages(50);
        let mut read = 0;
        let e = loop {
            let url = p.next_url().expect("a next page");
            read += 1;
            if let Err(e) = p.advance(&url, Some(link(read))) {
                break e;
            }
        };
        assert_eq!(read, 50);
        let m = loop_message(e);
        assert!(m.contains("page 50"), "{m}");
        // The default bound is generous, and a real collection ends well before it.
        let mut p = Pager::new("https://g.test", link(0));
        for n in 1..=1000 {
            let url = p.next_url().unwrap();
            p.advance(&url, Some(link(n))).unwrap();
        }
        assert_eq!(p.pages(), 1000);
    }

    #[test]
    fn refuses_a_self_link_loop() {
        let cur = "https://g.test/v1.0/users";
        let mut p = Pager::new("https://g.test", cur.into());
        p.next_url();
        assert!(p.advance(cur, Some(cur.into())).is_err());
    }
}
