//! Paging through a Graph collection by `@odata.nextLink`, to the end. A next link (and a
//! delta round's `@odata.deltaLink`, or a saved one) must stay on the Graph endpoint (same
//! scheme, host and port): the bearer token goes with every page, so a link to any other
//! host is refused as a bad response.

use crate::types::{HttpFailure, SyncError};
use crate::url::{AbsoluteUrl, display_url};

/// The position in a paged collection.
pub struct Pager {
    graph: String,
    next: Option<String>,
    pages: u32,
}

impl Pager {
    /// Starts at `first_url` (built by the engine on the Graph endpoint `graph`).
    pub fn new(graph: &str, first_url: String) -> Self {
        Pager {
            graph: graph.to_owned(),
            next: Some(first_url),
            pages: 0,
        }
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

    #[test]
    fn refuses_a_self_link_loop() {
        let cur = "https://g.test/v1.0/users";
        let mut p = Pager::new("https://g.test", cur.into());
        p.next_url();
        assert!(p.advance(cur, Some(cur.into())).is_err());
    }
}
