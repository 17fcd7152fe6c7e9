//! Matching a tenant to one of the platform's organizations, and applying a reviewer's
//! decision on that match. Pure: the engine reads the organizations and the stored decision
//! through its host, calls these, and stores or creates what they say.
//!
//! The rules guard against the two costly mistakes: linking a tenant to the wrong
//! organization (only an exact name key, or a reviewer, makes a match; near names are only
//! suggested) and creating a duplicate organization (create is refused while any candidate
//! exists).

use crate::normalize::organization_name_key;
use crate::similarity::key_similarity;
use crate::types::{
    MatchDecision, MatchState, OrganizationMatch, PlatformOrganization, ReviewAction, Suggestion,
};

/// The lowest similarity that makes an organization a suggestion. Suggestions go to a
/// person, who rejects a wrong one in a click but cannot see a missing one, so the bar
/// favours recall: a typo, an added or dropped word or another word order scores 0.83–0.99
/// ("Contoso" / "Global Contoso" 0.83), while names sharing only a generic word or their
/// length stay at 0.6 or below ("Contoso Bank" / "Fabrikam Bank" 0.60). A shared first
/// word also clears it ("First National Bank" / "First Choice Bank" 0.86), which is why
/// near names are only ever suggested, never matched.
pub const SUGGESTION_THRESHOLD: f32 = 0.75;

/// At most this many ranked suggestions (several organizations with the tenant's exact
/// name are all listed, however many).
pub const MAX_SUGGESTIONS: usize = 5;

/// The tenant's match: a stored decision wins, else one computed from the names.
///
/// - `accept(id)` / `change(id)`: matched to that organization. If it no longer exists the
///   decision is stale and the computed match is returned ([`stale_decision`] tells the
///   caller, to warn).
/// - `ignore`: state ignored, with the computed candidates as suggestions, so a reviewer
///   still sees them (and [`decide`] can still refuse `create` because of them).
/// - `create` names no organization: the engine stores `change(new id)` once the
///   organization exists (see [`Decided::Create`]). A stored `create` is therefore a
///   leftover of an interrupted create, and the computed match applies, which finds the new
///   organization by its name if it was made.
///
/// Computed: exactly one organization whose name key equals the tenant's is matched;
/// several are all suggested at 1.0 (ambiguous: a person must choose); otherwise the
/// organizations scoring at least [`SUGGESTION_THRESHOLD`] are suggested, best first (ties
/// by name, then id), at most [`MAX_SUGGESTIONS`]; none is unmatched. A tenant whose name
/// has an empty key matches nothing.
pub fn match_organization(
    tenant_key: &str,
    tenant_name: &str,
    organizations: &[PlatformOrganization],
    decision: Option<&MatchDecision>,
) -> OrganizationMatch {
    match decision.map(|d| &d.action) {
        Some(ReviewAction::Accept(id) | ReviewAction::Change(id)) => {
            match find(organizations, id) {
                Some(org) => matched(tenant_key, tenant_name, org.clone()),
                None => computed(tenant_key, tenant_name, organizations, SUGGESTION_THRESHOLD),
            }
        }
        Some(ReviewAction::Ignore) => ignored(tenant_key, tenant_name, organizations),
        Some(ReviewAction::Create) | None => {
            computed(tenant_key, tenant_name, organizations, SUGGESTION_THRESHOLD)
        }
    }
}

/// The organization id a stored `accept` / `change` decision names when that organization
/// no longer exists (so [`match_organization`] ignored the decision); None otherwise.
pub fn stale_decision<'a>(
    decision: &'a MatchDecision,
    organizations: &[PlatformOrganization],
) -> Option<&'a str> {
    match &decision.action {
        ReviewAction::Accept(id) | ReviewAction::Change(id) => {
            find(organizations, id).is_none().then_some(id.as_str())
        }
        ReviewAction::Ignore | ReviewAction::Create => None,
    }
}

/// What a review action asks of the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Decided {
    /// Store `action` as the tenant's decision and report `result`.
    Store {
        action: ReviewAction,
        result: OrganizationMatch,
    },
    /// Nothing matches: have the host create an organization called `name`, then call
    /// [`created`] with it for what to store and report. `create` itself is never stored,
    /// because it names no organization and would create again on every replay.
    Create { name: String },
}

/// Why a review action was refused. Messages name the tenant and the organizations at
/// issue, for the reviewer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReviewError {
    #[error(
        "organization {id} is not a suggestion for tenant {tenant}; use change to match it anyway"
    )]
    NotSuggested { tenant: String, id: String },
    #[error("organization {id} does not exist")]
    UnknownOrganization { id: String },
    #[error(
        "tenant {tenant} already has matching organizations: {}; accept or change to one of \
         them instead of creating a duplicate, or ignore",
        describe(.candidates)
    )]
    WouldDuplicate {
        tenant: String,
        candidates: Vec<PlatformOrganization>,
    },
    #[error("tenant {tenant} has no name to create an organization from")]
    NoTenantName { tenant: String },
}

fn describe(organizations: &[PlatformOrganization]) -> String {
    let named: Vec<String> = organizations
        .iter()
        .map(|o| format!("{:?} ({})", o.name, o.id))
        .collect();
    named.join(", ")
}

/// Checks a reviewer's action against the tenant's `current` match (as
/// [`match_organization`] gave it, over the same `organizations`) and says what to do.
///
/// - `accept(id)`: the id must be the current match or one of the suggestions, and still
///   exist. Stored as given.
/// - `change(id)`: the id must exist. Stored as given.
/// - `ignore`: always allowed. Stored; the result is ignored with the candidates listed.
/// - `create`: only when nothing matches: no match, no suggestion, and no organization
///   with the tenant's name key; else [`ReviewError::WouldDuplicate`] naming them. The
///   tenant must have a name.
pub fn decide(
    current: &OrganizationMatch,
    organizations: &[PlatformOrganization],
    action: &ReviewAction,
) -> Result<Decided, ReviewError> {
    let (tenant_key, tenant_name) = (&current.tenant_key, &current.tenant_name);
    match action {
        ReviewAction::Accept(id) => {
            let offered = current.organization.iter().any(|o| &o.id == id)
                || current.suggestions.iter().any(|s| &s.organization.id == id);
            if !offered {
                return Err(ReviewError::NotSuggested {
                    tenant: tenant_key.clone(),
                    id: id.clone(),
                });
            }
            let org = find(organizations, id)
                .ok_or_else(|| ReviewError::UnknownOrganization { id: id.clone() })?;
            Ok(store(action, matched(tenant_key, tenant_name, org.clone())))
        }
        ReviewAction::Change(id) => {
            let org = find(organizations, id)
                .ok_or_else(|| ReviewError::UnknownOrganization { id: id.clone() })?;
            Ok(store(action, matched(tenant_key, tenant_name, org.clone())))
        }
        ReviewAction::Ignore => Ok(store(
            action,
            ignored(tenant_key, tenant_name, organizations),
        )),
        ReviewAction::Create => {
            // The current match plus any exact-name organization, in case `current` was
            // computed from an older list.
            let key = organization_name_key(tenant_name);
            let mut found = candidates(current);
            for org in organizations {
                if !key.is_empty()
                    && organization_name_key(&org.name) == key
                    && !found.iter().any(|f| f.id == org.id)
                {
                    found.push(org.clone());
                }
            }
            if !found.is_empty() {
                return Err(ReviewError::WouldDuplicate {
                    tenant: tenant_key.clone(),
                    candidates: found,
                });
            }
            // A name without a letter or digit would make an organization nobody can find.
            let name = tenant_name.trim();
            if key.is_empty() {
                return Err(ReviewError::NoTenantName {
                    tenant: tenant_key.clone(),
                });
            }
            Ok(Decided::Create {
                name: name.to_owned(),
            })
        }
    }
}

/// After the host created `organization` for a [`Decided::Create`]: store
/// `change(organization.id)` and report the tenant matched to it.
pub fn created(tenant_key: &str, tenant_name: &str, organization: PlatformOrganization) -> Decided {
    Decided::Store {
        action: ReviewAction::Change(organization.id.clone()),
        result: matched(tenant_key, tenant_name, organization),
    }
}

fn store(action: &ReviewAction, result: OrganizationMatch) -> Decided {
    Decided::Store {
        action: action.clone(),
        result,
    }
}

fn find<'a>(
    organizations: &'a [PlatformOrganization],
    id: &str,
) -> Option<&'a PlatformOrganization> {
    organizations.iter().find(|o| o.id == id)
}

/// Ignored on purpose, still listing the computed candidates.
fn ignored(
    tenant_key: &str,
    tenant_name: &str,
    organizations: &[PlatformOrganization],
) -> OrganizationMatch {
    let found = computed(tenant_key, tenant_name, organizations, SUGGESTION_THRESHOLD);
    OrganizationMatch {
        state: MatchState::Ignored,
        organization: None,
        suggestions: as_suggestions(&found),
        ..found
    }
}

fn matched(
    tenant_key: &str,
    tenant_name: &str,
    organization: PlatformOrganization,
) -> OrganizationMatch {
    OrganizationMatch {
        tenant_key: tenant_key.to_owned(),
        tenant_name: tenant_name.to_owned(),
        state: MatchState::Matched,
        organization: Some(organization),
        suggestions: Vec::new(),
    }
}

/// A match's candidates as suggestions: the matched organization at 1.0, then the
/// suggestions.
fn as_suggestions(found: &OrganizationMatch) -> Vec<Suggestion> {
    found
        .organization
        .iter()
        .map(|org| Suggestion {
            organization: org.clone(),
            score: 1.0,
        })
        .chain(found.suggestions.iter().cloned())
        .collect()
}

/// Every organization a match names: the matched one and the suggestions.
fn candidates(found: &OrganizationMatch) -> Vec<PlatformOrganization> {
    found
        .organization
        .iter()
        .cloned()
        .chain(found.suggestions.iter().map(|s| s.organization.clone()))
        .collect()
}

fn computed(
    tenant_key: &str,
    tenant_name: &str,
    organizations: &[PlatformOrganization],
    threshold: f32,
) -> OrganizationMatch {
    let mut result = OrganizationMatch {
        tenant_key: tenant_key.to_owned(),
        tenant_name: tenant_name.to_owned(),
        state: MatchState::Unmatched,
        organization: None,
        suggestions: Vec::new(),
    };
    let key = organization_name_key(tenant_name);
    if key.is_empty() {
        return result;
    }
    let mut scored: Vec<Suggestion> = organizations
        .iter()
        .map(|org| Suggestion {
            score: key_similarity(&key, &organization_name_key(&org.name)),
            organization: org.clone(),
        })
        .collect();
    // Best first; equal scores by name, then id, so the order never depends on the host's.
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.organization.name.cmp(&b.organization.name))
            .then_with(|| a.organization.id.cmp(&b.organization.id))
    });
    let exact = scored.iter().take_while(|s| s.score == 1.0).count();
    match exact {
        1 => {
            result.state = MatchState::Matched;
            result.organization = Some(scored.swap_remove(0).organization);
        }
        0 => {
            scored.retain(|s| s.score >= threshold);
            scored.truncate(MAX_SUGGESTIONS);
            if !scored.is_empty() {
                result.state = MatchState::Suggested;
                result.suggestions = scored;
            }
        }
        // Ambiguous: every organization of that name, for a person to choose.
        n => {
            scored.truncate(n);
            result.state = MatchState::Suggested;
            result.suggestions = scored;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, name: &str) -> PlatformOrganization {
        PlatformOrganization {
            id: id.into(),
            name: name.into(),
        }
    }

    fn decision(action: ReviewAction) -> MatchDecision {
        MatchDecision {
            tenant_key: "t1".into(),
            action,
            decided_at: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn orgs() -> Vec<PlatformOrganization> {
        vec![
            org("o-contoso", "Contoso Ltd"),
            org("o-fabrikam", "Fabrikam GmbH"),
            org("o-northwind", "Northwind Traders"),
            org("o-pharma", "Contoso Pharmaceuticals"),
        ]
    }

    fn ids(m: &OrganizationMatch) -> Vec<&str> {
        m.suggestions
            .iter()
            .map(|s| s.organization.id.as_str())
            .collect()
    }

    #[test]
    fn exact_name_key_matches() {
        let m = match_organization("t1", "CONTOSO, INC.", &orgs(), None);
        assert_eq!(m.state, MatchState::Matched);
        assert_eq!(m.organization, Some(org("o-contoso", "Contoso Ltd")));
        assert!(m.suggestions.is_empty());
        assert_eq!(
            (m.tenant_key.as_str(), m.tenant_name.as_str()),
            ("t1", "CONTOSO, INC.")
        );
    }

    #[test]
    fn ambiguous_equal_names_are_all_suggested() {
        let mut list = orgs();
        list.push(org("o-contoso-2", "Contoso Inc."));
        list.push(org("o-contoso-0", "Contoso Inc."));
        let m = match_organization("t1", "Contoso", &list, None);
        assert_eq!(m.state, MatchState::Suggested);
        assert_eq!(m.organization, None);
        // Only the exact ones (not "Contoso Pharmaceuticals"), ordered by name then id.
        assert_eq!(ids(&m), ["o-contoso-0", "o-contoso-2", "o-contoso"]);
        assert!(m.suggestions.iter().all(|s| s.score == 1.0));
    }

    #[test]
    fn ambiguous_equal_names_are_not_truncated() {
        let list: Vec<_> = (0..MAX_SUGGESTIONS + 2)
            .map(|i| org(&format!("o{i}"), "Contoso"))
            .collect();
        let m = match_organization("t1", "Contoso", &list, None);
        assert_eq!(m.state, MatchState::Suggested);
        assert_eq!(m.suggestions.len(), MAX_SUGGESTIONS + 2);
    }

    #[test]
    fn near_names_are_suggested_best_first() {
        let m = match_organization("t1", "Contosso", &orgs(), None);
        assert_eq!(m.state, MatchState::Suggested);
        assert_eq!(m.organization, None);
        assert_eq!(ids(&m)[0], "o-contoso");
        assert!(ids(&m).contains(&"o-pharma"));
        assert!(!ids(&m).contains(&"o-fabrikam"));
        assert!(m.suggestions.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(
            m.suggestions
                .iter()
                .all(|s| s.score >= SUGGESTION_THRESHOLD && s.score < 1.0)
        );
    }

    #[test]
    fn suggestion_ties_order_by_name_then_id() {
        let list = vec![
            org("b", "Northwind Traders West"),
            org("a2", "Northwind Traders East"),
            org("a1", "Northwind Traders East"),
        ];
        let m = match_organization("t1", "Northwind Traders", &list, None);
        let scores: Vec<f32> = m.suggestions.iter().map(|s| s.score).collect();
        assert!(scores.iter().all(|&s| s == scores[0]), "{scores:?}");
        assert_eq!(ids(&m), ["a1", "a2", "b"]);
    }

    #[test]
    fn suggestions_are_capped() {
        let list: Vec<_> = (0..MAX_SUGGESTIONS + 3)
            .map(|i| org(&format!("o{i}"), &format!("Contoso Region {i}")))
            .collect();
        let m = match_organization("t1", "Contoso Region", &list, None);
        assert_eq!(m.state, MatchState::Suggested);
        assert_eq!(m.suggestions.len(), MAX_SUGGESTIONS);
    }

    #[test]
    fn nothing_close_is_unmatched() {
        let m = match_organization("t1", "Woodgrove Bank", &orgs(), None);
        assert_eq!(m.state, MatchState::Unmatched);
        assert_eq!(m.organization, None);
        assert!(m.suggestions.is_empty());
        let none = match_organization("t1", "Contoso", &[], None);
        assert_eq!(none.state, MatchState::Unmatched);
    }

    #[test]
    fn tenant_without_a_name_matches_nothing() {
        let list = vec![org("x", ""), org("y", "...")];
        for name in ["", "  ", "..."] {
            let m = match_organization("t1", name, &list, None);
            assert_eq!(m.state, MatchState::Unmatched, "{name:?}");
            assert!(m.suggestions.is_empty());
        }
    }

    #[test]
    fn threshold_edge_is_inclusive() {
        let list = vec![org("o1", "Contoso Pharmaceuticals")];
        let score = key_similarity(
            &organization_name_key("Contoso"),
            &organization_name_key("Contoso Pharmaceuticals"),
        );
        let at = computed("t1", "Contoso", &list, score);
        assert_eq!(at.state, MatchState::Suggested);
        assert_eq!(at.suggestions[0].score, score);
        let above = computed("t1", "Contoso", &list, score.next_up());
        assert_eq!(above.state, MatchState::Unmatched);
        // And the real threshold sits where the tests of similarity put it.
        let near = match_organization("t1", "Contoso", &list, None);
        assert_eq!(near.state, MatchState::Suggested, "{score}");
    }

    #[test]
    fn stored_accept_or_change_wins_over_the_names() {
        for action in [
            ReviewAction::Accept("o-northwind".into()),
            ReviewAction::Change("o-northwind".into()),
        ] {
            let d = decision(action);
            let m = match_organization("t1", "Contoso", &orgs(), Some(&d));
            assert_eq!(m.state, MatchState::Matched);
            assert_eq!(
                m.organization,
                Some(org("o-northwind", "Northwind Traders"))
            );
            assert_eq!(stale_decision(&d, &orgs()), None);
        }
    }

    #[test]
    fn stale_decision_falls_back_to_the_computed_match() {
        let d = decision(ReviewAction::Change("o-gone".into()));
        let m = match_organization("t1", "Contoso", &orgs(), Some(&d));
        assert_eq!(m, match_organization("t1", "Contoso", &orgs(), None));
        assert_eq!(m.state, MatchState::Matched);
        assert_eq!(stale_decision(&d, &orgs()), Some("o-gone"));

        let d = decision(ReviewAction::Accept("o-gone".into()));
        let m = match_organization("t1", "Woodgrove", &orgs(), Some(&d));
        assert_eq!(m.state, MatchState::Unmatched);
        assert_eq!(stale_decision(&d, &orgs()), Some("o-gone"));

        assert_eq!(
            stale_decision(&decision(ReviewAction::Ignore), &orgs()),
            None
        );
        assert_eq!(
            stale_decision(&decision(ReviewAction::Create), &orgs()),
            None
        );
    }

    #[test]
    fn stored_ignore_keeps_candidates_visible() {
        let d = decision(ReviewAction::Ignore);
        let m = match_organization("t1", "Contoso", &orgs(), Some(&d));
        assert_eq!(m.state, MatchState::Ignored);
        assert_eq!(m.organization, None);
        // The exact match becomes a 1.0 suggestion.
        assert_eq!(ids(&m), ["o-contoso"]);
        assert_eq!(m.suggestions[0].score, 1.0);

        let m = match_organization("t1", "Contosso", &orgs(), Some(&d));
        assert_eq!(m.state, MatchState::Ignored);
        assert_eq!(ids(&m)[0], "o-contoso");

        let m = match_organization("t1", "Woodgrove", &orgs(), Some(&d));
        assert_eq!(m.state, MatchState::Ignored);
        assert!(m.suggestions.is_empty());
    }

    #[test]
    fn stored_create_is_a_leftover_and_computes() {
        let d = decision(ReviewAction::Create);
        let mut list = orgs();
        let before = match_organization("t1", "Woodgrove Bank", &list, Some(&d));
        assert_eq!(before.state, MatchState::Unmatched);
        // The create went through before the decision was replaced: found by name.
        list.push(org("o-new", "Woodgrove Bank"));
        let after = match_organization("t1", "Woodgrove Bank", &list, Some(&d));
        assert_eq!(after.state, MatchState::Matched);
        assert_eq!(after.organization.unwrap().id, "o-new");
    }

    fn stored(d: Result<Decided, ReviewError>) -> (ReviewAction, OrganizationMatch) {
        match d {
            Ok(Decided::Store { action, result }) => (action, result),
            other => panic!("expected Store, got {other:?}"),
        }
    }

    #[test]
    fn accept_a_suggestion() {
        let current = match_organization("t1", "Contosso", &orgs(), None);
        let (action, result) = stored(decide(
            &current,
            &orgs(),
            &ReviewAction::Accept("o-pharma".into()),
        ));
        assert_eq!(action, ReviewAction::Accept("o-pharma".into()));
        assert_eq!(result.state, MatchState::Matched);
        assert_eq!(
            result.organization,
            Some(org("o-pharma", "Contoso Pharmaceuticals"))
        );
        assert!(result.suggestions.is_empty());
        assert_eq!(result.tenant_key, "t1");
    }

    #[test]
    fn accept_confirms_the_current_match() {
        let current = match_organization("t1", "Contoso", &orgs(), None);
        let (_, result) = stored(decide(
            &current,
            &orgs(),
            &ReviewAction::Accept("o-contoso".into()),
        ));
        assert_eq!(result.organization.unwrap().id, "o-contoso");
    }

    #[test]
    fn accept_from_ignored_with_candidates() {
        let d = decision(ReviewAction::Ignore);
        let current = match_organization("t1", "Contosso", &orgs(), Some(&d));
        let (_, result) = stored(decide(
            &current,
            &orgs(),
            &ReviewAction::Accept("o-contoso".into()),
        ));
        assert_eq!(result.state, MatchState::Matched);
    }

    #[test]
    fn accept_refuses_what_was_not_offered() {
        let current = match_organization("t1", "Contosso", &orgs(), None);
        let err = decide(
            &current,
            &orgs(),
            &ReviewAction::Accept("o-fabrikam".into()),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ReviewError::NotSuggested {
                tenant: "t1".into(),
                id: "o-fabrikam".into()
            }
        );
        assert!(err.to_string().contains("o-fabrikam"), "{err}");
        assert!(err.to_string().contains("change"), "{err}");

        let unmatched = match_organization("t1", "Woodgrove", &orgs(), None);
        assert!(matches!(
            decide(
                &unmatched,
                &orgs(),
                &ReviewAction::Accept("o-contoso".into())
            ),
            Err(ReviewError::NotSuggested { .. })
        ));
    }

    #[test]
    fn accept_refuses_a_suggestion_that_is_gone() {
        let current = match_organization("t1", "Contosso", &orgs(), None);
        let fewer: Vec<_> = orgs().into_iter().filter(|o| o.id != "o-contoso").collect();
        let err = decide(&current, &fewer, &ReviewAction::Accept("o-contoso".into())).unwrap_err();
        assert_eq!(
            err,
            ReviewError::UnknownOrganization {
                id: "o-contoso".into()
            }
        );
        assert_eq!(err.to_string(), "organization o-contoso does not exist");
    }

    #[test]
    fn change_to_any_existing_organization() {
        for current in [
            match_organization("t1", "Contoso", &orgs(), None),
            match_organization("t1", "Contosso", &orgs(), None),
            match_organization("t1", "Woodgrove", &orgs(), None),
            match_organization(
                "t1",
                "Woodgrove",
                &orgs(),
                Some(&decision(ReviewAction::Ignore)),
            ),
        ] {
            let (action, result) = stored(decide(
                &current,
                &orgs(),
                &ReviewAction::Change("o-fabrikam".into()),
            ));
            assert_eq!(action, ReviewAction::Change("o-fabrikam".into()));
            assert_eq!(result.state, MatchState::Matched);
            assert_eq!(
                result.organization,
                Some(org("o-fabrikam", "Fabrikam GmbH"))
            );
        }
    }

    #[test]
    fn change_refuses_an_unknown_organization() {
        let current = match_organization("t1", "Contoso", &orgs(), None);
        let err = decide(&current, &orgs(), &ReviewAction::Change("o-nope".into())).unwrap_err();
        assert_eq!(
            err,
            ReviewError::UnknownOrganization {
                id: "o-nope".into()
            }
        );
    }

    #[test]
    fn ignore_is_always_allowed() {
        for name in ["Contoso", "Contosso", "Woodgrove"] {
            let current = match_organization("t1", name, &orgs(), None);
            let (action, result) = stored(decide(&current, &orgs(), &ReviewAction::Ignore));
            assert_eq!(action, ReviewAction::Ignore);
            assert_eq!(result.state, MatchState::Ignored);
            assert_eq!(result.organization, None);
            assert_eq!(
                result,
                match_organization("t1", name, &orgs(), Some(&decision(ReviewAction::Ignore)))
            );
        }
    }

    #[test]
    fn create_when_nothing_matches() {
        let current = match_organization("t1", "  Woodgrove Bank ", &orgs(), None);
        assert_eq!(current.state, MatchState::Unmatched);
        assert_eq!(
            decide(&current, &orgs(), &ReviewAction::Create),
            Ok(Decided::Create {
                name: "Woodgrove Bank".into()
            })
        );
        let ignored = match_organization(
            "t1",
            "Woodgrove Bank",
            &orgs(),
            Some(&decision(ReviewAction::Ignore)),
        );
        assert!(matches!(
            decide(&ignored, &orgs(), &ReviewAction::Create),
            Ok(Decided::Create { .. })
        ));
    }

    #[test]
    fn create_refused_when_matched_names_the_match() {
        let current = match_organization("t1", "Contoso", &orgs(), None);
        let err = decide(&current, &orgs(), &ReviewAction::Create).unwrap_err();
        assert_eq!(
            err,
            ReviewError::WouldDuplicate {
                tenant: "t1".into(),
                candidates: vec![org("o-contoso", "Contoso Ltd")]
            }
        );
        let text = err.to_string();
        assert!(text.contains("\"Contoso Ltd\" (o-contoso)"), "{text}");
        assert!(text.contains("t1"), "{text}");
    }

    #[test]
    fn create_refused_when_suggested_names_every_candidate() {
        let current = match_organization("t1", "Contosso", &orgs(), None);
        let Err(ReviewError::WouldDuplicate { candidates, .. }) =
            decide(&current, &orgs(), &ReviewAction::Create)
        else {
            panic!("create must be refused");
        };
        let expected: Vec<_> = current
            .suggestions
            .iter()
            .map(|s| s.organization.clone())
            .collect();
        assert_eq!(candidates, expected);
        let ignored = match_organization(
            "t1",
            "Contosso",
            &orgs(),
            Some(&decision(ReviewAction::Ignore)),
        );
        assert!(matches!(
            decide(&ignored, &orgs(), &ReviewAction::Create),
            Err(ReviewError::WouldDuplicate { .. })
        ));
    }

    #[test]
    fn create_refused_when_an_exact_name_appeared_since() {
        let current = match_organization("t1", "Woodgrove Bank", &orgs(), None);
        let mut list = orgs();
        list.push(org("o-wg", "Woodgrove Bank Ltd."));
        let err = decide(&current, &list, &ReviewAction::Create).unwrap_err();
        assert!(err.to_string().contains("o-wg"), "{err}");
    }

    #[test]
    fn create_refused_without_a_tenant_name() {
        for name in ["", "  ", "..."] {
            let current = match_organization("t1", name, &orgs(), None);
            assert_eq!(
                decide(&current, &orgs(), &ReviewAction::Create),
                Err(ReviewError::NoTenantName {
                    tenant: "t1".into()
                }),
                "{name:?}"
            );
        }
    }

    #[test]
    fn created_stores_change_to_the_new_organization() {
        let (action, result) = stored(Ok(created(
            "t1",
            "Woodgrove Bank",
            org("o-new", "Woodgrove Bank"),
        )));
        assert_eq!(action, ReviewAction::Change("o-new".into()));
        assert_eq!(result.state, MatchState::Matched);
        assert_eq!(result.organization, Some(org("o-new", "Woodgrove Bank")));
        assert_eq!(result.tenant_name, "Woodgrove Bank");
        // Replaying the stored decision gives the same match.
        let mut list = orgs();
        list.push(org("o-new", "Woodgrove Bank"));
        let replay = match_organization("t1", "Woodgrove Bank", &list, Some(&decision(action)));
        assert_eq!(replay, result);
    }
}
