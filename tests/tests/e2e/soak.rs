//! A fixed set of generated fault schedules (`make soak SCHEDULES=N` runs more): each seed
//! is a workload of user edits on Radicale, Xandikos, the hub (API) and, for some seeds,
//! Google, Outlook and a read-only ICS feed, interleaved with faults, then quiescence, then the invariant checks of
//! `calsync_e2e::soak` (convergence, duplicates, lost edits, quiet syncs, cursor loss,
//! mail-free writes, no secret in the logs). A failing seed prints
//! `CALSYNC_SEED=…`; `CALSYNC_SEED=<seed> cargo test -p calsync-e2e --test e2e soak::` replays it.
//! Needs the local stack.

#[tokio::test]
async fn a_hundred_fault_schedules_keep_the_invariants() {
    let ctx = calsync_e2e::local_ctx().await;
    let seeds: u64 = std::env::var("CALSYNC_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let report = calsync_e2e::soak::run_many(&ctx, 1, seeds, 1)
        .await
        .expect("schedules run");
    println!("{}", report.summary());
    assert!(
        report.violations.is_empty(),
        "{}\n{}",
        report.summary(),
        report.violations.join("\n")
    );
    assert!(report.schedules as u64 == seeds || std::env::var("CALSYNC_SEED").is_ok());
    assert!(
        report.faults.len() >= 12 || std::env::var("CALSYNC_SEED").is_ok(),
        "every kind of fault fired: {:?}",
        report.faults
    );
    assert!(
        report.ops.len() == 6 || std::env::var("CALSYNC_SEED").is_ok(),
        "user operations in every place: {:?}",
        report.ops
    );
}
