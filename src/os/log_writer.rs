//! Where log lines wait for stdout: a bounded queue that a thread of its
//! own writes out, so the event loop never waits on whoever reads the log.
//!
//! A reader that stops reading (`echo-server | less`, a terminal paused
//! with Ctrl+S, a slow SSH session) blocks `write(2)` on stdout. Making
//! stdout non-blocking is no way out: `O_NONBLOCK` belongs to the file
//! description, which the shell or terminal shares and would keep after
//! we exit. So the loop only appends to this queue (a lock nobody holds
//! for long) and a writer thread does the blocking writes.
//!
//! The queue holds at most [`QUEUE_BYTES`]; a line that does not fit is
//! dropped and counted, and so is a line whose write failed (a full disk,
//! a reader gone with `EPIPE`). The first line written after a loss is a
//! note saying how many were lost there, so the log shows every gap.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// Most bytes of log lines waiting for stdout; more are dropped.
pub const QUEUE_BYTES: usize = 1 << 20;

/// The most the writer puts in one write(2).
const CHUNK_BYTES: usize = 64 << 10;

/// Formats the note for `n` lines lost, in the log's format.
pub type NoteFormat = fn(u64) -> String;

enum Entry {
    Line(String),
    /// This many lines did not fit in the queue here.
    Gap(u64),
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Bytes of the lines in `entries`, newlines included.
    bytes: usize,
    /// The writer holds a batch taken from `entries`.
    writing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer: something was queued.
    queued: Condvar,
    /// Lines lost so far, for `/metrics` and the Summary.
    dropped: AtomicU64,
    note: NoteFormat,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// Woken whenever the writer has written everything queued: the event
/// loop waits on it, beside its signals, for the last lines at exit.
static DRAINED_WAKER: OnceLock<mio::Waker> = OnceLock::new();

/// Starts the writer thread; later calls do nothing. Lines pushed before
/// it are written as soon as it runs.
pub fn start(note: NoteFormat) -> io::Result<()> {
    if SHARED
        .set(Shared {
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            dropped: AtomicU64::new(0),
            note,
        })
        .is_err()
    {
        return Ok(());
    }
    let shared = SHARED.get().expect("set above");
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_forever(shared, &mut Stdout))?;
    Ok(())
}

/// Queues `line` (without its newline) for stdout; never blocks on the
/// reader. A line that does not fit is dropped and counted.
pub fn push(line: String) {
    queue(line, false);
}

/// As [`push`], but the line is queued even past the bound: for the few
/// lines a user must see (the banner, the Summary), which a flood of log
/// lines must not crowd out.
pub fn push_always(line: String) {
    queue(line, true);
}

fn queue(line: String, always: bool) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let mut q = lock(&shared.queue);
    if !enqueue(&mut q, line, always) {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // A writer in the middle of a batch looks again before it sleeps: no
    // wake-up (a system call) per line while lines come fast.
    if !q.writing {
        shared.queued.notify_one();
    }
}

/// Lines lost so far: dropped for want of room, or failed to write.
pub fn dropped() -> u64 {
    SHARED
        .get()
        .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// True when every queued line has been written (or lost and counted).
pub fn is_drained() -> bool {
    SHARED.get().map_or(true, |shared| {
        let q = lock(&shared.queue);
        !q.writing && q.entries.is_empty()
    })
}

/// From now on `waker` is woken each time the queue drains; for a `Poll`
/// that waits for the last lines (see [`is_drained`]). Set once.
pub fn wake_when_drained(waker: mio::Waker) {
    let _ = DRAINED_WAKER.set(waker);
}

/// Appends `line` unless the queue is full (or `always`); a refused line
/// widens the gap at the queue's end. True if queued.
fn enqueue(q: &mut Queue, line: String, always: bool) -> bool {
    let len = line.len() + 1;
    if q.bytes + len > QUEUE_BYTES && !always {
        match q.entries.back_mut() {
            Some(Entry::Gap(n)) => *n += 1,
            _ => q.entries.push_back(Entry::Gap(1)),
        }
        return false;
    }
    q.bytes += len;
    q.entries.push_back(Entry::Line(line));
    true
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Nothing panics while holding it; if something did, the queue is
    // still a valid queue.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the writer's bytes go: stdout, or a test's stand-in.
trait Sink {
    /// Writes all of `buf`, blocking as long as it takes; on failure, the
    /// error and how many bytes were written before it.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), (io::Error, usize)>;
}

struct Stdout;

impl Sink for Stdout {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), (io::Error, usize)> {
        let fd = rustix::stdio::stdout();
        let mut written = 0;
        while written < buf.len() {
            match rustix::io::write(fd, &buf[written..]) {
                Ok(0) => return Err((io::ErrorKind::WriteZero.into(), written)),
                Ok(n) => written += n,
                Err(rustix::io::Errno::INTR) => {}
                // stdout may come non-blocking from whoever started us: wait
                // for room here, on this thread, as a blocking write would.
                Err(rustix::io::Errno::AGAIN) => {
                    let mut fds = [rustix::event::PollFd::new(
                        &fd,
                        rustix::event::PollFlags::OUT,
                    )];
                    let _ = rustix::event::poll(&mut fds, None);
                }
                Err(e) => return Err((e.into(), written)),
            }
        }
        Ok(())
    }
}

/// The writer thread: takes everything queued, writes it, repeats.
fn write_forever(shared: &Shared, sink: &mut impl Sink) -> ! {
    // A write to a reader that went away must fail with EPIPE, counted
    // like any failed write, not end the server by SIGPIPE.
    crate::os::sigpipe::hold();
    let mut batch = Batch::default();
    let mut lost = 0;
    loop {
        let entries = {
            let mut q = lock(&shared.queue);
            q.writing = false;
            while q.entries.is_empty() {
                if let Some(waker) = DRAINED_WAKER.get() {
                    let _ = waker.wake();
                }
                q = shared.queued.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.writing = true;
            q.bytes = 0;
            std::mem::take(&mut q.entries)
        };
        let (unwritten, lines) = batch.write(lost, entries, shared.note, sink);
        lost = unwritten;
        shared.dropped.fetch_add(lines, Ordering::Relaxed);
    }
}

/// The bytes of one write, with where each line or note ends in them.
///
/// Written in chunks of at most [`CHUNK_BYTES`] through one buffer kept
/// for the thread's life: building a whole batch at once would leave the
/// writer's allocator holding as much memory as the largest backlog.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// (end offset, lines it stands for, whether it is a line of the log
    /// rather than a note about lost ones)
    ends: Vec<(usize, u64, bool)>,
    /// Lines lost and not yet reported by a note.
    unreported: u64,
    /// Log lines (not notes) lost by this batch's failed writes.
    lost_lines: u64,
}

impl Batch {
    /// Writes a note for `lost` earlier lines (if any), then `entries`.
    /// Returns the lines the next note must report (those this batch
    /// lost, notes' counts included) and how many log lines it lost.
    fn write(
        &mut self,
        lost: u64,
        entries: VecDeque<Entry>,
        note: NoteFormat,
        sink: &mut impl Sink,
    ) -> (u64, u64) {
        self.unreported = lost;
        self.lost_lines = 0;
        for entry in entries {
            match entry {
                Entry::Line(line) => self.add(&line, 1, true, note, sink),
                Entry::Gap(n) => self.add(&note(n), n, false, note, sink),
            }
        }
        self.flush(sink);
        (self.unreported, self.lost_lines)
    }

    /// Appends `line`, writing out what the buffer holds first if it
    /// would not fit; a chunk after a loss opens with the note for it.
    fn add(
        &mut self,
        line: &str,
        stands_for: u64,
        is_line: bool,
        note: NoteFormat,
        sink: &mut impl Sink,
    ) {
        if !self.bytes.is_empty() && self.bytes.len() + line.len() >= CHUNK_BYTES {
            self.flush(sink);
        }
        if self.bytes.is_empty() && self.unreported > 0 {
            let lost = std::mem::take(&mut self.unreported);
            self.append(&note(lost), lost, false);
        }
        self.append(line, stands_for, is_line);
    }

    fn append(&mut self, line: &str, stands_for: u64, is_line: bool) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(CHUNK_BYTES);
        }
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
        self.ends.push((self.bytes.len(), stands_for, is_line));
    }

    /// Writes the buffer; what a failure did not write is lost: a line cut
    /// short too, as its tail is not in the log.
    fn flush(&mut self, sink: &mut impl Sink) {
        if self.bytes.is_empty() {
            return;
        }
        if let Err((_, written)) = sink.write_all(&self.bytes) {
            for &(end, stands_for, is_line) in &self.ends {
                if end > written {
                    self.unreported += stands_for;
                    self.lost_lines += u64::from(is_line);
                }
            }
        }
        self.bytes.clear();
        self.ends.clear();
        // One line longer than a chunk grew the buffer: give that back.
        self.bytes.shrink_to(CHUNK_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: u64) -> String {
        format!("NOTE {n}")
    }

    /// Takes `accept` bytes of each write, then fails it.
    struct Failing {
        accept: usize,
        got: Vec<u8>,
    }

    impl Sink for Failing {
        fn write_all(&mut self, buf: &[u8]) -> Result<(), (io::Error, usize)> {
            let n = self.accept.min(buf.len());
            self.got.extend_from_slice(&buf[..n]);
            if n == buf.len() {
                Ok(())
            } else {
                Err((io::Error::from_raw_os_error(28), n))
            }
        }
    }

    fn lines(ls: &[&str]) -> VecDeque<Entry> {
        ls.iter().map(|l| Entry::Line(l.to_string())).collect()
    }

    // Lines beyond the bound are refused and leave one gap that counts
    // them; the bound is in bytes, newlines included.
    #[test]
    fn a_full_queue_drops_lines_into_one_gap() {
        let mut q = Queue::default();
        let line = "x".repeat(QUEUE_BYTES / 4 - 1);
        for _ in 0..4 {
            assert!(enqueue(&mut q, line.clone(), false));
        }
        assert_eq!(q.bytes, QUEUE_BYTES);
        assert!(!enqueue(&mut q, String::new(), false));
        assert!(!enqueue(&mut q, "y".into(), false));
        assert!(matches!(q.entries.back(), Some(Entry::Gap(2))));
        assert_eq!(q.entries.len(), 5);
        // The Summary still goes in, after the gap.
        assert!(enqueue(&mut q, "Summary".into(), true));
        assert!(matches!(q.entries.back(), Some(Entry::Line(l)) if l == "Summary"));
    }

    // A gap is written as a note in its place, between the lines around it.
    #[test]
    fn a_gap_becomes_a_note_where_it_happened() {
        let mut sink = Failing {
            accept: usize::MAX,
            got: Vec::new(),
        };
        let mut entries = lines(&["a", "b"]);
        entries.push_back(Entry::Gap(7));
        entries.push_back(Entry::Line("c".into()));
        let out = Batch::default().write(0, entries, note, &mut sink);
        assert_eq!(out, (0, 0));
        assert_eq!(sink.got, b"a\nb\nNOTE 7\nc\n");
    }

    // A failed write loses the lines it did not finish (a cut line too);
    // the next write opens with a note counting them, and notes that were
    // lost pass their count on without being counted as log lines.
    #[test]
    fn lines_a_failed_write_lost_are_reported_by_the_next() {
        let mut batch = Batch::default();
        let mut sink = Failing {
            accept: 3,
            got: Vec::new(),
        };
        let mut entries = lines(&["aa", "bb"]);
        entries.push_back(Entry::Gap(5));
        let (report, lost_lines) = batch.write(0, entries, note, &mut sink);
        assert_eq!(sink.got, b"aa\n");
        assert_eq!((report, lost_lines), (6, 1));

        sink.accept = usize::MAX;
        let out = batch.write(report, lines(&["cc"]), note, &mut sink);
        assert_eq!(out, (0, 0));
        assert_eq!(sink.got, b"aa\nNOTE 6\ncc\n");
    }

    // A long batch goes out in chunks; a chunk that fails is reported by a
    // note that opens the next chunk, in place, not at the next batch.
    #[test]
    fn a_failed_chunk_is_noted_at_the_start_of_the_next() {
        struct FailSecond {
            calls: usize,
            got: Vec<u8>,
        }
        impl Sink for FailSecond {
            fn write_all(&mut self, buf: &[u8]) -> Result<(), (io::Error, usize)> {
                self.calls += 1;
                if self.calls == 2 {
                    return Err((io::Error::from_raw_os_error(28), 0));
                }
                self.got.extend_from_slice(buf);
                Ok(())
            }
        }
        let line = "x".repeat(CHUNK_BYTES / 2);
        let mut sink = FailSecond {
            calls: 0,
            got: Vec::new(),
        };
        let entries = lines(&[&line, "first", &line, "second", &line]);
        let out = Batch::default().write(0, entries, note, &mut sink);
        assert_eq!(out, (0, 2), "two log lines lost, already noted");
        assert_eq!(sink.calls, 3);
        let got = String::from_utf8(sink.got).unwrap();
        let shown: Vec<&str> = got
            .lines()
            .map(|l| if l == line { "X" } else { l })
            .collect();
        assert_eq!(shown, ["X", "first", "NOTE 2", "X"]);
    }
}
