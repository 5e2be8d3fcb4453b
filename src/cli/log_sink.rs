//! Where log lines go: stderr, through a bounded queue and a thread of its own.
//!
//! Logging must never stop or crash sending. A closed pipe, a log file on a full disk or a
//! pipe nobody reads makes a write fail or block; here a failed write is dropped, a full
//! queue drops the line (counted, and the count written once lines get through again), and
//! only the writing thread ever waits on stderr. Owns no log format and no filter.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines held while stderr is slow; beyond this they are dropped, not waited for.
const QUEUE_LINES: usize = 4096;
/// How long the process waits at exit for queued lines to reach stderr.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// The shared end: cheap to clone, one per event writer.
#[derive(Clone)]
pub(super) struct LogSink {
    queue: SyncSender<Vec<u8>>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Lines queued and not yet written (or given up on).
    pending: AtomicUsize,
    /// Lines dropped because the queue was full.
    dropped: AtomicU64,
}

/// Waits (briefly) at exit for queued lines, so the last lines of a run are not lost.
pub struct FlushGuard {
    counts: Arc<Counts>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + FLUSH_WAIT;
        while self.counts.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl LogSink {
    /// Starts the writing thread on `out` (stderr). Without a thread (none can start),
    /// lines are dropped: logging is never a reason not to run.
    pub(super) fn start(out: impl Write + Send + 'static) -> (LogSink, FlushGuard) {
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let counts = Arc::new(Counts::default());
        let thread_counts = counts.clone();
        let _ = std::thread::Builder::new()
            .name("winback-log".into())
            .spawn(move || write_lines(lines, out, &thread_counts));
        (
            LogSink {
                queue,
                counts: counts.clone(),
            },
            FlushGuard { counts },
        )
    }

    fn send(&self, line: Vec<u8>) {
        self.counts.pending.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.pending.fetch_sub(1, Ordering::SeqCst);
                self.counts.dropped.fetch_add(1, Ordering::SeqCst);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counts.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// The writing thread: every line in order; a failed write is forgotten.
fn write_lines(lines: Receiver<Vec<u8>>, mut out: impl Write, counts: &Counts) {
    let mut reported = 0;
    for line in lines {
        let dropped = counts.dropped.load(Ordering::SeqCst);
        if dropped > reported {
            let note = format!(
                "{} log line(s) were dropped: stderr could not keep up\n",
                dropped - reported
            );
            if out.write_all(note.as_bytes()).is_ok() {
                reported = dropped;
            }
        }
        let _ = out.write_all(&line);
        let _ = out.flush();
        counts.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One event's text, queued whole when the formatter is done with it.
pub(super) struct LineWriter {
    line: Vec<u8>,
    sink: LogSink,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.sink.send(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            line: Vec::new(),
            sink: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stderr that takes `allowed` writes, then blocks each later one until released.
    struct Gate {
        written: Arc<Mutex<Vec<u8>>>,
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, ready) = &*self.open;
            let mut open = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !*open {
                open = ready.wait(open).unwrap_or_else(|e| e.into_inner());
            }
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_stderr_drops_lines_instead_of_blocking_and_counts_them() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let gate = Gate {
            written: written.clone(),
            open: open.clone(),
        };
        let (sink, guard) = LogSink::start(gate);
        // Far more than the queue holds: none of these may block.
        for i in 0..QUEUE_LINES * 2 {
            let mut w = sink.make_writer_for_test();
            let _ = writeln!(w, "line {i}");
        }
        assert!(sink.counts.dropped.load(Ordering::SeqCst) >= QUEUE_LINES as u64 - 1);
        {
            let (lock, ready) = &*open;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
            ready.notify_all();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.counts.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut w = sink.make_writer_for_test();
        let _ = writeln!(w, "after");
        drop(w);
        drop(guard);
        let text = String::from_utf8_lossy(&written.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned();
        assert!(text.contains("line 0\n"), "{text}");
        assert!(text.contains("were dropped"), "{text}");
        assert!(text.ends_with("after\n"), "{text}");
    }

    #[test]
    fn a_failing_stderr_is_ignored() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
        }
        let (sink, guard) = LogSink::start(Broken);
        for _ in 0..10 {
            let _ = writeln!(sink.make_writer_for_test(), "lost");
        }
        drop(guard);
        assert_eq!(sink.counts.pending.load(Ordering::SeqCst), 0);
    }

    impl LogSink {
        fn make_writer_for_test(&self) -> LineWriter {
            tracing_subscriber::fmt::MakeWriter::make_writer(self)
        }
    }
}
