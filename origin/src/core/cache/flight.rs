//! Single flight: concurrent loads of one key share one execution and its result.
//!
//! Each load runs as its own task, so it completes (and leaves the table) even when every caller
//! waiting for it has gone away, and a background refresh is simply a load nobody awaits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::core::observability;

/// Why a load failed; shared by every caller that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(Arc<str>);

impl LoadError {
    /// An error with this message.
    pub fn from_message(message: impl Into<String>) -> Self {
        Self(Arc::from(message.into()))
    }
}

/// A load in progress; clone it to wait for it too.
pub type Flight<T> = Shared<BoxFuture<'static, Result<T, LoadError>>>;

/// Loads in progress, by key.
#[derive(Debug)]
pub struct Flights<T: Clone> {
    running: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self {
            running: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// The running load for `key`, or `load` started as a new task. The flag is `true` when an
    /// existing load was joined.
    pub fn join_or_start<F>(&self, key: &str, load: F) -> (Flight<T>, bool)
    where
        F: Future<Output = Result<T, LoadError>> + Send + 'static,
    {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(flight) = running.get(key) {
            return (flight.clone(), true);
        }
        let table = Arc::clone(&self.running);
        let owned_key = key.to_owned();
        // The load keeps the starting request's span, log labels and timings.
        let load = observability::carried(load);
        let task = tokio::spawn(async move {
            let result = load.await;
            table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&owned_key);
            result
        });
        let flight = async move {
            task.await
                .unwrap_or_else(|e| Err(LoadError::from_message(format!("load task failed: {e}"))))
        }
        .boxed()
        .shared();
        running.insert(key.to_owned(), flight.clone());
        (flight, false)
    }

    /// Whether a load for `key` is running.
    pub fn is_running(&self, key: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }
}
