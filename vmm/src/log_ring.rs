//! The hypervisor's recent log lines, for `log` on the maintenance link
//! and the shell: the newest lines within a byte budget, the oldest
//! dropped (and counted) first, so that a chatty guest misbehaving cannot
//! make the hypervisor's log use more than its budget of heap.
use alloc::collections::VecDeque;
use alloc::string::String;

pub struct LogRing {
    lines: VecDeque<String>,
    bytes: usize,
    budget: usize,
    /// Lines dropped to stay within the budget since the start.
    pub dropped: u64,
}

impl LogRing {
    pub const fn new(budget: usize) -> LogRing {
        LogRing {
            lines: VecDeque::new(),
            bytes: 0,
            budget,
            dropped: 0,
        }
    }

    /// Keep `line` (cut to the budget if it alone is longer, at a
    /// character boundary), dropping the oldest lines as needed.
    pub fn push(&mut self, mut line: String) {
        if line.len() > self.budget {
            let mut cut = self.budget;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        while self.bytes + line.len() > self.budget {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            self.dropped += 1;
        }
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .skip(self.lines.len().saturating_sub(n))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    #[test]
    fn keeps_the_newest_lines_within_the_budget() {
        let mut r = LogRing::new(10);
        for l in ["aaaa", "bbbb", "cccc"] {
            r.push(l.to_string());
        }
        assert_eq!(r.last(10).collect::<Vec<_>>(), ["bbbb", "cccc"]);
        assert_eq!(r.dropped, 1);
        assert_eq!(r.last(1).collect::<Vec<_>>(), ["cccc"]);
        // A line longer than the budget is cut, and alone.
        r.push("é".repeat(8));
        assert_eq!(r.len(), 1);
        assert_eq!(r.last(5).next().map(str::len), Some(10));
        assert_eq!(r.dropped, 3);
    }
}
