//! The store's conditional semantics against DynamoDB Local: the same checks the in-memory
//! adapter's unit tests run (`nudge_shared::store::conformance`), so use-case tests on
//! `MemoryStore` speak for the DynamoDB adapter too.

use nudge_shared::store::conformance;
use nudge_tests::TestEnv;

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let env = TestEnv::new(concat!("store_", stringify!($check))).await;
            conformance::$check(&env.store).await;
        }
    )*};
}

conformance_tests!(
    nudges_are_planned_once_and_found_by_bucket_and_time,
    a_lease_decides_who_marks_the_outcome,
    failing_needs_the_lease_and_the_claim,
    retries_defers_and_cancels_move_only_pending_nudges,
    profiles_are_last_writer_wins,
    deadlines_are_listed_and_a_rezoned_stage_reopens,
    cap_reservations_are_versioned,
    suppression_follows_feedback,
    engagement_counts_first_occurrences,
    deadlines_and_raw_events_keep_the_first_or_newest_write,
    rollups_firsts_log_and_checkpoints_accumulate,
    a_rollup_counts_applying_events_once,
    a_count_creates_its_records_once,
    index_pages_contacts_and_the_pulse_read_back,
    agenda_tasks_are_scheduled_once_found_by_time_and_finished,
    erasing_a_contact_cancels_redacts_and_forgets_it,
    erasing_a_contact_leaves_their_address_name_and_comments_in_no_item,
);
