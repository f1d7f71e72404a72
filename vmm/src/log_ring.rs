//! The hypervisor's recent log lines, for `log` on the maintenance link
//! and the shell: a fixed byte ring (in the image's bss, never the heap, so
//! the log neither counts as heap in use nor fragments it), newest lines
//! kept, the oldest dropped (and counted) first. Lines are written in
//! place through `core::fmt::Write` and ended with [`LogRing::end_line`].
use alloc::string::String;
use alloc::vec::Vec;

/// A line longer than this is cut (the rest of it is not kept).
pub const MAX_LINE: usize = 512;

pub struct LogRing<const N: usize> {
    buf: [u8; N],
    /// Index of the oldest byte held.
    start: usize,
    /// Bytes held: complete lines, each ending in `\n`, then the line
    /// being written.
    len: usize,
    /// Bytes of the line being written.
    line_len: usize,
    /// Lines dropped to make room since the start.
    pub dropped: u64,
}

impl<const N: usize> LogRing<N> {
    pub const fn new() -> Self {
        assert!(N > 2 * MAX_LINE, "the ring must hold more than a line");
        LogRing {
            buf: [0; N],
            start: 0,
            len: 0,
            line_len: 0,
            dropped: 0,
        }
    }

    fn put(&mut self, b: u8) {
        if self.len == N {
            self.drop_oldest();
        }
        self.buf[(self.start + self.len) % N] = b;
        self.len += 1;
    }

    /// The oldest complete line goes. There is one: the line being
    /// written is at most MAX_LINE bytes, less than the ring.
    fn drop_oldest(&mut self) {
        while self.len > 0 {
            let b = self.buf[self.start];
            self.start = (self.start + 1) % N;
            self.len -= 1;
            if b == b'\n' {
                break;
            }
        }
        self.dropped += 1;
    }

    /// Ends the line being written.
    pub fn end_line(&mut self) {
        self.put(b'\n');
        self.line_len = 0;
    }

    /// Every complete line, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for i in 0..self.len - self.line_len {
            match self.buf[(self.start + i) % N] {
                b'\n' => out.push(String::from_utf8_lossy(&core::mem::take(&mut cur)).into_owned()),
                b => cur.push(b),
            }
        }
        out
    }

    /// The last `n` complete lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let mut all = self.lines();
        all.drain(..all.len().saturating_sub(n));
        all
    }
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for LogRing<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.line_len == MAX_LINE {
                break;
            }
            // One record is one line.
            self.put(if b == b'\n' { b' ' } else { b });
            self.line_len += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    fn line<const N: usize>(r: &mut LogRing<N>, s: &str) {
        let _ = r.write_str(s);
        r.end_line();
    }

    #[test]
    fn keeps_the_newest_lines_within_its_bytes() {
        let mut r: LogRing<1100> = LogRing::new();
        for i in 0..100 {
            line(&mut r, &alloc::format!("line {i:03} {}", "x".repeat(90)));
        }
        let lines = r.lines();
        // 100-byte lines in 1100 bytes: the last 10 or 11 are kept.
        assert!(lines.len() >= 10 && lines.len() <= 11, "{}", lines.len());
        assert!(lines.last().unwrap().starts_with("line 099 "));
        assert_eq!(r.dropped as usize + lines.len(), 100);
        assert_eq!(r.last(2).len(), 2);
        assert!(r.last(1)[0].starts_with("line 099"));
        // A line being written is not shown until it ends.
        let _ = r.write_str("partial");
        assert!(r.lines().last().unwrap().starts_with("line 099"));
        r.end_line();
        assert_eq!(r.lines().last().unwrap(), "partial");
    }

    #[test]
    fn long_and_multi_line_records_stay_one_line() {
        let mut r: LogRing<1100> = LogRing::new();
        line(&mut r, &"é".repeat(400));
        line(&mut r, "a\nb");
        let lines = r.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "a b");
    }
}
