//! Warm reload ("rejuvenation"): suspend every VM in memory, jump into a
//! fresh hypervisor image without a reset, resume the VMs from a handoff
//! block. Guest RAM is never read, written or copied on this path; only the
//! hypervisor's own state is rebuilt, which is what clears its aging.
//!
//! Old image (generation N):
//!  1. `request` (the `rejuvenate` command) raises a flag and kicks every
//!     CPU. Each CPU leaves its vCPU at the next exit (`sched`), which saves
//!     the vCPU's complete state, and reports in.
//!  2. Secondaries park; CPU 0 writes the handoff block (`vmm::handoff`)
//!     into the board's handoff region, then lets the secondaries power off
//!     (PSCI CPU_OFF) and waits until they are.
//!  3. CPU 0 copies the trampoline (`reload.S`) to the board's trampoline
//!     page, cleans what the new image will read to the point of coherency,
//!     and enters it: MMU and caches off, whole D-cache cleaned by set/way,
//!     the image from the chosen slot (`image_slots`: this image's pristine
//!     copy, or another build for an upgrade) copied over the running one,
//!     jump to its entry with x0 = device tree, x1 = handoff block,
//!     x2 = WARM_MAGIC, x3 = the slot.
//!
//! New image (generation N+1): boots as usual (heap, page tables, GIC),
//! then `resume` validates the block and rebuilds each VM around its
//! untouched RAM. A block that fails validation is refused with a message
//! and the VMs are cold-booted from their configuration instead.
use super::console;
use super::holding_pen;
use super::hyp;
use super::image_slots::{self, Target};
use super::vcpu::VcpuState;
use super::vm::{Vm, VmShape};
use crate::arch::aarch64::cache;
use crate::arch::aarch64::context::{El1Context, FpContext};
use crate::arch::aarch64::firmware::{self, Conduit};
use crate::arch::aarch64::gic::{gic, Gic, VifState, SGI_KICK};
use crate::arch::aarch64::regs::GuestRegs;
use crate::arch::aarch64::sysreg::{counter, counter_freq, cpu_index, sev, wfe, wfi};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use log::error;
use platform::BOARD;
use vmm::handoff::{self, FpState, Handoff, HandoffLimits, PassthroughState, VcpuState as HoVcpu, VmState as HoVm};
use vmm::memory::Region;

/// x2 at a warm entry ("BLINKWRM").
pub const WARM_MAGIC: u64 = 0x424c_494e_4b57_524d;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicUsize = AtomicUsize::new(0);
/// 0: secondaries wait; 1: power off; 2: reload abandoned, carry on;
/// 3: go to the holding pen.
static RELEASE: AtomicU8 = AtomicU8::new(0);
static T_REQUEST: AtomicU64 = AtomicU64::new(0);
/// Debug: damage the block after writing it, to exercise the refusal path.
static CORRUPT: AtomicBool = AtomicBool::new(false);
/// This image's generation (reloads since the cold boot).
pub static GENERATION: AtomicU64 = AtomicU64::new(0);
/// PSCI conduit for parking secondaries (None: cannot reload with SMP).
pub static CONDUIT: spin::Once<Option<Conduit>> = spin::Once::new();

/// Periodic reload: counter value at which CPU 0 starts the next one
/// (`u64::MAX`: off). Each image sets it from the device tree when it
/// starts, so the period carries on across reloads.
static PERIODIC_DUE: AtomicU64 = AtomicU64::new(u64::MAX);
static PERIODIC_MS: AtomicU64 = AtomicU64::new(0);

/// Image slot the pending reload starts (see `image_slots`).
static TARGET_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Handoff format minor this build writes: `BLINK_HANDOFF_MINOR` at build
/// time (default 0), so that a "next version" build can be told apart and
/// N -> N+1 -> N exercised with real blocks of both minors.
pub const HANDOFF_MINOR: u16 = parse_u16(env!("BLINK_HANDOFF_MINOR"));

const fn parse_u16(s: &str) -> u16 {
    let b = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "BLINK_HANDOFF_MINOR must be a decimal number");
        v = v * 10 + (b[i] - b'0') as u32;
        assert!(v <= u16::MAX as u32, "BLINK_HANDOFF_MINOR too large");
        i += 1;
    }
    v as u16
}

extern "C" {
    static __image_start: u8;
    /// End of what the image ever writes (code, data, bss, stacks); the
    /// image's footprint is rounded up to 2 MiB beyond it.
    static __stacks_end: u8;
    static reload_trampoline: u8;
    static reload_trampoline_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// The `debug-rejuvenate-corrupt` command: a reload whose handoff block is
/// damaged after it was written (the new image must refuse it).
pub fn request_corrupted() {
    CORRUPT.store(true, Ordering::Release);
    if !request(Target::Current) {
        CORRUPT.store(false, Ordering::Release);
    }
}

/// The `rejuvenate` (`Target::Current`) and `upgrade` (`Target::Other`)
/// commands. The image to start is checked completely (checksum, arm64
/// header) before any VM is paused; returns whether a reload was started.
pub fn request(target: Target) -> bool {
    if REQUESTED.load(Ordering::Acquire) {
        hvprintln!("rejuvenate: a reload is already in progress");
        return false;
    }
    let started = super::boot::STARTED_CPUS.load(Ordering::Acquire);
    let online = hyp().online.load(Ordering::Acquire);
    if online & started != started {
        error!("rejuvenate: CPUs {:#x} started but not all online yet ({:#x}); nothing changes, try again", started, online);
        return false;
    }
    let (slot, img) = match image_slots::choose(target) {
        Ok(s) => s,
        Err(e) => {
            error!("rejuvenate: {}; nothing changes, VMs keep running", e);
            return false;
        }
    };
    if target == Target::Other {
        hvprintln!(
            "upgrade: image slot {} holds '{}' ({} bytes, checksum ok); this is '{}'",
            slot,
            img.version,
            img.image_len,
            image_slots::VERSION
        );
    }
    TARGET_SLOT.store(slot, Ordering::Release);
    T_REQUEST.store(counter(), Ordering::Release);
    PARKED.store(0, Ordering::Release);
    RELEASE.store(0, Ordering::Release);
    hvprintln!("rejuvenate: suspending {} VMs for a warm reload (generation {})", hyp().vms.len(), GENERATION.load(Ordering::Relaxed) + 1);
    REQUESTED.store(true, Ordering::Release);
    for cpu in 0..hyp().ncpus {
        if cpu != cpu_index() {
            gic().send_sgi(cpu, SGI_KICK);
        }
    }
    true
}

/// `/chosen/blink,rejuvenate-interval-ms`: reload every `ms` milliseconds,
/// counted from when this image started.
pub fn set_periodic(ms: u32, from: u64) {
    PERIODIC_MS.store(ms as u64, Ordering::Relaxed);
    PERIODIC_DUE.store(from + counter_freq() * ms as u64 / 1000, Ordering::Release);
}

pub fn periodic_due() -> u64 {
    PERIODIC_DUE.load(Ordering::Acquire)
}

/// CPU 0, between guest exits: start the periodic reload when it is due.
pub fn check_periodic() {
    let due = PERIODIC_DUE.load(Ordering::Acquire);
    if due != u64::MAX && counter() >= due && !requested() {
        // One attempt per period: if it cannot start, say so and go on.
        PERIODIC_DUE.store(u64::MAX, Ordering::Release);
        hvprintln!("rejuvenate: periodic reload (every {} ms)", PERIODIC_MS.load(Ordering::Relaxed));
        if !request(Target::Current) {
            set_periodic(PERIODIC_MS.load(Ordering::Relaxed) as u32, counter());
        }
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Acquire)
}

/// A secondary CPU with its vCPUs saved: wait for CPU 0's decision. Returns
/// only if the reload was abandoned.
pub fn park() {
    PARKED.fetch_add(1, Ordering::AcqRel);
    sev();
    loop {
        match RELEASE.load(Ordering::Acquire) {
            3 => holding_pen::enter(cpu_index()),
            1 => {
                if let Some(Some(c)) = CONDUIT.get() {
                    let _ = firmware::cpu_off(*c);
                }
                // CPU_OFF does not return; if it did, stay quiet.
                loop {
                    wfi();
                }
            }
            2 => return,
            // CPU 0 sends SEV with its decision; the event stream bounds it.
            _ => wfe(),
        }
    }
}

fn abandon(why: &str) {
    error!("rejuvenate: {}; reload abandoned, VMs resume", why);
    // A debug corruption applies to this attempt only.
    CORRUPT.store(false, Ordering::Release);
    RELEASE.store(2, Ordering::Release);
    sev();
    REQUESTED.store(false, Ordering::Release);
    let ms = PERIODIC_MS.load(Ordering::Relaxed);
    if ms != 0 {
        set_periodic(ms as u32, counter());
    }
}

/// CPU 0, its own vCPUs saved: finish the suspend and jump. Returns only if
/// the reload had to be abandoned (the VMs then simply continue).
pub fn perform(dtb: u64) {
    let h = hyp();
    // Secondaries in their run loops (`request` made sure every CPU this
    // image started is among them).
    let others = h.online.load(Ordering::Acquire) & !1;
    let deadline = counter() + counter_freq() * 2;
    while PARKED.load(Ordering::Acquire) < others.count_ones() as usize {
        if counter() > deadline {
            return abandon("not every CPU stopped its vCPUs within 2 s");
        }
        wfe();
    }
    let t_quiesced = counter();
    let ho = snapshot(h, t_quiesced);
    let bytes = match handoff::encode(&ho, HANDOFF_MINOR) {
        Ok(b) => b,
        Err(e) => return abandon(&alloc::format!("handoff block not written: {e}")),
    };
    if bytes.len() as u64 > BOARD.handoff.1 {
        return abandon("handoff block larger than its region");
    }
    // SAFETY: the handoff region is reserved for this and outside the heap.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), BOARD.handoff.0 as *mut u8, bytes.len()) };
    if CORRUPT.swap(false, Ordering::AcqRel) {
        hvprintln!("rejuvenate: debug: flipping one byte in the middle of the handoff block");
        // SAFETY: inside the block just written.
        unsafe { *((BOARD.handoff.0 + bytes.len() as u64 / 2) as *mut u8) ^= 0x40 };
    }
    let slot = TARGET_SLOT.load(Ordering::Acquire);
    let (src, copy_len) = match image_slots::copy_source(slot) {
        Ok(s) => s,
        Err(e) => return abandon(&alloc::format!("image slot {slot} no longer holds a valid image: {e}")),
    };
    let pen = holding_pen::prepare(h.ncpus);
    if !pen && others != 0 && !matches!(CONDUIT.get(), Some(Some(_))) {
        return abandon("secondary CPUs can be neither parked nor powered off");
    }
    if pen {
        RELEASE.store(3, Ordering::Release);
        sev();
        // Past this point there is no way back for a parked CPU (its caches
        // are off, it waits for the new image), and jumping while another
        // CPU still runs old code would overwrite it under its feet: wait
        // for every one, however long, and say so.
        for cpu in (1..usize::BITS as usize).filter(|c| others & (1 << c) != 0) {
            while !holding_pen::wait_parked(cpu, counter() + counter_freq()) {
                error!("rejuvenate: cpu {} has not reached the holding pen yet; waiting", cpu);
            }
        }
    } else {
        RELEASE.store(1, Ordering::Release);
        sev();
        if let Some(Some(c)) = CONDUIT.get() {
            for cpu in h.cpu_mpidrs.iter().skip(1) {
                let deadline = counter() + counter_freq();
                while !firmware::is_off(*c, *cpu) && counter() < deadline {
                    core::hint::spin_loop();
                }
            }
        }
    }
    jump(dtb, src, copy_len, bytes.len() as u64, BOARD.image_slots[slot].0);
}

fn jump(dtb: u64, src: u64, copy_len: u64, handoff_len: u64, slot_base: u64) -> ! {
    // SAFETY: linker symbols delimit the trampoline code.
    let (t_start, t_end, img_start, img_end) = unsafe {
        (sym(&reload_trampoline), sym(&reload_trampoline_end), sym(&__image_start), sym(&__stacks_end))
    };
    let t_len = t_end - t_start;
    // SAFETY: the trampoline page is reserved for this, outside the image it
    // overwrites; the code is position independent (no literal pools).
    unsafe { core::ptr::copy_nonoverlapping(t_start as *const u8, BOARD.trampoline as *mut u8, t_len as usize) };
    cache::clean_invalidate_to_poc(BOARD.trampoline, t_len);
    cache::clean_invalidate_to_poc(BOARD.handoff.0, handoff_len);
    cache::clean_invalidate_to_poc(src, copy_len);
    cache::clean_invalidate_to_poc(img_start, img_end - img_start);
    cache::invalidate_icache();
    crate::write_sysreg!(hcr_el2, 0);
    // SAFETY: the trampoline never returns: it replaces this image and
    // enters the new one. Everything it reads was cleaned to memory above.
    unsafe {
        let t: extern "C" fn(u64, u64, u64, u64, u64, u64, u64, u64) -> ! = core::mem::transmute(BOARD.trampoline as usize);
        t(BOARD.load_address, src, copy_len, dtb, BOARD.handoff.0, WARM_MAGIC, slot_base, counter())
    }
}

fn snapshot(h: &super::Hyp, t_quiesced: u64) -> Handoff {
    let vms = h
        .vms
        .iter()
        .map(|vm| HoVm {
            id: vm.id as u32,
            name: vm.name.clone(),
            ram: Region::new(vm.ram_pa, vm.ram_size),
            cntvoff: vm.cntvoff,
            stopped: vm.state() == super::vm::VmState::Stopped,
            passthrough: vm
                .passthrough
                .iter()
                .map(|p| PassthroughState { path: p.path.clone(), regions: p.regions.clone(), intids: p.intids.clone() })
                .collect(),
            vcpus: vm
                .vcpus
                .iter()
                .map(|v| {
                    let st = v.state.lock();
                    let (boot_entry, boot_context) = v.boot_request();
                    HoVcpu {
                        index: v.index as u32,
                        power: v.power_state(),
                        waiting: st.waiting,
                        boot_entry,
                        boot_context,
                        x: st.regs.x,
                        pc: st.regs.pc,
                        pstate: st.regs.pstate,
                        sysregs: st.el1.named(),
                        fp: FpState { q: st.fp.q, fpcr: st.fp.fpcr, fpsr: st.fp.fpsr },
                        vif: handoff::VifState { vmcr: st.vif.vmcr, apr: st.vif.apr, lrs: st.vif.lrs },
                    }
                })
                .collect(),
            vgic: (&*vm.vgic.lock()).into(),
            uart: vm.uart.lock().snapshot(),
            // A line being written goes on after the reload, not split.
            console_pending: console::pending(vm.id),
        })
        .collect();
    Handoff {
        generation: GENERATION.load(Ordering::Relaxed),
        timestamps: alloc::vec![
            ("request".to_string(), T_REQUEST.load(Ordering::Acquire)),
            ("quiesced".to_string(), t_quiesced),
            ("state_saved".to_string(), counter()),
        ],
        counter_freq: counter_freq(),
        prev_image: image_slots::current().map(|i| Region::new(BOARD.image_slots[i].0, BOARD.image_slots[i].1)),
        writer: Some(image_slots::VERSION.to_string()),
        vms,
    }
}

/// New image: validate the handoff block and rebuild the VMs it describes.
/// Returns the VMs, the block and when it had been decoded and validated.
pub fn resume(addr: u64, info: &vmm::config::HostInfo, g: &Gic, ncpus: usize, gicv: Option<u64>) -> Result<(Vec<Vm>, Handoff, u64), String> {
    // SAFETY: the handoff region is reserved for this, mapped, and at most
    // its size is read; the reader validates everything in it.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, BOARD.handoff.1 as usize) };
    let limits = HandoffLimits {
        hyp_region: Region::new(BOARD.hyp_region.0, BOARD.hyp_region.1),
        ram: info.ram.clone(),
        max_vms: 16,
        max_vcpus: vmm::layout::MAX_VCPUS,
        required_sysregs: El1Context::NAMES,
    };
    let ho = handoff::decode(bytes, &limits).map_err(|e| e.to_string())?;
    let t_parsed = counter();
    let minor = handoff::peek_header(bytes).map(|h| h.minor).unwrap_or(0);
    hvprintln!(
        "handoff: format {}.{} written by '{}' (generation {}); this is '{}', format {}.{}",
        handoff::MAJOR,
        minor,
        ho.writer.as_deref().unwrap_or("unknown"),
        ho.generation,
        image_slots::VERSION,
        handoff::MAJOR,
        HANDOFF_MINOR
    );
    let mut vms = Vec::new();
    let mut next_pcpu = 0;
    for s in &ho.vms {
        if s.vgic.version != g.version() {
            return Err(alloc::format!("vm {} was suspended with a GICv{} vGIC, this machine has the other", s.id, if s.vgic.version == vmm::vgic::Version::V3 { 3 } else { 2 }));
        }
        let pcpus: Vec<usize> = (0..s.vcpus.len()).map(|i| (next_pcpu + i) % ncpus).collect();
        next_pcpu = (next_pcpu + s.vcpus.len()) % ncpus;
        let passthrough: Vec<vmm::config::Passthrough> = s
            .passthrough
            .iter()
            .map(|p| vmm::config::Passthrough {
                path: p.path.clone(),
                name: p.path.rsplit('/').next().unwrap_or("device").to_string(),
                compatible: Vec::new(),
                regions: p.regions.clone(),
                intids: p.intids.clone(),
                has_clocks: false,
            })
            .collect();
        let vgic = vmm::vgic::Vgic::try_from(&s.vgic).map_err(|e| alloc::format!("vm {}: vGIC state: {e}", s.id))?;
        let uart = vmm::vpl011::Pl011::restore(&s.uart).map_err(|e| alloc::format!("vm {}: UART state: {e}", s.id))?;
        let vm = Vm::build(VmShape {
            id: s.id as usize,
            name: s.name.clone(),
            ram_pa: s.ram.base,
            ram_size: s.ram.size,
            vcpus: s.vcpus.len(),
            passthrough: &passthrough,
            gicv,
            vgic,
            uart,
            cntvoff: s.cntvoff,
            pcpus: &pcpus,
        })?;
        for (v, st) in vm.vcpus.iter().zip(&s.vcpus) {
            let regs = GuestRegs { x: st.x, pc: st.pc, pstate: st.pstate };
            v.restore(
                st.power,
                (st.boot_entry, st.boot_context),
                VcpuState {
                    regs,
                    el1: El1Context::from_named(|n| st.sysreg(n)),
                    fp: FpContext { q: st.fp.q, fpcr: st.fp.fpcr, fpsr: st.fp.fpsr },
                    vif: VifState { vmcr: st.vif.vmcr, apr: st.vif.apr, lrs: st.vif.lrs },
                    // Wake-up deadlines are not carried over; a vCPU that
                    // waited in WFI simply resumes (a spurious wake-up,
                    // which WFI allows).
                    waiting: false,
                },
            );
        }
        if s.stopped {
            vm.stop();
        }
        vms.push(vm);
    }
    Ok((vms, ho, t_parsed))
}

/// Make a consumed (or refused) handoff block unusable, so that a later
/// cold reset can never resume from it.
pub fn consume(addr: u64) {
    // SAFETY: the handoff region is reserved for this and mapped.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, 64) };
    cache::clean_to_poc(addr, 64);
}

/// Print how long each phase of the reload took, from the old image's
/// timestamps and the new image's own.
pub fn report(ho: &Handoff, mine: &[(&str, u64)]) {
    let freq = ho.counter_freq.max(1);
    let mut all: Vec<(String, u64)> = ho.timestamps.clone();
    all.extend(mine.iter().map(|(n, t)| (n.to_string(), *t)));
    let us = |a: u64, b: u64| b.saturating_sub(a) * 1_000_000 / freq;
    let first = all.first().map(|t| t.1).unwrap_or(0);
    let mut line = String::new();
    for w in all.windows(2) {
        line.push_str(&alloc::format!(" {}->{} {} us,", w[0].0, w[1].0, us(w[0].1, w[1].1)));
    }
    let resumed = all.last().map(|t| t.1).unwrap_or(0);
    let quiesced = all.iter().find(|t| t.0 == "quiesced").map(|t| t.1).unwrap_or(first);
    hvprintln!(
        "reload: generation {}, {} VMs resumed; request to resume {} us, VMs paused for {} us;{}",
        GENERATION.load(Ordering::Relaxed),
        ho.vms.len(),
        us(first, resumed),
        us(quiesced, resumed),
        line.trim_end_matches(',')
    );
    // Absolute values, so that a guest's own view of the pause (its virtual
    // counter plus its VM's offset) can be lined up with it.
    hvprintln!("reload: VMs paused from counter {} to counter {}", quiesced, resumed);
}
