//! Off Linux there is no `SCHED_IDLE` to move the indexer in and out of:
//! the same interface, doing nothing (see `priority.rs` for why Linux does).

/// The indexer's priority (a no-op here).
pub(super) struct IndexerPriority;

impl IndexerPriority {
    pub fn probe() -> IndexerPriority {
        IndexerPriority
    }

    pub fn start(&self) {}

    pub fn urgent(&self) {}

    pub fn served(&self, _n: u64) {}
}

/// The checkpointer's priority (a no-op here).
pub(super) fn idle_forever() {}
