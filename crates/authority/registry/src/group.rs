//! Group commit for [`crate::Registry::enrol`].
//!
//! Every `enrol` call hands its enrolment to one writer task and waits on a
//! oneshot for the answer. The writer takes whatever has queued up while the
//! previous transaction was committing (up to [`MAX_BATCH`]) and writes it
//! as one transaction with a savepoint per enrolment: one durable commit
//! (one fsync) is shared by the whole group, while each caller still gets
//! its own `Ok` or `Err` and a failing enrolment leaves no trace.
//!
//! There is no artificial delay: a lone enrolment is committed at once; the
//! batches grow by themselves under load, while the disk is busy.
//!
//! An answer is sent only after COMMIT returned. If a caller stops waiting
//! (its future is dropped) after handing over its enrolment, the enrolment
//! may still be committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::RegistryError;
use crate::db::Db;
use crate::model::{Enrolment, GroupCommitStats};
use crate::store::enrol_many;

/// Most enrolments written in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// Enrolments that may wait for the writer before callers are held back.
const QUEUE: usize = 4 * MAX_BATCH;

type Reply = oneshot::Sender<Result<(), RegistryError>>;

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    enrolments: AtomicU64,
    largest_batch: AtomicU64,
}

/// Handle on the writer task; the task stops when the handle is dropped.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<(Enrolment, Reply)>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Spawns the writer on the current Tokio runtime.
    pub(crate) fn start(db: Db) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(db, rx, counters.clone()));
        Self { queue, counters }
    }

    /// Queues one enrolment and waits until it is committed or refused.
    pub(crate) async fn enrol(&self, e: Enrolment) -> Result<(), RegistryError> {
        let stopped = || RegistryError::Backend("enrol: the registry writer has stopped".into());
        let (tx, rx) = oneshot::channel();
        self.queue.send((e, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// The writer's counters so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            enrolments: self.counters.enrolments.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<(Enrolment, Reply)>, counters: Arc<Counters>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let items: Vec<&Enrolment> = jobs.iter().map(|(e, _)| e).collect();
        let n = items.len();
        let results = match enrol_many(&db, &items).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); n],
        };
        let n = n as u64;
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.enrolments.fetch_add(n, Ordering::Relaxed);
        counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        for ((_, reply), result) in jobs.drain(..).zip(results) {
            // The caller may have gone away; the result then goes unheard.
            let _ = reply.send(result);
        }
    }
}
