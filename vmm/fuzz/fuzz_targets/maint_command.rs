//! Arbitrary bytes as a console line: the parser returns a command or a
//! typed error, never panics, and accepts nothing over-long or non-text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::maint::command::{parse, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(_)) = parse(data) {
        assert!(data.len() <= MAX_LINE);
        assert!(data.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t'));
    }
    // Every error has a one-line message.
    if let Err(e) = parse(data) {
        assert!(!e.to_string().contains('\n'));
    }
});
