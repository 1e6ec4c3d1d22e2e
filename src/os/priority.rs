//! Scheduling priority of the calling thread.

/// The nice value of background threads: the event loop (nice 0) then
/// preempts them as soon as it wakes, even when they share its CPU.
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread to [`BACKGROUND_NICE`] (Linux applies
/// `setpriority` to one thread when given its thread id). A refusal leaves
/// it as it was: the work still gets done, only without the guarantee.
pub fn lower_this_thread() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE);
}
