//! The conformance suite every store back end runs: what the contract in the crate docs
//! promises, checked the same way on the in-memory store, SQLite and PostgreSQL.
//!
//! A back end's tests call [`conformance_suite!`](crate::conformance_suite) with an
//! expression that yields a future of `Option<Subject>`: a fresh, empty store of that back
//! end (None when the back end is not available here, after printing why — a PostgreSQL
//! suite without a server). The macro expands to one `#[tokio::test]` per case, so a
//! failure names its case.
//!
//! ```ignore
//! m365sync_store::conformance_suite!(crate::tests::subject());
//! ```
//!
//! Every case is a `pub async fn case(subject: &Subject)` that panics on a breach of the
//! contract, with a message naming what it expected; the fixtures (people, batches, the
//! two-tenant fixture of the read models) are written once, in [`fixtures`] (and those of
//! `serve`'s cases in [`serve_fixtures`]), which a back end's own tests use too.

mod batches;
mod feed;
pub mod fixtures;
mod jobs;
mod log;
mod notices;
mod onboarding;
mod read;
pub mod serve_fixtures;
mod service;
mod tenant;

use std::future::Future;
use std::pin::Pin;

use crate::StoreBackend;

pub use batches::*;
pub use feed::*;
pub use jobs::*;
pub use log::*;
pub use notices::*;
pub use onboarding::*;
pub use read::*;
pub use service::*;
pub use tenant::*;

/// A second handle on a subject's database.
pub type Reopen =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Box<dyn StoreBackend>> + Send>> + Send + Sync>;

/// A store under test.
pub struct Subject {
    /// The store, freshly created and empty.
    pub store: Box<dyn StoreBackend>,
    /// Opens another handle on the same database, as a second process would: it sees what
    /// was committed, and nothing else.
    reopen: Reopen,
    /// Kept until the case ends: a temporary directory, a PostgreSQL schema dropped on drop.
    _guard: Box<dyn Send + Sync>,
}

impl Subject {
    pub fn new(
        store: Box<dyn StoreBackend>,
        reopen: Reopen,
        guard: impl Send + Sync + 'static,
    ) -> Subject {
        Subject {
            store,
            reopen,
            _guard: Box::new(guard),
        }
    }

    /// Another handle on the same database (see [`Subject::new`]).
    pub async fn reopen(&self) -> Box<dyn StoreBackend> {
        (self.reopen)().await
    }
}

/// One `#[tokio::test]` per conformance case, each on a fresh subject from `$subject` (an
/// expression of type `impl Future<Output = Option<Subject>>`, evaluated once per case).
#[macro_export]
macro_rules! conformance_suite {
    ($subject:expr) => {
        $crate::conformance_suite!(@cases $subject;
            // Every case of this module, by name: keep the list complete (the crate's
            // tests check it).
            // tenant.rs
            checkpoints_are_read_back_replaced_and_cleared,
            find_people_answers_each_key_in_order,
            list_people_ids_pages_in_byte_order,
            find_direct_reports_finds_the_managers_people,
            an_update_moves_the_person_between_keys_and_managers,
            decisions_are_kept_per_tenant,
            a_read_only_store_refuses_writes,
            a_tenant_never_reads_or_writes_another_tenants_rows,
            // batches.rs
            deleting_a_person_deletes_their_mailbox_usage_and_memberships,
            replace_report_empties_only_the_report_it_names,
            groups_and_their_members_are_added_removed_and_deleted,
            a_link_rekeys_the_record_in_place,
            a_link_whose_previous_record_is_gone_inserts,
            a_link_onto_a_stored_id_leaves_one_record,
            a_failing_batch_undoes_back_to_the_last_checkpoint_at_most,
            a_value_a_store_cannot_hold_is_refused_naming_the_change,
            committed_batches_are_seen_by_another_handle,
            a_store_dropped_without_finish_keeps_its_checkpointed_batches,
            // log.rs
            a_successful_run_is_recorded_with_its_report,
            failed_runs_are_listed_newest_first_with_their_fields,
            organizations_are_created_with_fresh_ids_and_imported_once,
            an_import_is_all_or_nothing_and_names_the_row,
            a_locked_tenant_refuses_a_second_sync,
            the_lock_is_released_on_finish_and_on_drop,
            a_reset_empties_the_tenant_and_keeps_the_log_and_organizations,
            // read.rs
            export_people_by_tenant_upn_and_object_id,
            export_subscriptions_by_part_number_and_sku,
            export_licences_in_their_stored_order,
            export_usage_with_people_who_are_not_stored,
            export_mailboxes_with_people_who_are_not_stored,
            export_groups_with_their_member_counts,
            export_group_members_by_group_name_and_person,
            export_organizations_and_domains,
            an_export_stops_when_the_sink_breaks,
            licence_lines_count_assigned_and_inactive_licences,
            the_inactive_cutoff_day_counts_as_active,
            licences_without_usage_data_are_never_inactive,
            tenant_summary_counts_and_orders,
            tenants_with_people_are_listed_by_name,
            read_models_of_a_tenant_with_nothing_stored_are_empty,
            // jobs.rs
            enqueue_keeps_one_queued_job_per_tenant,
            a_manual_enqueue_merges_into_the_queued_job_and_makes_it_due,
            claims_take_manual_jobs_first_then_the_earliest_due_then_the_oldest,
            a_job_not_yet_due_is_not_claimed,
            a_paused_tenant_is_skipped_and_claimable_once_resumed,
            a_tenant_runs_one_job_at_a_time,
            the_per_app_and_global_limits_bound_running_jobs,
            a_lapsed_lease_is_claimed_again_by_another_worker_as_the_next_attempt,
            renewing_extends_the_lease,
            an_ended_job_keeps_its_outcome,
            a_released_job_is_queued_again_due_at_its_time,
            serving_tenants_adds_keeps_and_drops_them,
            jobs_are_listed_newest_first_by_state,
            // service.rs
            tenant_status_follows_leases_failures_attention_and_pauses,
            a_successful_run_clears_failures_and_attention,
            the_next_run_is_set_and_cleared,
            workers_join_refresh_and_are_listed_by_heartbeat,
            a_new_webhook_starts_at_the_end_of_the_feed,
            a_webhook_lease_is_held_by_one_worker_at_a_time,
            deliveries_move_the_cursor_and_failures_keep_their_error,
            // feed.rs
            committed_batches_append_their_events_in_commit_order,
            the_feed_is_read_by_tenant_and_paged_by_cursor,
            a_failing_batch_leaves_no_events,
            a_dropped_store_leaves_events_only_of_what_it_committed,
            a_reset_keeps_the_feed,
            interleaved_commits_of_two_tenants_get_distinct_ordered_cursors,
            // onboarding.rs
            a_consent_request_is_taken_once_as_it_was_put,
            a_state_already_held_is_refused,
            an_expired_consent_request_is_not_returned_and_is_gone,
            of_two_concurrent_takes_one_gets_the_request,
            registering_a_directory_again_replaces_its_row,
            a_name_another_directory_holds_is_refused,
            registered_tenants_are_listed_by_name,
            features_round_trip_as_they_were_given,
            a_registered_tenants_partner_round_trips,
            // notices.rs
            setting_notices_stores_them_and_appends_their_events,
            setting_the_same_notices_again_appends_nothing_and_keeps_their_time,
            a_new_stage_appends_one_event_and_takes_the_new_time,
            a_notice_left_out_is_deleted,
            notice_kinds_are_independent,
            notice_tenants_are_independent,
            notices_are_listed_by_tenant_kind_name_and_key,
            notice_events_take_their_place_among_batch_events_in_commit_order,
            a_refused_set_of_notices_changes_nothing,
            two_handles_setting_the_same_notices_at_once_raise_each_once,
            a_reset_keeps_the_notices,
        );
    };
    (@cases $subject:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                if let Some(subject) = $subject.await {
                    $crate::conformance::$case(&subject).await;
                }
            }
        )*
    };
}
