//! The prime checks of `--mode framed`, off the event loop: a fixed pool
//! of threads takes checks from a bounded queue, and hands each answer
//! back through a list the loop empties when the pool's [`Waker`] wakes
//! it (`WORKERS` token). The loop never computes one, and never waits for
//! one: a full queue is answered `busy` at once.
//!
//! A check carries its connection's token (key and generation) and a flag
//! the connection raises when it closes: a queued check for a closed
//! connection is skipped, a running one stops at its next look at the
//! flag, and an answer that arrives anyway finds no live token and is
//! dropped by the loop.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use mio::{Registry, Token, Waker};

use crate::logic::service::PrimeTest;

/// Checks waiting for a worker, per worker: past that, `busy`.
const QUEUED_PER_WORKER: usize = 64;

/// One check for a worker.
struct Job {
    token: Token,
    number: u64,
    cancelled: Arc<AtomicBool>,
}

/// A check's answer, for the connection with `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub token: Token,
    pub prime: bool,
}

/// The pool: its queue's sending end and the answers' list.
#[derive(Debug)]
pub struct Workers {
    jobs: SyncSender<Job>,
    done: Arc<Mutex<Vec<Done>>>,
    threads: usize,
}

impl Workers {
    /// Starts `threads` workers running `test`; their answers wake
    /// `registry`'s poll with `token`.
    pub fn start(
        threads: usize,
        test: PrimeTest,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Self> {
        let waker = Arc::new(Waker::new(registry, token)?);
        let (jobs, queue) = mpsc::sync_channel(threads * QUEUED_PER_WORKER);
        let queue = Arc::new(Mutex::new(queue));
        let done = Arc::new(Mutex::new(Vec::new()));
        for i in 0..threads {
            let (queue, done, waker) = (queue.clone(), done.clone(), waker.clone());
            thread::Builder::new()
                .name(format!("prime-{i}"))
                .spawn(move || work(&queue, &done, &waker, test))?;
        }
        Ok(Self {
            jobs,
            done,
            threads,
        })
    }

    /// How many threads check.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues a check for the connection with `token`; false when the
    /// queue is full.
    pub fn submit(&self, token: Token, number: u64, cancelled: &Arc<AtomicBool>) -> bool {
        let job = Job {
            token,
            number,
            cancelled: cancelled.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Moves the answers that came in into `into`.
    pub fn take_done(&self, into: &mut Vec<Done>) {
        into.append(&mut lock(&self.done));
    }
}

/// A lock that a panicked holder does not poison for the others: the list
/// is valid after any push.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A worker: checks until the pool is dropped (its queue disconnects).
fn work(queue: &Mutex<Receiver<Job>>, done: &Mutex<Vec<Done>>, waker: &Waker, test: PrimeTest) {
    // A long check must never hold the loop up, also where the two share
    // a CPU (one usable CPU, a pinned server).
    crate::os::priority::lower_this_thread();
    loop {
        let next = lock(queue).recv();
        let Ok(job) = next else {
            return;
        };
        let cancelled = || job.cancelled.load(Ordering::Relaxed);
        if cancelled() {
            continue;
        }
        let Some(prime) = test.check(job.number, cancelled) else {
            continue;
        };
        lock(done).push(Done {
            token: job.token,
            prime,
        });
        // A failed wake leaves the answer listed: the next one brings it.
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Duration;

    // Answers come back through the waker with their token; a cancelled
    // check gives none; a full queue refuses.
    #[test]
    fn answers_wake_the_poll() {
        let mut poll = Poll::new().unwrap();
        let workers = Workers::start(1, PrimeTest::MillerRabin, poll.registry(), Token(7)).unwrap();
        let live = Arc::new(AtomicBool::new(false));
        let gone = Arc::new(AtomicBool::new(true));
        assert!(workers.submit(Token(1), 7, &gone));
        assert!(workers.submit(Token(2), 8, &live));
        let mut done = Vec::new();
        let mut events = Events::with_capacity(4);
        for _ in 0..100 {
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            workers.take_done(&mut done);
            if !done.is_empty() {
                break;
            }
        }
        assert!(events.iter().any(|e| e.token() == Token(7)));
        assert_eq!(
            done,
            [Done {
                token: Token(2),
                prime: false
            }]
        );
    }
}
