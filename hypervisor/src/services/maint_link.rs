//! The maintenance link: the board's second UART (`platform::Board::
//! maintenance`), owned by the hypervisor, carrying a line console for a
//! person and `blinkctl`'s frames (docs/maintenance.md). This file only
//! moves bytes: each byte from the UART goes into
//! `vmm::maint::device::Endpoint`, whatever it answers goes back out, and
//! the commands it parses are run through the control verbs
//! ([`super::control`], the path and the refusals the shell uses too).
//!
//! The UART's receive interrupt is routed to CPU 0 (`vcpu::Upcalls::
//! maint_irq`); a UART without an interrupt is polled from CPU 0's
//! periodic work instead. Each image sets the UART up again when it
//! starts, so a warm reload (the answer to `rejuvenate` is written before
//! the VMs are suspended) leaves the link working in the next image. When
//! a VM's configuration passes the UART through, the VM owns it and the
//! link stays off.
//!
//! Lock order: `LINK` is taken on CPU 0 only, in its interrupt path (under
//! the loaded vCPU's `Vcpu::state`) or its periodic work; the verbs run
//! under it take the locks of the layers below and `CONSOLE` last.
use super::{access, control};
use crate::arch::aarch64::gic::gic;
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use crate::drivers::uart::Pl011;
use crate::reload::upload::{self, UploadArea};
use crate::vcpu::vm::Vm;
use crate::vcpu::{quiesce, stats};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use log::{error, info};
use spin::Mutex;
use vmm::config::HostUart;
use vmm::maint::command::{Command, DebugCommand};
use vmm::maint::device::{Control, Endpoint};
use vmm::maint::receiver::{Receiver, ResumeState};

/// Where the link's bytes come and go.
enum Port {
    /// A UART of its own (text and frames).
    Uart(Pl011),
    /// A board with one usable UART: frames ride on the console, which
    /// hands over each byte that starts or continues a frame
    /// ([`console_byte`]); text stays the console's.
    Console,
}

struct Link {
    port: Port,
    endpoint: Endpoint,
    /// Without an interrupt the UART is drained from CPU 0's poll.
    polled: bool,
    out: Vec<u8>,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// Input may already wait in the UART when an image starts (sent during
/// a warm reload, or noise before a cold boot). Enabling the interrupt
/// clears it, and the PL011 raises it again only once its FIFO was empty:
/// CPU 0's first poll drains the FIFO (once the machine is published,
/// which the verbs need).
static DRAIN_AT_START: AtomicBool = AtomicBool::new(false);

/// The UART's interrupt is masked for a reload in progress; if the reload
/// is abandoned (this image goes on), CPU 0's poll unmasks it again.
static MASKED_FOR_RELOAD: AtomicBool = AtomicBool::new(false);

/// Boot, once the VMs exist (cold or resumed): take the maintenance UART
/// unless there is none or a VM owns it, saying which in one line.
/// `node` is the device tree's node at the board's maintenance UART
/// address; `upload` an upload the previous image had in progress (from
/// the handoff block). Returns its INTID, now routed to CPU 0, for
/// `vcpu::Machine`.
pub fn start(
    board_uart: Option<platform::Uart>,
    node: Option<&HostUart>,
    vms: &[Vm],
    upload: Option<ResumeState>,
) -> Option<u32> {
    let Some(want) = board_uart else {
        on_console(
            alloc::format!(
                "board '{}' names no UART for it",
                crate::board::board().name
            ),
            upload,
        );
        return None;
    };
    let platform::UartKind::Pl011 = want.kind;
    let Some(node) = node else {
        on_console(
            alloc::format!(
                "the device tree has no UART at {:#x} (QEMU: give a second -serial)",
                want.base
            ),
            upload,
        );
        return None;
    };
    let owner = vms.iter().find(|vm| {
        vm.passthrough.iter().any(|p| {
            p.regions
                .iter()
                .any(|r| node.base >= r.base && node.base - r.base < r.size)
        })
    });
    if let Some(vm) = owner {
        on_console(
            alloc::format!(
                "vm {} '{}' owns its UART {} (blink,passthrough)",
                vm.id,
                vm.name,
                node.path
            ),
            upload,
        );
        return None;
    }
    // SAFETY: the device tree names a PL011 at this address, boot mapped
    // it as device memory, and no VM was given it (checked above): only
    // this service drives it, under `LINK`.
    let mut uart = unsafe { Pl011::new(node.base as usize) };
    uart.init_8n1();
    let intid = node.intid();
    if let Some(i) = intid {
        uart.enable_rx_interrupt();
        let g = gic();
        g.route_spi(i, 0);
        g.enable(0, i, true);
    }
    *LINK.lock() = Some(Link {
        port: Port::Uart(uart),
        endpoint: endpoint(upload),
        polled: intid.is_none(),
        out: Vec::new(),
    });
    DRAIN_AT_START.store(true, Ordering::Release);
    let rule = access::describe();
    match intid {
        Some(i) => info!(
            "maintenance link on {} (INTID {}, CPU 0): console and blinkctl frames; {}",
            node.path, i, rule
        ),
        None => info!(
            "maintenance link on {} (no interrupt: polled): console and blinkctl frames; {}",
            node.path, rule
        ),
    }
    if access::production() {
        info!("operator sessions: {}", access::source().describe());
    }
    intid
}

fn endpoint(upload: Option<ResumeState>) -> Endpoint {
    let receiver = match upload {
        Some(u) => {
            info!(
                "maintenance link: an upload of {} bytes goes on where it was ({} chunks of {} bytes verified before the reload)",
                u.total_len, u.verified, u.chunk_size
            );
            Receiver::resume(u)
        }
        None => Receiver::new(),
    };
    let mut endpoint = Endpoint::new(receiver);
    // A production image: state changes need an operator session.
    endpoint.access = access::access();
    // Milliseconds (see `now_ms`): a half frame is dropped after half a
    // second of silence.
    endpoint.idle_ticks = 500;
    endpoint
}

/// No UART of its own (`why`): blinkctl's frames ride on the console.
fn on_console(why: String, upload: Option<ResumeState>) {
    *LINK.lock() = Some(Link {
        port: Port::Console,
        endpoint: endpoint(upload),
        polled: false,
        out: Vec::new(),
    });
    info!(
        "maintenance link on the console ({}): blinkctl frames ride on it, typed text stays with the console; {}",
        why,
        access::describe()
    );
    if access::production() {
        info!("operator sessions: {}", access::source().describe());
    }
}

/// The console, for each byte it reads: true if the byte belongs to the
/// link (a 0x00 opens a frame, the frame's bytes follow until it ends;
/// text never starts with one), which then took it. False for text, and
/// always when the link has a UART of its own. While a reload is asked
/// for, frame bytes are dropped: this image is about to go, and blinkctl
/// sends again to the next one.
pub fn console_byte(b: u8) -> bool {
    let after = {
        let mut guard = LINK.lock();
        let Some(l) = guard.as_mut() else {
            return false;
        };
        if !matches!(l.port, Port::Console) || (b != 0 && !l.endpoint.in_frame()) {
            return false;
        }
        if quiesce::requested() {
            return true;
        }
        l.feed(b)
    };
    if let Some(After::Reboot) = after {
        let why = control::reboot();
        error!("maintenance link: {}", why);
    }
    true
}

/// For the handoff block: an upload in progress (a finished one is staged
/// already). Called on CPU 0 while it performs a reload, when the link's
/// own work is stopped.
pub fn upload_state() -> Option<ResumeState> {
    LINK.try_lock()?
        .as_ref()?
        .endpoint
        .receiver
        .resume_state()
        .filter(|s| !s.complete)
}

/// What to do once the answer has gone out.
enum After {
    Reboot,
}

/// The UART's interrupt: drain its receive FIFO through the endpoint.
pub fn irq() {
    let after = {
        let mut guard = LINK.lock();
        let Some(l) = guard.as_mut() else { return };
        l.drain()
    };
    if let Some(After::Reboot) = after {
        let why = control::reboot();
        error!("maintenance link: {}", why);
    }
}

/// CPU 0's periodic work: a polled UART is drained; otherwise only a half
/// frame left by a quiet line is dropped. Never waits for the lock.
pub fn poll() {
    if DRAIN_AT_START.load(Ordering::Relaxed) && DRAIN_AT_START.swap(false, Ordering::AcqRel) {
        return irq();
    }
    if MASKED_FOR_RELOAD.load(Ordering::Relaxed)
        && !quiesce::requested()
        && MASKED_FOR_RELOAD.swap(false, Ordering::AcqRel)
    {
        // The reload was abandoned: listen again, and take what waited.
        if let Some(l) = LINK.lock().as_mut() {
            if let (Port::Uart(u), false) = (&mut l.port, l.polled) {
                u.enable_rx_interrupt();
            }
        }
        return irq();
    }
    let polled = {
        let Some(mut guard) = LINK.try_lock() else {
            return;
        };
        let Some(l) = guard.as_mut() else { return };
        if !l.polled {
            // A dropped half frame is counted by the decoder.
            let _ = l.endpoint.tick(now_ms());
        }
        l.polled
    };
    if polled {
        irq();
    }
}

impl Link {
    fn drain(&mut self) -> Option<After> {
        // Once a reload has been asked for (by this line or another front
        // end), input waits in the UART for the next image: this one would
        // answer for the image that is about to go. Its interrupt is masked
        // meanwhile, or the level interrupt, never drained, would keep CPU 0
        // from ever reaching the reload; the next image unmasks it.
        loop {
            let Port::Uart(uart) = &mut self.port else {
                return None;
            };
            if quiesce::requested() {
                uart.disable_rx_interrupt();
                MASKED_FOR_RELOAD.store(true, Ordering::Release);
                return None;
            }
            let b = uart.get()?;
            if let Some(after) = self.feed(b) {
                return Some(after);
            }
        }
    }

    /// One byte through the endpoint, its answer out on the port.
    fn feed(&mut self, b: u8) -> Option<After> {
        let mut verbs = Verbs {
            after: None,
            stats: self.endpoint.decoder_stats(),
            session: self.endpoint.auth.operator(now_ms()),
        };
        // Bad frames are counted by the decoder; a finished upload was
        // checked and staged (or refused) by `UploadArea::accept`, which
        // logged what it did. Each byte is timed for the upload's
        // processing time (`upload::time_byte`).
        let t = counter();
        let notice = self
            .endpoint
            .push(b, now_ms(), &mut UploadArea, &mut verbs, &mut self.out);
        upload::time_byte(counter() - t, &self.endpoint, notice.as_ref());
        if !self.out.is_empty() {
            match &mut self.port {
                Port::Uart(u) => u.write_raw(&self.out),
                Port::Console => super::console::write_frames(&self.out),
            }
            self.out.clear();
        }
        verbs.after
    }
}

/// The link's clock for the endpoint: milliseconds of the system counter.
fn now_ms() -> u64 {
    counter() / (counter_freq() / 1000).max(1)
}

/// Lines `log` answers with (blinkctl's answer frames carry them all).
const LOG_LINES: usize = 40;

/// The control verbs as the endpoint asks for them.
struct Verbs {
    after: Option<After>,
    stats: vmm::maint::decoder::DecoderStats,
    /// The operator of the session open on this line, if any.
    session: Option<[u8; 32]>,
}

const HELP: &str = "commands: help, status [--json] (VMs and aging indicators), images (the image slots), exits (guest exits by kind)
  rejuvenate (warm reload into a fresh copy of this image: VMs keep running)
  upload (blinkctl upload: a signed image into the staging slot)
  upgrade [--confirm-after N] [--timeout S] (warm reload into the staged image on trial: reverts unless confirmed within S s, default 300)
  confirm (the running trial image becomes permanent), rollback (warm reload into the image this one was upgraded from)
  reboot (cold reset of the machine)
  log (the hypervisor's last log lines)
";

/// The debug commands, in a development image only.
#[cfg(blink_debug_commands)]
const HELP_DEBUG: &str = "  debug-leak <KiB>, debug-rejuvenate-corrupt (development images only)
";
#[cfg(not(blink_debug_commands))]
const HELP_DEBUG: &str = "";

impl Control for Verbs {
    fn run(&mut self, cmd: Command) -> Result<String, String> {
        match cmd {
            Command::Help => Ok(alloc::format!("{HELP}{HELP_DEBUG}")),
            Command::Status { json: false } => Ok(self.status_text()),
            Command::Status { json: true } => Ok(status_json()),
            Command::Images => Ok(images_text()),
            Command::Exits => Ok(alloc::format!("{}\n", stats::report())),
            Command::Rejuvenate => control::rejuvenate().map(|()| {
                String::from("rejuvenate: warm reload started; this line answers again once the new image has started\n")
            }),
            Command::Upgrade {
                confirm_after_s,
                timeout_s,
            } => control::upgrade(confirm_after_s, timeout_s).map(|()| {
                alloc::format!(
                    "upgrade: warm reload into the staged image started, on trial: 'confirm' within {} s or it reverts{}\n",
                    timeout_s.unwrap_or(crate::reload::trial::DEFAULT_TIMEOUT_S),
                    match confirm_after_s {
                        Some(n) => alloc::format!(" (confirmed by itself after {n} s of every VM making progress)"),
                        None => String::new(),
                    }
                )
            }),
            Command::Rollback => control::rollback().map(|()| {
                String::from("rollback: warm reload into the previous image started\n")
            }),
            Command::Reboot => {
                self.after = Some(After::Reboot);
                Ok(String::from("reboot: resetting the machine\n"))
            }
            #[cfg(blink_debug_commands)]
            Command::Debug(DebugCommand::Leak { kib }) => {
                control::leak(kib).map(|()| alloc::format!("debug-leak: leaked {kib} KiB of hypervisor heap\n"))
            }
            #[cfg(blink_debug_commands)]
            Command::Debug(DebugCommand::RejuvenateCorrupt) => control::rejuvenate_corrupted()
                .map(|()| String::from("debug-rejuvenate-corrupt: warm reload with a damaged handoff block started\n")),
            #[cfg(not(blink_debug_commands))]
            Command::Debug(DebugCommand::Leak { .. } | DebugCommand::RejuvenateCorrupt) => Err(alloc::format!(
                "'{}' exists only in development images (this is a production image)",
                cmd.verb()
            )),
            Command::Debug(DebugCommand::Fault | DebugCommand::Vm) => Err(alloc::format!(
                "'{}' prints on the console and is served by the console shell only (Ctrl-] h)",
                cmd.verb()
            )),
            Command::Upload => Err(String::from(
                "upload: the image comes as frames (blinkctl upload IMAGE)",
            )),
            Command::Confirm => control::confirm(),
            Command::Log => Ok(super::console::recent_log(LOG_LINES)),
        }
    }

    /// A challenge's nonce (asked only by a production image's endpoint):
    /// FEAT_RNG or, named as weak, counter jitter (`access::source`).
    fn entropy(&mut self) -> [u8; 32] {
        access::entropy()
    }
}

impl Verbs {
    fn status_text(&self) -> String {
        let s = control::status();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} on {}: uptime {} s, generation {}, {} CPUs",
            crate::VERSION,
            crate::board::board().name,
            s.uptime_s,
            s.generation,
            s.ncpus
        );
        let _ = writeln!(
            t,
            "aging: image up {} s, heap {} KiB used of {} KiB ({} bytes requested), largest free block {} KiB",
            s.image_age_s,
            s.heap_used / 1024,
            s.heap_total / 1024,
            s.heap_requested,
            s.largest_free_block / 1024
        );
        for vm in &s.vms {
            let _ = writeln!(
                t,
                "vm {} '{}': {:?}, {} MiB at {:#x}, {} vCPUs",
                vm.id,
                vm.name,
                vm.state,
                vm.ram_size >> 20,
                vm.ram_pa,
                vm.vcpus
            );
        }
        let _ = writeln!(
            t,
            "images: running slot {}, staging slot {}, security counter {}; {}",
            crate::reload::slots::current().map_or(-1, |s| s as i64),
            crate::reload::slots::staging(),
            upload::security_counter(),
            if upload::development() {
                "uploads signed with a development key are accepted"
            } else {
                "uploads need a production key"
            }
        );
        if let Some(trial) = crate::reload::trial::describe() {
            let _ = writeln!(t, "{trial}");
        }
        let _ = writeln!(
            t,
            "link: {} text bytes, {} frames, {} bad frames; {}",
            self.stats.text_bytes,
            self.stats.frames,
            self.stats.errors,
            access::describe()
        );
        if access::production() {
            let _ = writeln!(
                t,
                "session: {}; {}",
                match self.session {
                    Some(k) => alloc::format!(
                        "operator {:02x}{:02x}{:02x}{:02x}... authenticated",
                        k[0],
                        k[1],
                        k[2],
                        k[3]
                    ),
                    None => String::from("none (state changes are refused)"),
                },
                access::source().describe()
            );
        }
        t
    }
}

fn images_text() -> String {
    let mut t = String::new();
    for r in control::images() {
        let _ = writeln!(t, "{}", control::image_line(&r));
    }
    t
}

/// `status --json`: the same facts, one object.
fn status_json() -> String {
    let s = control::status();
    let mut t = String::new();
    let _ = write!(
        t,
        "{{\"version\":{},\"board\":{},\"uptime_s\":{},\"image_age_s\":{},\"generation\":{},\"ncpus\":{},\"heap_used\":{},\"heap_total\":{},\"largest_free_block\":{},\"production\":{},\"operator_keys\":{},\"entropy\":\"{}\",\"development_key\":{},\"security_counter\":{},\"staging_slot\":{},\"vms\":[",
        json_str(crate::VERSION),
        json_str(crate::board::board().name),
        s.uptime_s,
        s.image_age_s,
        s.generation,
        s.ncpus,
        s.heap_used,
        s.heap_total,
        s.largest_free_block,
        access::production(),
        access::access().map_or(0, |a| a.operators.len()),
        access::source().name(),
        upload::development(),
        upload::security_counter(),
        crate::reload::slots::staging()
    );
    for (i, vm) in s.vms.iter().enumerate() {
        let _ = write!(
            t,
            "{}{{\"id\":{},\"name\":{},\"state\":\"{:?}\",\"ram_bytes\":{},\"vcpus\":{}}}",
            if i == 0 { "" } else { "," },
            vm.id,
            json_str(&vm.name),
            vm.state,
            vm.ram_size,
            vm.vcpus
        );
    }
    t.push_str("]}\n");
    t
}

fn json_str(s: &str) -> String {
    let mut t = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => t.push_str("\\\""),
            '\\' => t.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(t, "\\u{:04x}", c as u32);
            }
            c => t.push(c),
        }
    }
    t.push('"');
    t
}
