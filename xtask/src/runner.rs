//! Running QEMU with the serial console on a pipe and waiting for lines.
//!
//! Durations given here are deadlines for waiting, never assertions about how
//! fast something happened: TCG speed depends on the machine's load.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;

use crate::qemu::QemuLock;
use crate::scenario::{QemuCommand, Scenario, SerialMode};

/// How many lines of output an error message shows.
pub const TAIL_LINES: usize = 60;
/// QEMU's own stderr lines kept for error messages.
const STDERR_KEEP: usize = 40;

/// Something a console line can match: a substring (`&str`, `String`) or a
/// [`Regex`].
pub trait LinePattern {
    fn matches_line(&self, line: &str) -> bool;
    /// How the pattern is shown in error messages.
    fn describe(&self) -> String;
}

impl LinePattern for str {
    fn matches_line(&self, line: &str) -> bool {
        line.contains(self)
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LinePattern for String {
    fn matches_line(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LinePattern for Regex {
    fn matches_line(&self, line: &str) -> bool {
        self.is_match(line)
    }
    fn describe(&self) -> String {
        format!("/{}/", self.as_str())
    }
}

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    stderr: VecDeque<String>,
    /// QEMU closed its stdout: no more lines will come.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    log: Mutex<Log>,
    cond: Condvar,
    /// A client of [`QemuRun::console_socket`]: it gets every byte of the
    /// serial output, as read.
    tee: Mutex<Option<std::os::unix::net::UnixStream>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A reader thread that panicked while holding the lock leaves the
        // data intact (lines are pushed whole), so poisoning is ignored.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running QEMU whose first UART is on a pipe. Killed when dropped.
pub struct QemuRun {
    child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    /// Index of the first line `expect` has not consumed yet.
    cursor: usize,
    /// Patterns that fail any wait as soon as a line matches them.
    fail_on: Vec<Regex>,
    command_line: String,
    /// Keeps the temporary files (device tree) alive while QEMU runs.
    _command: QemuCommand,
    /// Declared last: released only after QEMU is gone (see `Drop`).
    _lock: QemuLock,
}

fn echo_enabled() -> bool {
    std::env::var("BLINK_ECHO").is_ok_and(|v| v == "1")
}

/// Reads `source` line by line into the log (via `push`); `\r\n` and bare
/// `\n` both end a line, invalid UTF-8 is replaced rather than fatal.
fn spawn_reader<R: Read + Send + 'static>(
    source: R,
    shared: Arc<Shared>,
    prefix: &'static str,
    push: fn(&mut Log, String),
    closes: bool,
) -> JoinHandle<()> {
    let echo = echo_enabled();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // The serial output (the reader that `closes`), not
                    // QEMU's stderr, goes to a console_socket client; one
                    // that went away is dropped by its own thread.
                    if closes {
                        if let Some(t) = shared
                            .tee
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .as_mut()
                        {
                            let _ = t.write_all(&buf);
                        }
                    }
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if echo {
                        // Written to the handle, not with eprintln!, which
                        // libtest would capture until the test ends.
                        let _ = writeln!(std::io::stderr().lock(), "{prefix}{line}");
                    }
                    push(&mut shared.lock(), line);
                    shared.cond.notify_all();
                }
            }
        }
        if closes {
            shared.lock().closed = true;
            shared.cond.notify_all();
        }
    })
}

impl QemuRun {
    /// Prepares `scenario` with the serial port on a pipe and starts it.
    pub fn start(scenario: &Scenario) -> Result<Self> {
        let lock = QemuLock::acquire()?;
        let command = scenario.prepare_locked(SerialMode::Pipe, &lock)?;
        Self::spawn_locked(command, lock)
    }

    /// Starts a prepared command. It should use [`SerialMode::Pipe`].
    pub fn spawn(command: QemuCommand) -> Result<Self> {
        Self::spawn_locked(command, QemuLock::acquire()?)
    }

    /// Starts a prepared command for a caller already holding the QEMU
    /// lock (e.g. to time the run from the spawn, without the wait for the
    /// lock in it).
    pub fn spawn_locked(command: QemuCommand, lock: QemuLock) -> Result<Self> {
        let command_line = command.to_string();
        let mut child = command
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting QEMU: {command_line}"))?;
        let shared = Arc::new(Shared::default());
        let stdout = child.stdout.take().context("QEMU stdout not captured")?;
        let stderr = child.stderr.take().context("QEMU stderr not captured")?;
        let readers = vec![
            spawn_reader(stdout, shared.clone(), "", |log, l| log.lines.push(l), true),
            spawn_reader(
                stderr,
                shared.clone(),
                "qemu: ",
                |log, l| {
                    if log.stderr.len() == STDERR_KEEP {
                        log.stderr.pop_front();
                    }
                    log.stderr.push_back(l);
                },
                false,
            ),
        ];
        Ok(QemuRun {
            stdin: Arc::new(Mutex::new(child.stdin.take())),
            child,
            shared,
            readers,
            cursor: 0,
            fail_on: Vec::new(),
            command_line,
            _command: command,
            _lock: lock,
        })
    }

    /// Waits until a line at or after the cursor matches `pattern`, moves
    /// the cursor past it and returns it. So successive `expect`s assert an
    /// order. Fails (with the last lines of output) when `timeout` passes or
    /// QEMU exits first.
    pub fn expect<P: LinePattern + ?Sized>(
        &mut self,
        pattern: &P,
        timeout: Duration,
    ) -> Result<String> {
        // Lines are only appended, so each wake-up scans just the new ones.
        let mut scanned = self.cursor;
        let (index, line) = self.wait_until(timeout, &pattern.describe(), |lines| {
            let from = scanned;
            scanned = lines.len();
            lines[from..]
                .iter()
                .position(|l| pattern.matches_line(l))
                .map(|i| (from + i, lines[from + i].clone()))
        })?;
        self.cursor = index + 1;
        Ok(line)
    }

    /// Waits until `check`, given all lines so far, returns `Some`; for
    /// conditions on several lines in any order. `what` names the condition
    /// in the error. Does not move the cursor.
    pub fn wait_until<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&[String]) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.lock();
        let mut fail_scanned = 0;
        loop {
            let failed = log.lines[fail_scanned..]
                .iter()
                .find(|l| self.fail_on.iter().any(|re| re.is_match(l)))
                .cloned();
            fail_scanned = log.lines.len();
            if let Some(line) = failed {
                drop(log);
                bail!(
                    "fatal line while waiting for {what}: {line}\n{}",
                    self.report()
                );
            }
            if let Some(found) = check(&log.lines) {
                return Ok(found);
            }
            let now = Instant::now();
            let reason = if log.closed {
                drop(log);
                // stdout closes when QEMU exits; give the status a moment.
                let status = self.reap(Duration::from_secs(2));
                format!("QEMU exited ({status}) before {what} was seen")
            } else if now >= deadline {
                drop(log);
                format!("timed out after {timeout:?} waiting for {what}")
            } else {
                log = self
                    .shared
                    .cond
                    .wait_timeout(log, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            };
            return Err(anyhow!("{reason}\n{}", self.report()));
        }
    }

    fn reap(&mut self, timeout: Duration) -> String {
        match self.wait_exit(timeout) {
            Ok(status) => status.to_string(),
            Err(_) => "exit status unknown".to_string(),
        }
    }

    /// The command line and the last [`TAIL_LINES`] lines of output (and of
    /// QEMU's stderr), for error messages.
    pub fn report(&self) -> String {
        let log = self.shared.lock();
        let tail_start = log.lines.len().saturating_sub(TAIL_LINES);
        let mut out = format!("command: {}\n", self.command_line);
        out.push_str(&format!(
            "--- serial output: last {} of {} lines ---\n",
            log.lines.len() - tail_start,
            log.lines.len()
        ));
        for line in &log.lines[tail_start..] {
            out.push_str(line);
            out.push('\n');
        }
        if !log.stderr.is_empty() {
            out.push_str("--- QEMU stderr ---\n");
            for line in &log.stderr {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(
            "--- end --- (BLINK_ECHO=1 streams the output, BLINK_KEEP_TMP=1 keeps the device tree)",
        );
        out
    }

    /// From now on, every wait fails as soon as any line (earlier ones
    /// included) matches `pattern`: e.g. a hypervisor panic ends a test at
    /// once instead of at its deadline.
    pub fn fail_on(&mut self, pattern: Regex) {
        self.fail_on.push(pattern);
    }

    /// Replaces every [`fail_on`](Self::fail_on) pattern: for a test that
    /// provokes one of them on purpose (and checks it by itself).
    pub fn fail_only_on(&mut self, patterns: Vec<Regex>) {
        self.fail_on = patterns;
    }

    /// Every complete line so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// Lines so far matching `pattern`.
    pub fn find_all<P: LinePattern + ?Sized>(&self, pattern: &P) -> Vec<String> {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|l| pattern.matches_line(l))
            .cloned()
            .collect()
    }

    /// Lines consumed by `expect` so far are those before this index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Fails (with the output) if any line so far matches `pattern`.
    pub fn assert_absent<P: LinePattern + ?Sized>(&self, pattern: &P) -> Result<()> {
        if let Some(line) = self.find_all(pattern).into_iter().next() {
            bail!(
                "unexpected line matching {}: {line}\n{}",
                pattern.describe(),
                self.report()
            );
        }
        Ok(())
    }

    /// Sends bytes to the serial port (QEMU's stdin).
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let mut guard = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = guard.as_mut().context("QEMU stdin is closed")?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// Shares the serial port with a tool, the way a person's terminal and
    /// `blinkctl` share a board's only UART: a client of the Unix socket
    /// at `path` gets every output byte (the lines still go into this
    /// run's log) and its bytes go into the serial input, between what
    /// [`send`](Self::send) types. One client at a time.
    pub fn console_socket(&mut self, path: &std::path::Path) -> Result<()> {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("listening on {}", path.display()))?;
        let (shared, stdin) = (self.shared.clone(), self.stdin.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { break };
                *shared.tee.lock().unwrap_or_else(|e| e.into_inner()) = client.try_clone().ok();
                let mut buf = [0u8; 4096];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut guard = stdin.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(w) = guard.as_mut() else { return };
                    if w.write_all(&buf[..n]).and_then(|()| w.flush()).is_err() {
                        return;
                    }
                }
                *shared.tee.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        });
        Ok(())
    }

    /// Waits for QEMU to exit by itself (e.g. a guest powered the machine off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("QEMU still running after {timeout:?}\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills QEMU (if still running) and waits for it and the readers.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self.stdin.lock().unwrap_or_else(|e| e.into_inner()) = None;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for QemuRun {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!("cpu 1".matches_line("[hv] cpu 1 online"));
        assert!(!"cpu 2".matches_line("[hv] cpu 1 online"));
        assert!(String::from("online").matches_line("[hv] cpu 1 online"));
        let re = Regex::new(r"^\[hv\] cpu (\d+) online$").unwrap();
        assert!(re.matches_line("[hv] cpu 1 online"));
        assert!(!re.matches_line("x [hv] cpu 1 online"));
        assert_eq!(re.describe(), r"/^\[hv\] cpu (\d+) online$/");
    }
}
