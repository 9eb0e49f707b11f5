//! Keeps the pin tracker in step with the pinset: every change consensus applies becomes a
//! tracker operation, and at start (or after falling behind) the whole pinset is compared
//! with what IPFS has pinned.

use std::ops::ControlFlow;
use std::sync::Arc;

use cairn_consensus::{Consensus, PinChange};
use cairn_state::{Pin, PinStore};
use cairn_tracker::{PinTracker, TrackerFilter, TrackerStatus};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Starts the sync task: a full pass first, then the change feed.
pub fn start(consensus: Arc<dyn Consensus>, tracker: PinTracker) -> JoinHandle<()> {
    // Subscribe before the full pass so no change made during it is missed.
    let mut changes = consensus.changes();
    tokio::spawn(async move {
        full_sync(&consensus, &tracker).await;
        loop {
            match changes.recv().await {
                Ok(PinChange::Pinned(pin)) => tracker.track(&pin),
                Ok(PinChange::Unpinned(cid)) => tracker.untrack(&cid),
                Err(RecvError::Lagged(n)) => {
                    warn!("the tracker missed {n} pinset changes; comparing the whole pinset again");
                    full_sync(&consensus, &tracker).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// Visits every pin of `store`, for the tracker's status walks. A long disk walk: the runtime
/// moves its other tasks off this thread meanwhile.
pub fn walk(store: &PinStore, visit: &mut dyn FnMut(Pin)) -> Result<(), String> {
    tokio::task::block_in_place(|| {
        store
            .for_each(|pin| {
                visit(pin);
                ControlFlow::Continue(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Queues every allocated pin IPFS does not have, in one pass over the pinset and one
/// `pin/ls` (pins already pinned cost nothing).
pub async fn full_sync(consensus: &Arc<dyn Consensus>, tracker: &PinTracker) {
    let store = consensus.state().clone();
    let mut queued = 0u64;
    let result = tracker
        .status_all(
            TrackerFilter::of(&[TrackerStatus::UnexpectedlyUnpinned]),
            |visit: &mut dyn FnMut(Pin)| walk(&store, visit),
            |status, pin| {
                if status.status == TrackerStatus::UnexpectedlyUnpinned
                    && let Some(pin) = pin
                {
                    tracker.track(pin);
                    queued += 1;
                }
            },
        )
        .await;
    match result {
        Ok(()) if queued > 0 => info!(queued, "pinset sync: queued the allocated pins IPFS does not have"),
        Ok(()) => {}
        Err(e) => warn!("pinset sync failed (will retry at the next recover): {e}"),
    }
}
