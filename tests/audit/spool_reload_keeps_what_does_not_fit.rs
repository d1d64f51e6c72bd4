//! Spooled events that do not fit back in the buffer at start-up stay in
//! the spool for the next start instead of being deleted with their file.

use std::time::Duration;

use crate::support::audit::*;

#[tokio::test]
async fn spool_reload_keeps_events_that_do_not_fit_the_buffer() {
    let cse = stand_in_down().await;
    let spool = tempfile::tempdir().unwrap();
    let mut config = fast_config(&cse);
    config.spool_dir = Some(spool.path().to_path_buf());
    config.shutdown_grace = Duration::from_millis(200);
    config.batch.max_events = 5;
    config.buffer_events = 5;

    // Three shutdowns during the outage: three spool files of five events.
    // Each writes to a fresh directory (a start would reload the earlier
    // files), then its file joins the others.
    let all = ids("s", 15);
    for chunk in all.chunks(5) {
        let own = tempfile::tempdir().unwrap();
        let mut once = config.clone();
        once.spool_dir = Some(own.path().to_path_buf());
        let fwd = start(once).await;
        assert_eq!(post(&fwd.webhook, &event_list(chunk)).await.0, 200);
        assert_eq!(fwd.stop().await.spooled, 5);
        for file in std::fs::read_dir(own.path()).unwrap() {
            let file = file.unwrap();
            std::fs::rename(file.path(), spool.path().join(file.file_name())).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 3);
    assert_eq!(cse.stats().accepted_events, 0);

    // The API is back, but the buffer holds only five: each start reloads
    // what fits and leaves the rest on disk.
    cse.clear_script();
    for round in 1..=3u64 {
        let fwd = start(config.clone()).await;
        assert!(cse.wait_for_events(5 * round, PATIENCE).await);
        let report = fwd.stop().await;
        assert_eq!(report.spooled, 0);
        let left = std::fs::read_dir(spool.path()).unwrap().count() as u64;
        assert_eq!(left, 3 - round, "files not yet reloaded are kept");
    }
    assert_eq!(delivered_ids(&cse), all, "all fifteen, once, in order");
}
