//! SIGPIPE kept blocked on a thread while it splices into sockets.
//!
//! `splice(2)` into a socket has no `MSG_NOSIGNAL`: writing to a peer that
//! has gone makes the kernel raise SIGPIPE, and both binaries keep
//! SIGPIPE's default action, which ends the process (so that printing to
//! a closed stdout ends it quietly, see
//! [`crate::os::signal::restore_default_sigpipe`]). A splicing thread must
//! therefore have SIGPIPE blocked.
//!
//! Blocking and unblocking around each splice cost two system calls per
//! call: as many as the splices themselves on a streaming connection. So
//! [`hold`] blocks it once, at a thread's first splice, and leaves it
//! blocked; a SIGPIPE raised meanwhile only stays pending. [`release`]
//! gives the old mask back, after taking any pending SIGPIPE off, so it is
//! never delivered. The log's writer thread ([`crate::os::log_writer`]) holds
//! SIGPIPE for good: a reader of the log that went away makes its writes
//! fail with `EPIPE`, counted as dropped lines, instead of ending the
//! server. The bench client's event loop releases before each line it
//! prints, so that `echo-client … | head` ends quietly.

use std::cell::Cell;

thread_local! {
    /// `None`: not held. `Some(true)`: held, blocked by [`hold`], so
    /// [`release`] unblocks it. `Some(false)`: held, but the thread had
    /// SIGPIPE blocked already, which [`release`] leaves as it was.
    static HELD: Cell<Option<bool>> = const { Cell::new(None) };
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write into the set they are
    // given, which is a valid local; zeroed memory is a valid sigset_t to
    // start from, and SIGPIPE is a valid signal number, so neither fails.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

/// Blocks SIGPIPE on the calling thread until [`release`]; a system call
/// the first time only.
pub fn hold() {
    HELD.with(|held| {
        if held.get().is_some() {
            return;
        }
        let set = sigpipe_set();
        // SAFETY: pthread_sigmask reads the valid local `set` and writes the
        // old mask into the valid local `previous`; SIG_BLOCK with a valid
        // set cannot fail, and it changes only this thread's mask.
        // sigismember reads `previous`, and SIGPIPE is a valid signal.
        let was_blocked = unsafe {
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            libc::sigismember(&previous, libc::SIGPIPE) == 1
        };
        held.set(Some(!was_blocked));
    });
}

/// Gives back what [`hold`] took: any SIGPIPE raised meanwhile is
/// discarded, then SIGPIPE is unblocked unless the thread had blocked it
/// itself. Nothing (no system call) when not held.
pub fn release() {
    HELD.with(|held| {
        let Some(unblock) = held.take() else {
            return;
        };
        let set = sigpipe_set();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: sigtimedwait reads the valid `set` and `zero`; the info
        // pointer may be null. With a zero timeout it never blocks, and
        // with SIGPIPE blocked it only dequeues a pending SIGPIPE (or
        // returns EAGAIN when there is none, which is fine). One pending
        // SIGPIPE stands for any number raised: standard signals do not
        // queue. pthread_sigmask then reads the valid `set` and changes
        // only this thread's mask.
        unsafe {
            libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
            if unblock {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn mask_has_sigpipe() -> bool {
        // SAFETY: pthread_sigmask with a null new set only writes the
        // current mask into the valid local; sigismember reads it.
        unsafe {
            let mut current: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
            libc::sigismember(&current, libc::SIGPIPE) == 1
        }
    }

    /// Whether a SIGPIPE waits, blocked, on this thread or the process.
    pub(crate) fn sigpipe_pending() -> bool {
        // SAFETY: sigpending and sigismember only touch the local set.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        }
    }

    fn raise_sigpipe_on_this_thread() {
        // SAFETY: pthread_kill to the calling thread with a valid signal;
        // SIGPIPE is blocked by the caller, so it only becomes pending.
        unsafe {
            libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE);
        }
    }

    // A SIGPIPE raised while held stays pending, and release takes it off
    // before unblocking: delivered, it would end the process.
    #[test]
    fn release_discards_what_was_raised_while_held() {
        release(); // a test run earlier on this thread may have held it
        assert!(!mask_has_sigpipe());
        hold();
        hold(); // held already: nothing more to undo
        assert!(mask_has_sigpipe());
        raise_sigpipe_on_this_thread();
        assert!(sigpipe_pending());
        release();
        assert!(!sigpipe_pending());
        assert!(!mask_has_sigpipe(), "release left SIGPIPE blocked");
        release(); // not held: nothing to do
        assert!(!mask_has_sigpipe());
    }

    // A thread that blocked SIGPIPE itself keeps it blocked.
    #[test]
    fn release_keeps_a_block_the_thread_had() {
        release(); // a test run earlier on this thread may have held it
        let set = sigpipe_set();
        // SAFETY: blocks SIGPIPE on this test thread only.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        hold();
        release();
        assert!(mask_has_sigpipe(), "release undid the thread's own block");
        // SAFETY: as above, unblocking.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}
