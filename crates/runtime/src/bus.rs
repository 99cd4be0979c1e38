//! The event bus: every event is written to the event log first, which gives
//! it its id, then broadcast to in-process subscribers (SSE streams, later
//! the rules engine).
//!
//! Publishing is serialized so that broadcast order equals log order: a
//! subscriber that reconnects with `after_id` misses nothing and sees nothing
//! twice.

use std::sync::Arc;

use switchboard_core::time::now_ms;
use switchboard_core::{Event, NewEvent};
use switchboard_store::{Store, StoreError};
use tokio::sync::{Mutex, broadcast};

/// How many events a slow subscriber may fall behind before it is told it
/// lagged (it can catch up from the log).
const CHANNEL_CAPACITY: usize = 4096;

pub struct EventBus {
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
    order: Mutex<()>,
}

impl EventBus {
    pub fn new(store: Store) -> EventBus {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        EventBus {
            store,
            sender,
            order: Mutex::new(()),
        }
    }

    /// Persist and broadcast an event.
    pub async fn publish(&self, event: NewEvent) -> Result<Arc<Event>, StoreError> {
        let _order = self.order.lock().await;
        let stored = Arc::new(self.store.insert_event(&event, now_ms()).await?);
        tracing::debug!(id = stored.id, kind = %stored.kind, "event");
        // No subscribers is fine: the event is in the log.
        let _ = self.sender.send(stored.clone());
        Ok(stored)
    }

    /// Publish, logging instead of failing: for callers (status transitions,
    /// trigger events) that must not stop because the log is unavailable.
    pub async fn publish_or_log(&self, event: NewEvent) {
        let kind = event.kind.clone();
        if let Err(error) = self.publish(event).await {
            tracing::error!(%error, %kind, "could not record event");
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}
