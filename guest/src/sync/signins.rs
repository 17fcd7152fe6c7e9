//! Feature `sign-in-activity`: a paging pass over `GET /v1.0/users?$select=id,
//! signInActivity` (signInActivity is not available on users/delta) that sets the
//! `last-sign-in` of the stored people: per page, one find-people by object id and one
//! batch with the people whose last sign-in changed (fingerprint recomputed, status kept).
//! Users the store does not hold (not imported, filtered out) are left alone.
//!
//! A tenant without Microsoft Entra ID P1/P2 gets Graph's documented 403
//! (`Authentication_RequestFromNonPremiumTenantOrB2CTenant`, see
//! [`crate::sources::signins`]): one `sign-in-activity-unavailable` warning, and the run
//! goes on. The counts join the users data-set report (the WIT has no data set of its own
//! for sign-ins): pages and updates, each person counted once in the run (one the users
//! phase created or updated is not counted again; one it counted unchanged moves to
//! updated).

use super::Run;
use super::people::LaterWrite;
use crate::graph::GraphClient;
use crate::merge;
use crate::sources::signins;
use crate::types::{Batch, DataSet, PersonKey, SyncError};

#[derive(Default)]
struct Counts {
    read: u64,
    /// Last sign-ins written.
    written: u64,
    /// People counted updated by this pass (not counted by the users phase as written).
    updated: u64,
    /// Of those, people the users phase counted unchanged.
    was_unchanged: u64,
    unchanged: u64,
    not_stored: u64,
}

impl Run<'_> {
    pub(super) fn sign_ins(&mut self, graph: &mut GraphClient<'_>) -> Result<(), SyncError> {
        let r = graph.redactor().clone();
        let mut c = Counts::default();
        let result = self.each_page(
            graph,
            signins::first_url(graph.graph()),
            signins::NEED,
            "page of users with their sign-in activity",
            signins::parse_page,
            |run, items| {
                c.read += items.len() as u64;
                if items.is_empty() {
                    return Ok(());
                }
                let keys: Vec<PersonKey> = items
                    .iter()
                    .map(|s| PersonKey::ObjectId(s.id.clone()))
                    .collect();
                let found = run.find(&keys)?;
                let mut changes = Vec::new();
                for (signin, stored) in items.into_iter().zip(found) {
                    let Some(stored) = stored else {
                        c.not_stored += 1;
                        continue;
                    };
                    if stored.person.last_sign_in == signin.last_sign_in {
                        c.unchanged += 1;
                        continue;
                    }
                    let mut person = stored.person.clone();
                    person.last_sign_in = signin.last_sign_in;
                    // Counted once: a person the users phase wrote in this run is counted
                    // there already (a first sync creates, then sets the last sign-in).
                    match run.counted.later_write(&person.object_id) {
                        LaterWrite::Counted => {}
                        LaterWrite::WasUnchanged => {
                            c.updated += 1;
                            c.was_unchanged += 1;
                        }
                        LaterWrite::First => c.updated += 1,
                    }
                    c.written += 1;
                    changes.push(merge::rewrite_person(
                        stored,
                        person,
                        vec!["signInActivity".into()],
                    ));
                }
                if !changes.is_empty() {
                    run.commit(&Batch {
                        changes,
                        checkpoints: Vec::new(),
                        run: None,
                    })?;
                }
                Ok(())
            },
        );
        let pages = match result {
            Ok(pages) => pages,
            Err(e) if signins::is_non_premium(&e) => {
                self.warn(
                    &r,
                    "sign-in-activity-unavailable",
                    "Graph does not give this tenant's sign-in activity: it needs a Microsoft \
                     Entra ID P1 or P2 licence (Graph answered \"Neither tenant is B2C or \
                     tenant doesn't have premium license\"), and the app needs AuditLog.Read.All. \
                     Last sign-in times were not updated; the other data sets were synced."
                        .into(),
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.info(
            &r,
            &format!(
                "sign-in activity: {} user(s) read in {pages} page(s), {} last sign-in(s) \
                 written, {} unchanged, {} not stored",
                c.read, c.written, c.unchanged, c.not_stored
            ),
        );
        let users = self.data_set(DataSet::Users);
        users.pages += pages;
        users.updated += c.updated;
        users.unchanged = users.unchanged.saturating_sub(c.was_unchanged);
        users.written += c.updated;
        Ok(())
    }
}
