//! Sharing one physical UART between the hypervisor and the VMs.
//!
//! **Input** goes to one *focused* target at a time. `Ctrl-]` (0x1d)
//! starts an escape: the next key `0`..`9` focuses that VM, `h` the
//! hypervisor, `?` asks for help, a second `Ctrl-]` sends a literal 0x1d to
//! the focused target; any other key is swallowed and answered with
//! [`InputAction::Help`] so the caller can show the valid keys. The
//! multiplexer only decides; the caller prints notices and feeds VM bytes to
//! their virtual UARTs.
//!
//! **Output** from every source shares the screen, so each line is tagged
//! with its source (`[domU0] `; the hypervisor tags its own lines `[hv] `)
//! and lines from different sources must not be spliced together:
//!
//! - Every VM is *line buffered*: its bytes collect until `\n` (or the
//!   buffer is full) and then go out as one tagged line. Concurrent chatty
//!   VMs (or vCPUs of one VM on different CPUs) therefore interleave by whole
//!   lines, never inside one.
//! - An interactive prompt without a newline (`login: `) and the echo of
//!   what the user types must still appear at once: the caller flushes the
//!   *focused* VM's partial line when that VM goes idle
//!   ([`ConsoleMux::flush_focused`]), which is exactly when a prompt or an
//!   echo is complete.
//! - The multiplexer remembers who owns the current screen line
//!   ([`LineOwner`]): nobody (the cursor is at the start of a line) or a
//!   source whose partial line is on screen. Before another source writes,
//!   the partial line is ended with `\r\n`; a source continuing its own
//!   partial line does not repeat its tag.
//!
//! VM output is normalised for terminals in raw mode: `\r` is dropped and
//! `\n` becomes `\r\n`.

use alloc::string::String;
use alloc::vec::Vec;

/// Line buffer size per VM: longer lines are emitted in pieces.
pub const LINE_MAX: usize = 256;

/// The escape key, Ctrl-].
pub const ESCAPE: u8 = 0x1d;

/// Which target receives console input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Vm(usize),
    Hypervisor,
}

/// What the caller should do with an input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputAction {
    /// Nothing (the byte was part of an escape sequence).
    None,
    /// Deliver the byte to VM `.0`'s UART.
    ToVm(usize, u8),
    /// Deliver the byte to the hypervisor's shell.
    ToHypervisor(u8),
    /// Focus changed: print a notice (then call [`ConsoleMux::flush_vm`] for
    /// a focused VM so a pending prompt shows).
    Focus(Focus),
    /// Print the escape key help (asked for, or an unknown key).
    Help,
}

/// Who owns the current screen line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOwner {
    /// The cursor is at the start of a line.
    Nobody,
    /// VM `.0` has written part of a line (after its tag).
    Vm(usize),
    /// The hypervisor has written part of a line.
    Hypervisor,
}

#[derive(Debug, Clone)]
struct VmOut {
    name: String,
    /// `[name] `
    tag: Vec<u8>,
    /// The VM's pending partial line (only used while it lacks focus).
    line: Vec<u8>,
}

/// The console multiplexer. Not thread-safe by itself: the caller holds
/// the console lock around each call.
#[derive(Debug, Clone)]
pub struct ConsoleMux {
    vms: Vec<VmOut>,
    focus: Focus,
    escape: bool,
    owner: LineOwner,
}

impl ConsoleMux {
    /// `vm_names[i]` is VM `i`'s tag. Input focus starts on VM 0 if there is
    /// one, else on the hypervisor.
    pub fn new(vm_names: &[&str]) -> Self {
        let vms = vm_names
            .iter()
            .map(|n| {
                let mut tag = Vec::with_capacity(n.len() + 3);
                tag.push(b'[');
                tag.extend_from_slice(n.as_bytes());
                tag.extend_from_slice(b"] ");
                VmOut {
                    name: String::from(*n),
                    tag,
                    line: Vec::with_capacity(LINE_MAX),
                }
            })
            .collect::<Vec<_>>();
        let focus = if vms.is_empty() {
            Focus::Hypervisor
        } else {
            Focus::Vm(0)
        };
        Self {
            vms,
            focus,
            escape: false,
            owner: LineOwner::Nobody,
        }
    }

    /// Move input focus (e.g. back to the shell a reload was typed in).
    pub fn set_focus(&mut self, focus: Focus) {
        self.focus = match focus {
            Focus::Vm(i) if i >= self.vms.len() => Focus::Hypervisor,
            f => f,
        };
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    /// Who owns the current screen line (for tests and diagnostics).
    pub fn line_owner(&self) -> LineOwner {
        self.owner
    }

    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    /// The help text for the escape keys with the VM list, as hypervisor
    /// lines ready for [`hv_output`](Self::hv_output).
    pub fn help(&self) -> String {
        let mut s = String::from("[hv] console: Ctrl-] then 0-9: focus a VM, h: hypervisor, ?: help, Ctrl-]: send Ctrl-]\n");
        for (i, vm) in self.vms.iter().enumerate().take(10) {
            s.push_str("[hv] console:   ");
            s.push(char::from(b'0' + i as u8));
            s.push_str(" = ");
            s.push_str(&vm.name);
            s.push('\n');
        }
        s
    }

    /// Handles one byte typed on the console.
    pub fn input(&mut self, byte: u8) -> InputAction {
        if !self.escape {
            if byte == ESCAPE {
                self.escape = true;
                return InputAction::None;
            }
            return self.to_focus(byte);
        }
        self.escape = false;
        match byte {
            ESCAPE => self.to_focus(ESCAPE),
            b'0'..=b'9' => {
                let i = usize::from(byte - b'0');
                if i < self.vms.len() {
                    self.focus = Focus::Vm(i);
                    InputAction::Focus(self.focus)
                } else {
                    InputAction::Help
                }
            }
            b'h' | b'H' => {
                self.focus = Focus::Hypervisor;
                InputAction::Focus(self.focus)
            }
            _ => InputAction::Help, // includes '?'
        }
    }

    fn to_focus(&self, byte: u8) -> InputAction {
        match self.focus {
            Focus::Vm(i) => InputAction::ToVm(i, byte),
            Focus::Hypervisor => InputAction::ToHypervisor(byte),
        }
    }

    /// Ends another source's partial line so `who` starts on a fresh one.
    fn claim_line(&mut self, who: LineOwner, out: &mut dyn FnMut(&[u8])) {
        if self.owner != LineOwner::Nobody && self.owner != who {
            out(b"\r\n");
            self.owner = LineOwner::Nobody;
        }
    }

    /// Writes `text` (no `\n`, no `\r`) for VM `vm`, tagging it if it starts
    /// a line, and, when `newline`, ends the line.
    fn emit_vm(&mut self, vm: usize, text: &[u8], newline: bool, out: &mut dyn FnMut(&[u8])) {
        let me = LineOwner::Vm(vm);
        self.claim_line(me, out);
        if self.owner == LineOwner::Nobody {
            if text.is_empty() && !newline {
                return;
            }
            out(&self.vms[vm].tag);
            self.owner = me;
        }
        if !text.is_empty() {
            out(text);
        }
        if newline {
            out(b"\r\n");
            self.owner = LineOwner::Nobody;
        }
    }

    /// One byte written by VM `vm` to its UART. Unknown VMs are ignored.
    pub fn vm_output(&mut self, vm: usize, byte: u8, out: &mut dyn FnMut(&[u8])) {
        if vm >= self.vms.len() || byte == b'\r' {
            return;
        }
        if byte == b'\n' {
            let line = core::mem::take(&mut self.vms[vm].line);
            self.emit_vm(vm, &line, true, out);
            self.vms[vm].line = line;
            self.vms[vm].line.clear();
            return;
        }
        self.vms[vm].line.push(byte);
        if self.vms[vm].line.len() >= LINE_MAX {
            self.flush_vm(vm, out);
        }
    }

    /// Emits the partial line of the focused VM, if any: called when the VM
    /// goes idle, so prompts and echoes show without waiting for a newline.
    pub fn flush_focused(&mut self, vm: usize, out: &mut dyn FnMut(&[u8])) {
        if self.focus == Focus::Vm(vm) {
            self.flush_vm(vm, out);
        }
    }

    /// Emits VM `vm`'s buffered partial line now (e.g. on focus change or
    /// after a quiet period), leaving it as the owner of the screen line.
    pub fn flush_vm(&mut self, vm: usize, out: &mut dyn FnMut(&[u8])) {
        if vm >= self.vms.len() || self.vms[vm].line.is_empty() {
            return;
        }
        let line = core::mem::take(&mut self.vms[vm].line);
        self.emit_vm(vm, &line, false, out);
        self.vms[vm].line = line;
        self.vms[vm].line.clear();
    }

    /// VM `vm`'s partial line not yet shown (empty for an unknown VM): what
    /// a warm reload carries over, so a line the guest was writing when it
    /// was suspended comes out whole, not split in two around the reload.
    pub fn pending(&self, vm: usize) -> &[u8] {
        self.vms.get(vm).map_or(&[], |v| v.line.as_slice())
    }

    /// Puts back a partial line carried over a reload (at most
    /// [`LINE_MAX`] bytes are kept; `\r` and `\n` are not expected).
    pub fn restore_pending(&mut self, vm: usize, bytes: &[u8]) {
        if let Some(v) = self.vms.get_mut(vm) {
            let room = LINE_MAX.saturating_sub(v.line.len());
            v.line.extend(
                bytes
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r' && b != b'\n')
                    .take(room),
            );
        }
    }

    /// Text from the hypervisor itself, already tagged `[hv] ` by the
    /// caller; may be a fragment of a line. `\r` is dropped and `\n` sent
    /// as `\r\n` so callers can use either convention.
    pub fn hv_output(&mut self, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        if bytes.is_empty() {
            return;
        }
        self.claim_line(LineOwner::Hypervisor, out);
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (text, newline) = match piece.split_last() {
                Some((b'\n', text)) => (text, true),
                _ => (piece, false),
            };
            for chunk in text.split(|&b| b == b'\r').filter(|c| !c.is_empty()) {
                out(chunk);
                self.owner = LineOwner::Hypervisor;
            }
            if newline {
                out(b"\r\n");
                self.owner = LineOwner::Nobody;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// Collects everything written to the screen.
    struct Screen(Vec<u8>);

    impl Screen {
        fn new() -> Self {
            Screen(Vec::new())
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0).to_string()
        }
    }

    fn vm_str(m: &mut ConsoleMux, s: &mut Screen, vm: usize, text: &str) {
        for &b in text.as_bytes() {
            m.vm_output(vm, b, &mut |o| s.0.extend_from_slice(o));
        }
    }

    fn hv_str(m: &mut ConsoleMux, s: &mut Screen, text: &str) {
        m.hv_output(text.as_bytes(), &mut |o| s.0.extend_from_slice(o));
    }

    #[test]
    fn default_focus() {
        assert_eq!(ConsoleMux::new(&["a", "b"]).focus(), Focus::Vm(0));
        assert_eq!(ConsoleMux::new(&[]).focus(), Focus::Hypervisor);
    }

    #[test]
    fn input_routing_and_escapes() {
        let mut m = ConsoleMux::new(&["domU0", "domU1"]);
        assert_eq!(m.input(b'x'), InputAction::ToVm(0, b'x'));
        assert_eq!(m.input(ESCAPE), InputAction::None);
        assert_eq!(m.input(b'1'), InputAction::Focus(Focus::Vm(1)));
        assert_eq!(m.input(b'y'), InputAction::ToVm(1, b'y'));
        // Digits are plain input outside an escape.
        assert_eq!(m.input(b'0'), InputAction::ToVm(1, b'0'));
        // Ctrl-] twice: a literal 0x1d to the focused target.
        assert_eq!(m.input(ESCAPE), InputAction::None);
        assert_eq!(m.input(ESCAPE), InputAction::ToVm(1, ESCAPE));
        assert_eq!(m.input(b'z'), InputAction::ToVm(1, b'z'));
        // Hypervisor focus.
        m.input(ESCAPE);
        assert_eq!(m.input(b'h'), InputAction::Focus(Focus::Hypervisor));
        assert_eq!(m.input(b'q'), InputAction::ToHypervisor(b'q'));
        m.input(ESCAPE);
        assert_eq!(m.input(ESCAPE), InputAction::ToHypervisor(ESCAPE));
        // Help, unknown keys and missing VMs: swallowed, focus unchanged.
        m.input(ESCAPE);
        assert_eq!(m.input(b'?'), InputAction::Help);
        m.input(ESCAPE);
        assert_eq!(m.input(b'x'), InputAction::Help);
        m.input(ESCAPE);
        assert_eq!(m.input(b'7'), InputAction::Help);
        assert_eq!(m.focus(), Focus::Hypervisor);
        assert_eq!(m.input(b'a'), InputAction::ToHypervisor(b'a'));
        m.input(ESCAPE);
        assert_eq!(m.input(b'0'), InputAction::Focus(Focus::Vm(0)));
    }

    #[test]
    fn unfocused_vms_interleave_by_lines() {
        let mut m = ConsoleMux::new(&["domU0", "domU1"]);
        m.input(ESCAPE);
        m.input(b'h');
        let mut s = Screen::new();
        vm_str(&mut m, &mut s, 0, "heart");
        vm_str(&mut m, &mut s, 1, "timer: st");
        assert_eq!(s.text(), "");
        vm_str(&mut m, &mut s, 0, "beat: n=1\r\n");
        vm_str(&mut m, &mut s, 1, "art\n\n");
        assert_eq!(
            s.text(),
            "[domU0] heartbeat: n=1\r\n[domU1] timer: start\r\n[domU1] \r\n"
        );
        assert_eq!(m.line_owner(), LineOwner::Nobody);
    }

    #[test]
    fn long_lines_are_split() {
        let mut m = ConsoleMux::new(&["a"]);
        m.input(ESCAPE);
        m.input(b'h');
        let mut s = Screen::new();
        let long: String = "x".repeat(LINE_MAX + 10);
        vm_str(&mut m, &mut s, 0, &long);
        // The first LINE_MAX bytes went out as a partial line owned by the VM.
        assert_eq!(s.0.len(), 4 + LINE_MAX);
        assert_eq!(m.line_owner(), LineOwner::Vm(0));
        vm_str(&mut m, &mut s, 0, "\n");
        // The rest continues the same screen line without a second tag.
        let expect = alloc::format!("[a] {long}\r\n");
        assert_eq!(s.text(), expect);
        // But if someone else interrupted, the continuation is re-tagged.
        vm_str(&mut m, &mut s, 0, &long);
        hv_str(&mut m, &mut s, "[hv] hello\n");
        vm_str(&mut m, &mut s, 0, "\n");
        let tail = alloc::format!(
            "[a] {}\r\n[hv] hello\r\n[a] {}\r\n",
            &long[..LINE_MAX],
            &long[LINE_MAX..]
        );
        assert_eq!(s.text(), expect + &tail);
    }

    #[test]
    fn focused_vm_partial_lines_show_when_it_idles() {
        let mut m = ConsoleMux::new(&["domU0", "domU1"]);
        let mut s = Screen::new();
        vm_str(&mut m, &mut s, 0, "login: ");
        assert_eq!(s.text(), "", "buffered until the VM idles");
        m.flush_focused(1, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(s.text(), "", "only the focused VM is flushed");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(s.text(), "[domU0] login: ");
        assert_eq!(m.line_owner(), LineOwner::Vm(0));
        // Echo of typed characters continues the line.
        vm_str(&mut m, &mut s, 0, "root\r\n");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(s.text(), "[domU0] login: root\r\n");
        // Another VM's complete line while the prompt is on screen.
        vm_str(&mut m, &mut s, 0, "Password: ");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        vm_str(&mut m, &mut s, 1, "tick\n");
        vm_str(&mut m, &mut s, 0, "*");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(
            s.text(),
            "[domU0] login: root\r\n[domU0] Password: \r\n[domU1] tick\r\n[domU0] *"
        );
    }

    #[test]
    fn pending_line_survives_a_reload_whole() {
        let mut old = ConsoleMux::new(&["domU0"]);
        let mut screen = Screen(Vec::new());
        for &b in b"heartbeat: n=4" {
            old.vm_output(0, b, &mut |o| screen.0.extend_from_slice(o));
        }
        let carried = old.pending(0).to_vec();
        let mut new = ConsoleMux::new(&["domU0"]);
        new.restore_pending(0, &carried);
        for &b in b"4 count=1\n" {
            new.vm_output(0, b, &mut |o| screen.0.extend_from_slice(o));
        }
        assert_eq!(screen.0, b"[domU0] heartbeat: n=44 count=1\r\n");
        assert!(new.pending(7).is_empty());
        new.restore_pending(7, b"ignored");
    }

    #[test]
    fn focus_change_and_pending_lines() {
        let mut m = ConsoleMux::new(&["domU0", "domU1"]);
        let mut s = Screen::new();
        // domU1 prints a prompt while unfocused: held back.
        vm_str(&mut m, &mut s, 1, "# ");
        assert_eq!(s.text(), "");
        // Switch focus to domU1: caller prints a notice, then flushes.
        m.input(ESCAPE);
        assert_eq!(m.input(b'1'), InputAction::Focus(Focus::Vm(1)));
        hv_str(&mut m, &mut s, "[hv] console: input to domU1\n");
        m.flush_vm(1, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(s.text(), "[hv] console: input to domU1\r\n[domU1] # ");
        // A partial line buffered before focus moved completes normally.
        vm_str(&mut m, &mut s, 0, "partial");
        m.input(ESCAPE);
        m.input(b'0');
        vm_str(&mut m, &mut s, 0, "!\n");
        assert_eq!(
            s.text(),
            "[hv] console: input to domU1\r\n[domU1] # \r\n[domU0] partial!\r\n"
        );
        // Flushing an empty buffer or an unknown VM is a no-op.
        let before = s.0.len();
        m.flush_vm(0, &mut |o| s.0.extend_from_slice(o));
        m.flush_vm(9, &mut |o| s.0.extend_from_slice(o));
        assert_eq!(s.0.len(), before);
    }

    #[test]
    fn hypervisor_lines_and_fragments() {
        let mut m = ConsoleMux::new(&["domU0"]);
        let mut s = Screen::new();
        // Fragments of one line (as core::fmt writes them).
        hv_str(&mut m, &mut s, "[hv] vm 0 ");
        assert_eq!(m.line_owner(), LineOwner::Hypervisor);
        hv_str(&mut m, &mut s, "'domU0': started\r\n");
        assert_eq!(m.line_owner(), LineOwner::Nobody);
        // A VM prompt is on screen: the hv line starts on a fresh line.
        vm_str(&mut m, &mut s, 0, "$ ");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        hv_str(&mut m, &mut s, "[hv] WARN: x\n[hv] two\n");
        // A VM writing while an hv fragment is on screen breaks the line too.
        hv_str(&mut m, &mut s, "[hv] partial");
        vm_str(&mut m, &mut s, 0, "ls");
        m.flush_focused(0, &mut |o| s.0.extend_from_slice(o));
        hv_str(&mut m, &mut s, "");
        assert_eq!(
            s.text(),
            "[hv] vm 0 'domU0': started\r\n[domU0] $ \r\n[hv] WARN: x\r\n[hv] two\r\n[hv] partial\r\n[domU0] ls"
        );
    }

    #[test]
    fn out_of_range_vm_is_ignored() {
        let mut m = ConsoleMux::new(&[]);
        let mut s = Screen::new();
        vm_str(&mut m, &mut s, 0, "hello\n");
        vm_str(&mut m, &mut s, usize::MAX, "x\n");
        assert!(s.0.is_empty());
        assert_eq!(m.input(b'a'), InputAction::ToHypervisor(b'a'));
        m.input(ESCAPE);
        assert_eq!(m.input(b'0'), InputAction::Help);
    }

    #[test]
    fn help_text_lists_vms() {
        let m = ConsoleMux::new(&["domU0", "domU1"]);
        let h = m.help();
        assert!(h.starts_with("[hv] console: Ctrl-]"));
        assert!(h.ends_with("[hv] console:   0 = domU0\n[hv] console:   1 = domU1\n"));
    }
}
