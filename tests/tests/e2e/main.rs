//! The integration tests, one binary (one link of the AWS SDK, not one per file): each module
//! is a suite. Most need the local stack (`make test` starts it) and run with
//! `--test-threads=1`; `cargo test -p calsync-e2e --test e2e caldav_sync::` runs one suite.

mod account_calendars;
mod api;
mod api_links;
mod batches;
mod big_events;
mod brakes;
mod caldav_conflicts;
mod caldav_quirks;
mod caldav_sync;
mod calsync_copies;
mod demo;
mod faults;
mod google_accounts;
mod google_adapter;
mod google_consent;
mod google_disconnect;
mod google_emulator;
mod google_emulator_series;
mod google_oauth_emulator;
mod google_push;
mod google_sync;
mod graph_emulator;
mod ics_and_autosync;
mod incremental;
mod initial_listing;
mod lambda_invoke;
mod leases;
mod notifications;
mod outbound;
mod outlook_accounts;
mod outlook_sync;
mod own_events;
mod paging;
mod policies;
mod refresher;
mod remove_copies;
mod secrets;
mod settings_page;
mod soak;
mod transforms;
