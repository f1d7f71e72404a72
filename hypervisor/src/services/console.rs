//! The hypervisor's console: one physical UART shared by the hypervisor's
//! own log and every VM's emulated PL011 (see `vmm::console` for the
//! multiplexing rules), plus the `log` backend.
use crate::drivers::uart::Pl011;
use alloc::collections::VecDeque;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::Mutex;
use vmm::console::{ConsoleMux, Focus, InputAction};

pub struct Console {
    pub uart: Pl011,
    /// Present once the VMs exist; until then output goes straight out.
    pub mux: Option<ConsoleMux>,
}

/// Input for VMs whose 16-byte receive FIFO was full (a pasted command
/// line arrives faster than a guest drains it): delivered in order as the
/// guests read their FIFOs. The physical UART is always drained, so the
/// console escape keeps working even if a guest never reads its input.
static BACKLOG: Mutex<VecDeque<(usize, u8)>> = Mutex::new(VecDeque::new());
/// Bytes kept at most; beyond that input is dropped (and counted).
const BACKLOG_MAX: usize = 4096;
static BACKLOG_DROPPED: AtomicUsize = AtomicUsize::new(0);
/// Whether the backlog is non-empty (checked on every guest UART read).
static HOLDING: AtomicBool = AtomicBool::new(false);

pub static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

pub fn init_early(port: platform::Uart) {
    let platform::UartKind::Pl011 = port.kind;
    // SAFETY: the board description names the UART that is present; the MMU
    // is off or maps it as device memory.
    let uart = unsafe { Pl011::new(port.base) };
    *CONSOLE.lock() = Some(Console { uart, mux: None });
}

/// Write hypervisor output (already formatted, with its `[hv]` prefix).
pub fn write_fmt(args: core::fmt::Arguments) {
    let mut guard = CONSOLE.lock();
    if let Some(c) = guard.as_mut() {
        match c.mux.as_mut() {
            Some(mux) => {
                let text = alloc::fmt::format(args);
                let uart = &mut c.uart;
                mux.hv_output(text.as_bytes(), &mut |b| uart.write_raw(b));
            }
            None => {
                let _ = c.uart.write_fmt(args);
            }
        }
    }
}

/// The maintenance link's answers when it rides on the console: whole
/// frames between lines, then a line end so that a terminal (or a test
/// reading lines) sees them as a line of their own.
pub fn write_frames(bytes: &[u8]) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.uart.write_raw(bytes);
        c.uart.write_raw(b"\r\n");
    }
}

/// Switch to multiplexed output once the VMs exist, and take input from the
/// UART's receive interrupt.
pub fn attach_vms(names: &[&str], focus_shell: bool) {
    let mut guard = CONSOLE.lock();
    if let Some(c) = guard.as_mut() {
        let mut mux = ConsoleMux::new(names);
        if focus_shell {
            mux.set_focus(Focus::Hypervisor);
        }
        c.mux = Some(mux);
        c.uart.enable_rx_interrupt();
    }
}

/// A byte the guest wrote to its emulated UART.
pub fn vm_output(vm: usize, byte: u8) {
    let mut guard = CONSOLE.lock();
    if let Some(Console {
        uart,
        mux: Some(mux),
        ..
    }) = guard.as_mut()
    {
        mux.vm_output(vm, byte, &mut |b| uart.write_raw(b));
    }
}

/// VM `vm` went idle: show its pending partial line (a prompt, an echo) if
/// it has the input focus.
pub fn vm_idle(vm: usize) {
    let mut guard = CONSOLE.lock();
    if let Some(Console {
        uart,
        mux: Some(mux),
        ..
    }) = guard.as_mut()
    {
        mux.flush_focused(vm, &mut |b| uart.write_raw(b));
    }
}

/// Print every VM's pending partial line (before a machine reset: nothing
/// the guests wrote is lost).
pub fn flush_all() {
    let mut guard = CONSOLE.lock();
    if let Some(Console {
        uart,
        mux: Some(mux),
        ..
    }) = guard.as_mut()
    {
        for vm in 0..mux.vm_count() {
            mux.flush_vm(vm, &mut |b| uart.write_raw(b));
        }
    }
}

/// VM `vm`'s partial output line not shown yet (carried across a reload in
/// the handoff block instead of being printed split).
pub fn pending(vm: usize) -> alloc::vec::Vec<u8> {
    let guard = CONSOLE.lock();
    match guard.as_ref().and_then(|c| c.mux.as_ref()) {
        Some(mux) => mux.pending(vm).to_vec(),
        None => alloc::vec::Vec::new(),
    }
}

/// After a reload: the partial line VM `vm` was writing when suspended.
pub fn restore_pending(vm: usize, bytes: &[u8]) {
    if let Some(Console { mux: Some(mux), .. }) = CONSOLE.lock().as_mut() {
        mux.restore_pending(vm, bytes);
    }
}

/// Give VM `vm` one input byte; false if its receive FIFO is full.
fn deliver(vm: usize, b: u8) -> bool {
    let Some(vm) = crate::vcpu::machine().vms.get(vm) else {
        return true;
    };
    let mut u = vm.uart.lock();
    let taken = u.push_rx(b);
    let level = u.irq_level();
    drop(u);
    crate::vcpu::mmio::update_uart_irq(vm, level);
    taken
}

/// A guest read from its UART: if input was held back for lack of room,
/// carry on delivering it.
pub fn guest_read_rx() {
    if HOLDING.load(Ordering::Acquire) {
        flush_backlog();
    }
}

/// Deliver backlogged input, in order for each VM; a VM whose FIFO is full
/// holds back only its own bytes.
fn flush_backlog() {
    let mut q = BACKLOG.lock();
    let mut blocked = [false; MAX_BACKLOG_VMS];
    let mut i = 0;
    while i < q.len() {
        let (vm, b) = q[i];
        if blocked.get(vm).copied().unwrap_or(false) {
            i += 1;
        } else if deliver(vm, b) {
            q.remove(i);
        } else {
            if let Some(f) = blocked.get_mut(vm) {
                *f = true;
            }
            i += 1;
        }
    }
    if q.is_empty() {
        HOLDING.store(false, Ordering::Release);
    }
}

/// More VMs than this share one "blocked" flag in `flush_backlog` (only
/// fairness suffers, never order).
const MAX_BACKLOG_VMS: usize = 64;

/// A byte typed for `vm`: straight into its FIFO unless earlier bytes for
/// it still wait (order) or the FIFO is full. The backlog lock is held
/// across the check and the delivery, so a guest draining its FIFO on
/// another CPU cannot slip between them and leave a byte stranded.
fn input_for_vm(vm: usize, b: u8) {
    let mut q = BACKLOG.lock();
    if !q.iter().any(|&(v, _)| v == vm) && deliver(vm, b) {
        return;
    }
    if q.len() >= BACKLOG_MAX {
        if BACKLOG_DROPPED.fetch_add(1, Ordering::Relaxed) == 0 {
            drop(q);
            log::warn!(
                "console: vm {} is not reading its input; dropping input beyond {} bytes",
                vm,
                BACKLOG_MAX
            );
        }
        return;
    }
    q.push_back((vm, b));
    HOLDING.store(true, Ordering::Release);
}

/// Forget input still waiting for `vm` (it stopped or restarts: keys typed
/// to the old incarnation must not reach the new one).
pub fn drop_input(vm: usize) {
    BACKLOG.lock().retain(|&(v, _)| v != vm);
}

/// Drain the physical UART's receive FIFO and route each byte.
pub fn poll_input() {
    if HOLDING.load(Ordering::Acquire) {
        flush_backlog();
    }
    loop {
        let byte = {
            let mut guard = CONSOLE.lock();
            let Some(c) = guard.as_mut() else { return };
            let Some(byte) = c.uart.get() else { return };
            byte
        };
        // Without a UART of its own the maintenance link's frames ride
        // here (taken without `CONSOLE` held: the link locks it last).
        if super::maint_link::console_byte(byte) {
            continue;
        }
        let action = {
            let mut guard = CONSOLE.lock();
            let Some(c) = guard.as_mut() else { return };
            match c.mux.as_mut() {
                Some(m) => m.input(byte),
                None => InputAction::None,
            }
        };
        match action {
            InputAction::None => {}
            InputAction::ToVm(vm, b) => input_for_vm(vm, b),
            InputAction::ToHypervisor(b) => super::shell::input(b),
            InputAction::Focus(Focus::Vm(i)) => {
                hvprintln!("console input now goes to vm {}", i);
                vm_idle(i);
            }
            InputAction::Focus(Focus::Hypervisor) => {
                hvprintln!("console input now goes to the hypervisor shell (type 'help')")
            }
            InputAction::Help => {
                let text = {
                    let guard = CONSOLE.lock();
                    guard
                        .as_ref()
                        .and_then(|c| c.mux.as_ref())
                        .map(|m| m.help())
                };
                if let Some(t) = text {
                    write_fmt(format_args!("{}", t));
                }
            }
        }
    }
}

/// The log's recent lines (`log`), since this image started: 16 KiB of
/// bss, none of the heap.
static RECENT: Mutex<vmm::log_ring::LogRing<{ 16 * 1024 }>> =
    Mutex::new(vmm::log_ring::LogRing::new());

/// `log`: the last `n` lines the hypervisor logged (seconds since the
/// machine started, level, message), and how many older ones were dropped.
pub fn recent_log(n: usize) -> alloc::string::String {
    use core::fmt::Write as _;
    let ring = RECENT.lock();
    let mut out = alloc::string::String::new();
    let lines = ring.last(n);
    let shown = lines.len();
    let _ = writeln!(
        out,
        "log: the last {} lines of this image's log{}",
        shown,
        if ring.dropped > 0 {
            alloc::format!(" ({} older ones dropped)", ring.dropped)
        } else {
            alloc::string::String::new()
        }
    );
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        use log::Level::*;
        let tag = match r.level() {
            Error => "ERROR: ",
            Warn => "WARN: ",
            Info => "",
            Debug => "debug: ",
            Trace => "trace: ",
        };
        write_fmt(format_args!("[hv] {}{}\n", tag, r.args()));
        let t = crate::arch::aarch64::sysreg::counter();
        let ms = t / (crate::arch::aarch64::sysreg::counter_freq() / 1000).max(1);
        // Never waits: a line logged while the ring is being read is only
        // printed.
        if let Some(mut ring) = RECENT.try_lock() {
            let _ = write!(
                ring,
                "{:>6}.{:03} {}{}",
                ms / 1000,
                ms % 1000,
                tag,
                r.args()
            );
            ring.end_line();
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if option_env!("BLINK_DEBUG").is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}
