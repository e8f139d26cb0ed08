//! Reports reach the ledger through one writer per replica: the newest
//! record of each client waits in a map (a burst of reports from one client
//! is one write) and is written every flush interval, in pipelined batches
//! on the ledger's own connection. A failed write keeps what it had for the
//! next attempt, unless a newer report of the same client came in meanwhile.
//! Config writes and watches never wait on it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use veltrix_domain::{
    Namespace,
    fleet::{ClientId, ClientRecord, LedgerStore},
};
use veltrix_redis::RedisLedger;
use veltrix_server::{CancellationToken, ServingGate};

use crate::metric;

type Dirty = HashMap<(Namespace, ClientId), (ClientRecord, Instant)>;

/// The most entries one pipelined write carries.
const BATCH: usize = 1000;

#[derive(Default)]
pub struct Writer {
    dirty: Mutex<Dirty>,
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Dirty> {
        self.dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the client's newest record; the lag is counted from the oldest
    /// report not written yet.
    pub fn update(&self, record: &ClientRecord) {
        let key = (record.namespace.clone(), record.client_id.clone());
        let mut dirty = self.lock();
        let since = dirty.get(&key).map_or_else(Instant::now, |(_, since)| *since);
        dirty.insert(key, (record.clone(), since));
    }

    /// The client's newest record not written yet, if any.
    pub fn pending(&self, namespace: &Namespace, client_id: &ClientId) -> Option<ClientRecord> {
        self.lock().get(&(namespace.clone(), client_id.clone())).map(|(record, _)| record.clone())
    }

    /// Records waiting to be written (tests, the benchmark).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    /// Writes what is waiting every `interval` until shutdown, then once
    /// more.
    pub async fn run(
        self: Arc<Self>,
        ledger: ServingGate<RedisLedger>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut failures = 0u32;
        loop {
            let pause = interval.saturating_mul(2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => break,
            }
            failures = if self.flush(&ledger).await { 0 } else { failures.saturating_add(1) };
        }
        // Streams ending with the shutdown mark their clients disconnected.
        tokio::time::sleep(interval.min(Duration::from_millis(300))).await;
        self.flush(&ledger).await;
    }

    /// One pass; `false` if a write failed.
    async fn flush(&self, ledger: &ServingGate<RedisLedger>) -> bool {
        let Ok(ledger) = ledger.get() else { return true };
        let batch: Vec<_> = std::mem::take(&mut *self.lock()).into_values().collect();
        let mut ok = true;
        for chunk in batch.chunks(BATCH) {
            let records: Vec<ClientRecord> = chunk.iter().map(|(r, _)| r.clone()).collect();
            match ledger.put(&records).await {
                Ok(()) => {
                    metrics::counter!(metric::LEDGER_WRITES).increment(records.len() as u64);
                    for (_, since) in chunk {
                        metrics::histogram!(metric::LEDGER_LAG).record(since.elapsed().as_secs_f64());
                    }
                }
                Err(e) => {
                    ok = false;
                    metrics::counter!(metric::LEDGER_ERRORS).increment(1);
                    tracing::warn!(error = %e, entries = records.len(), "fleet ledger write failed; retrying");
                    let mut dirty = self.lock();
                    for (record, since) in chunk {
                        dirty
                            .entry((record.namespace.clone(), record.client_id.clone()))
                            .or_insert_with(|| (record.clone(), *since));
                    }
                }
            }
        }
        ok
    }
}
