//! Bring-up: from the device tree to running VMs. A cold boot creates the
//! VMs from their configuration; a warm entry (see the ABI in
//! `reload/mod.rs`) hands them to `reload::resume` instead, and both meet
//! again to publish the machine and enter the run loop.
use crate::arch::aarch64::gic::{
    self, Gic, GIC, PPI_HYP_TIMER, PPI_MAINTENANCE, PPI_VTIMER, SGI_KICK,
};
use crate::arch::aarch64::{mmu, sysreg, traps};
use crate::board::board;
use crate::drivers::psci::{self, Conduit};
use crate::drivers::uart::EmergencyWriter;
use crate::heap;
use crate::reload::{self, pen, periodic, resume, revert, slots, WarmEntry};
use crate::services::{self, console};
use crate::vcpu::vm::{Vm, VmShape};
use crate::vcpu::{self, run, Machine, MAX_CPUS, MAX_VMS, STARTED_CPUS};
use alloc::vec::Vec;
use log::{error, info};
use vmm::config::{host_info, parse_vms, GicRegs, HostInfo, HostUart, Limits, PsciMethod};
use vmm::memory::{Region, RegionSet};
use vmm::vgic::{Version, Vgic};

const MIB: u64 = 1 << 20;

/// Stop with a message on the early console.
pub fn fatal(msg: core::fmt::Arguments) -> ! {
    use core::fmt::Write;
    let _ = write!(EmergencyWriter, "[hv] FATAL: {}\r\n", msg);
    halt()
}

pub fn halt() -> ! {
    loop {
        sysreg::wfi();
    }
}

fn enable_cpu_interrupts(g: &Gic, cpu: usize) {
    g.init_cpu(cpu);
    for i in [SGI_KICK, PPI_MAINTENANCE, PPI_HYP_TIMER, PPI_VTIMER] {
        g.enable(cpu, i, true);
    }
}

/// The device tree blob at `addr`, after checking its header.
fn device_tree(addr: usize) -> &'static [u8] {
    if addr == 0 || !addr.is_multiple_of(8) {
        fatal(format_args!(
            "device tree: none passed in x0 (got {:#x})",
            addr
        ));
    }
    // SAFETY: the boot protocol puts a device tree in RAM at x0; we read its
    // 8-byte header first and trust `totalsize` only after checking the magic
    // and a sane bound.
    let header = unsafe { core::slice::from_raw_parts(addr as *const u8, 8) };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if magic != 0xd00d_feed {
        fatal(format_args!(
            "device tree: bad magic {:#x} at {:#x}",
            magic, addr
        ));
    }
    if !(40..=(64 << 20)).contains(&size) {
        fatal(format_args!("device tree: implausible size {} bytes", size));
    }
    // SAFETY: as above; the blob lies in RAM the boot loader gave us.
    unsafe { core::slice::from_raw_parts(addr as *const u8, size) }
}

extern "C" {
    fn secondary_entry();
    /// Where spin-table CPUs enter (they find their index by MPIDR).
    fn spin_table_entry();
}

/// The primary CPU's entry from boot.S, with x0-x4 as the boot protocol or
/// the warm-entry ABI (`reload/mod.rs`) passed them.
#[no_mangle]
extern "C" fn rust_primary_main(dtb_addr: usize, x1: u64, x2: u64, x3: u64, x4: u64) -> ! {
    let t_entry = sysreg::counter();
    reload::set_image_entered(t_entry);
    let warm = WarmEntry::from_entry(x1, x2, x3, x4);
    console::init_early(board().console);
    heap::init();
    console::init_logger();
    traps::init_el2();
    let dtb = device_tree(dtb_addr);
    let info = match host_info(dtb) {
        Ok(i) => i,
        Err(e) => fatal(format_args!("device tree: {}", e)),
    };
    let info = HOST_INFO.call_once(|| info);
    check_dtb_placement(dtb_addr as u64, dtb.len() as u64);
    let max_cpus = match crate::board::confirm(&info.compatible) {
        Ok(b) => b.max_cpus,
        Err(e) => fatal(format_args!("board: {}", e)),
    };
    let ncpus = info.cpus.len().min(max_cpus).min(MAX_CPUS);
    let mpidrs: Vec<u64> = info.cpus.iter().take(ncpus).map(|c| c.mpidr).collect();
    // The maintenance link's UART, if the tree has the one the board names
    // (mapped for the hypervisor; whether it drives it is decided once the
    // VMs are known: one may own it).
    let maint_uart = board()
        .maintenance
        .and_then(|u| vmm::config::uart_at(dtb, u.base as u64).ok().flatten());
    let g = init_el2_mmu_gic(info, &mpidrs, maint_uart.as_ref());
    hvprintln!(
        "{} on {}: EL2, {} CPUs, GICv{}",
        crate::VERSION,
        board().name,
        ncpus,
        if g.version() == Version::V3 { 3 } else { 2 }
    );
    let (heap_used, heap_total) = heap::usage();
    info!(
        "heap {} KiB of {} KiB in use, {} list registers",
        heap_used / 1024,
        heap_total / 1024,
        g.nr_lrs()
    );
    // The counter's rate differs between boards (54 MHz on a Pi 4, the CPU
    // model's on QEMU) and is never assumed.
    info!(
        "image at {:#x}, timer {} Hz (CNTFRQ_EL0)",
        crate::board::image_base(),
        sysreg::counter_freq()
    );
    psci::init(match (board().cpu_start, info.psci) {
        (platform::CpuStart::Psci, Some(PsciMethod::Smc)) => Some(Conduit::Smc),
        (platform::CpuStart::Psci, Some(PsciMethod::Hvc)) => Some(Conduit::Hvc),
        _ => None,
    });
    // A trial image's safety net (reload::revert): armed before anything
    // in the warm entry can fail; on a cold boot, the VMs a hung trial
    // image left are handed back before anything touches their memory.
    match &warm {
        Some(w) => revert::arm(w, dtb_addr as u64),
        None => revert::after_reset(dtb_addr as u64),
    }
    #[cfg(blink_test_faults)]
    {
        reload::test_fault::init(dtb);
        if warm.is_some() {
            reload::test_fault::at_warm_entry();
        }
    }
    let t_el2_ready = sysreg::counter();
    let gicv = match info.gic.regs {
        GicRegs::V2 { gicv, .. } => Some(gicv.base),
        GicRegs::V3 { .. } => None,
    };
    // The block is validated and the VMs rebuilt while the old image's
    // secondaries still wait in the pen, so that a refusal can be handed
    // back.
    let resumed = warm.map(|w| resume::vms(&w, info, g, ncpus, gicv));
    if let Some(Err(e)) = &resumed {
        revert::refused(e.code, &e.why);
    }
    revert::disarm();
    start_secondaries(info, ncpus, warm.is_some());
    if let Some(w) = &warm {
        // Whatever became of it, this block is never used again.
        resume::consume(w.handoff);
    }
    let (vms, resumed) = match resumed {
        Some(Ok(mut r)) => (core::mem::take(&mut r.vms), Some(r)),
        Some(Err(e)) => {
            error!(
                "handoff block refused: {}; cold-booting the VMs from their configuration",
                e.why
            );
            (create_vms(dtb, dtb_addr as u64, info, ncpus, g, gicv), None)
        }
        None => {
            pen::forget();
            slots::stage_self();
            (create_vms(dtb, dtb_addr as u64, info, ncpus, g, gicv), None)
        }
    };
    reload::trial::start(warm.is_some());
    let uart_intid = info.uart.intid();
    if let Some(i) = uart_intid {
        g.route_spi(i, 0);
        g.enable(0, i, true);
    }
    // Physical interrupts of passed-through devices go to the CPU of their
    // VM's first vCPU, which forwards them (see vcpu::irq).
    for vm in &vms {
        for &intid in &vm.passthrough_intids {
            g.route_spi(intid, vm.vcpus[0].pcpu);
            g.enable(vm.vcpus[0].pcpu, intid, true);
            info!(
                "vm {} '{}': owns physical interrupt {}",
                vm.id, vm.name, intid
            );
        }
    }
    let maint_intid = services::maint_link::start(
        board().maintenance,
        maint_uart.as_ref(),
        &vms,
        resumed.as_ref().and_then(|r| r.handoff.upload),
    );
    // After a warm reload, input stays with the shell `rejuvenate` was typed in.
    console::attach_vms(
        &vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        resumed.is_some(),
    );
    if let Some(r) = &resumed {
        for (i, s) in r.handoff.vms.iter().enumerate() {
            console::restore_pending(i, &s.console_pending);
        }
    }
    let h = vcpu::publish(Machine {
        vms,
        ncpus,
        uart_intid,
        maint_intid,
        online: core::sync::atomic::AtomicUsize::new(0),
        cpu_mpidrs: mpidrs,
        dtb: dtb_addr as u64,
        upcalls: &crate::upcalls::WIRING,
    });
    match resumed {
        Some(r) => {
            let t_resumed = sysreg::counter();
            for vm in &h.vms {
                hvprintln!(
                    "vm {} '{}': resumed, {} MiB at {:#x}, {} vCPUs",
                    vm.id,
                    vm.name,
                    vm.ram_size / MIB,
                    vm.ram_pa,
                    vm.vcpus.len()
                );
            }
            let t_jump = warm.map(|w| w.t_jump).unwrap_or(0);
            resume::report(
                &r.handoff,
                &[
                    ("trampoline", t_jump),
                    ("new_image_entry", t_entry),
                    ("el2_ready", t_el2_ready),
                    ("handoff_parsed", r.t_parsed),
                    ("vms_rebuilt", r.t_rebuilt),
                    ("resumed", t_resumed),
                ],
            )
        }
        None => {
            for vm in &h.vms {
                hvprintln!("vm {} '{}': started", vm.id, vm.name);
            }
            // For `cargo xtask bench reload`: the system counter runs on across
            // a machine reset, so these against the `reboot` line's counter
            // give the cold path's length; a guest's virtual counter counts
            // from its VM's offset (creation), so offset + that counter is
            // when the guest reached a point, in system-counter time.
            info!(
                "cold boot: image entered at counter {}, VMs started at counter {}, counter offsets {:?}",
                t_entry,
                sysreg::counter(),
                h.vms.iter().map(|v| v.cntvoff).collect::<Vec<_>>()
            );
        }
    }
    if h.vms.is_empty() {
        error!("no VM to run; the hypervisor console stays available");
    }
    for problem in &info.ignored {
        error!("device tree: {}", problem);
    }
    if let Some(ms) = info.rejuvenate_interval_ms {
        info!("periodic warm reload every {} ms", ms);
        periodic::set(ms, t_entry);
    }
    run::cpu_loop(0)
}

/// The hypervisor's own page tables (RAM and the devices it drives) and
/// the physical GIC, with this CPU's interface enabled.
fn init_el2_mmu_gic(info: &HostInfo, mpidrs: &[u64], maint: Option<&HostUart>) -> &'static Gic {
    let mut devices: Vec<(u64, u64)> = Vec::new();
    devices.push((info.uart.base, info.uart.size.max(0x1000)));
    devices.extend(maint.map(|u| (u.base, u.size.max(0x1000))));
    devices.extend(board().reset.mmio());
    devices.push((info.gic.gicd.base, info.gic.gicd.size));
    match info.gic.regs {
        GicRegs::V2 { gicc, gich, .. } => {
            devices.push((gicc.base, gicc.size));
            devices.push((gich.base, gich.size));
        }
        GicRegs::V3 { gicr } => devices.push((gicr.base, gicr.size)),
    }
    let ram: Vec<(u64, u64)> = info.ram.iter().map(|r| (r.base, r.size)).collect();
    if let Err(e) = mmu::init_primary(&ram, &devices) {
        fatal(format_args!("EL2 page tables: {:?}", e));
    }
    let g = match info.gic.regs {
        GicRegs::V2 { gicc, gich, .. } => Gic::V2(gic::v2::GicV2::new(
            info.gic.gicd.base as usize,
            gicc.base as usize,
            gich.base as usize,
        )),
        GicRegs::V3 { gicr } => {
            match gic::v3::GicV3::new(
                info.gic.gicd.base as usize,
                gicr.base as usize,
                gicr.size as usize,
                mpidrs,
            ) {
                Ok(g) => Gic::V3(g),
                Err(e) => fatal(format_args!("GIC: {}", e)),
            }
        }
    };
    let g = GIC.call_once(|| g);
    enable_cpu_interrupts(g, 0);
    g
}

/// Start CPUs 1..ncpus: from the holding pen after a warm reload, else (or
/// for any not parked there) the board's way.
fn start_secondaries(info: &HostInfo, ncpus: usize, warm: bool) {
    // After a warm reload the old image's secondaries wait in the holding
    // pen; only a warm entry may trust it (see reload::pen).
    let (released, warm) = if warm {
        match pen::release(ncpus, secondary_entry as *const () as u64) {
            pen::Found::Released(mask) => (mask, true),
            // The machine was reset since the CPUs parked (a hung trial
            // image, see reload::revert): they start as at a cold boot.
            pen::Found::MachineReset => (0, false),
        }
    } else {
        (0, false)
    };
    if released != 0 {
        info!(
            "{} secondary CPU(s) released from the holding pen",
            released.count_ones()
        );
        STARTED_CPUS.fetch_or(released as usize, core::sync::atomic::Ordering::AcqRel);
    }
    if released.count_ones() as usize + 1 >= ncpus {
        return;
    }
    let conduit = match (board().cpu_start, psci::conduit()) {
        (platform::CpuStart::Psci, Some(c)) => c,
        (platform::CpuStart::Psci, None) => {
            error!("no PSCI in the device tree: running on the boot CPU only");
            return;
        }
        (platform::CpuStart::SpinTable, _) => {
            return start_by_spin_table(info, ncpus, released, warm);
        }
    };
    for (i, cpu) in info.cpus.iter().enumerate().take(ncpus).skip(1) {
        if released & (1 << i) != 0 {
            continue;
        }
        match psci::cpu_on(
            conduit,
            cpu.mpidr,
            secondary_entry as *const () as u64,
            i as u64,
        ) {
            Ok(_) => {
                STARTED_CPUS.fetch_or(1 << i, core::sync::atomic::Ordering::AcqRel);
            }
            Err(e) => error!("cpu {} (MPIDR {:#x}) did not start: {:?}", i, cpu.mpidr, e),
        }
    }
}

/// Spin-table boards: release CPUs 1..ncpus (those not already released
/// from the holding pen) from their `cpu-release-addr`. A CPU can be
/// released once per machine reset: after a warm reload one missing from
/// the pen is lost until the next cold boot.
fn start_by_spin_table(info: &HostInfo, ncpus: usize, released: u64, warm: bool) {
    use crate::drivers::spin_table;
    let entry = spin_table_entry as *const () as u64;
    for (i, cpu) in info.cpus.iter().enumerate().take(ncpus).skip(1) {
        if released & (1 << i) != 0 {
            continue;
        }
        if warm {
            error!(
                "cpu {} (MPIDR {:#x}) is not in the holding pen, and a spin table releases a CPU only once: it stays off until a cold boot",
                i, cpu.mpidr
            );
            continue;
        }
        // The mailbox must be RAM the hypervisor maps (and not its own).
        let mapped = cpu.release_addr.is_some_and(|a| {
            info.ram
                .iter()
                .any(|r| a >= r.base && a + 8 <= r.base + r.size)
                && !(crate::board::image_base()..board().heap_end()).contains(&a)
        });
        if cpu.release_addr.is_some() && !mapped {
            error!(
                "cpu {} (MPIDR {:#x}): release address {:#x} is outside RAM or inside the hypervisor; not started",
                i,
                cpu.mpidr,
                cpu.release_addr.unwrap_or(0)
            );
            continue;
        }
        match spin_table::release(i, cpu.mpidr, cpu.release_addr, entry) {
            Ok(()) => {
                info!(
                    "cpu {} (MPIDR {:#x}) released from the spin table at {:#x}",
                    i,
                    cpu.mpidr,
                    cpu.release_addr.unwrap_or(0)
                );
                STARTED_CPUS.fetch_or(1 << i, core::sync::atomic::Ordering::AcqRel);
            }
            Err(e) => error!("cpu {} (MPIDR {:#x}) did not start: {:?}", i, cpu.mpidr, e),
        }
    }
}

/// The device tree must lie outside the memory the hypervisor is about to
/// use for itself (its image, heap and the regions kept across reloads):
/// the heap would overwrite it.
fn check_dtb_placement(addr: u64, len: u64) {
    let (base, size) = board().hyp_region;
    let used = crate::board::image_base().max(base)..base + size;
    if addr < used.end && addr + len > used.start {
        fatal(format_args!(
            "device tree at {:#x} ({} bytes) overlaps the hypervisor's memory {:#x}..{:#x} on '{}': the boot loader must place it elsewhere",
            addr,
            len,
            used.start,
            used.end,
            board().name
        ));
    }
}

#[no_mangle]
extern "C" fn rust_secondary_main(index: usize) -> ! {
    traps::init_el2();
    mmu::init_secondary();
    let g = GIC.wait();
    enable_cpu_interrupts(g, index);
    hvprintln!("cpu {} online", index);
    vcpu::wait_published();
    run::cpu_loop(index)
}

/// Memory nothing else may use: the board's, the hypervisor's, the device tree's.
fn reserved_regions(dtb: &[u8], dtb_addr: u64, info: &HostInfo) -> Vec<Region> {
    let (hyp_base, hyp_size) = board().hyp_region;
    let mut reserved = info.reserved.clone();
    reserved.push(Region::new(hyp_base, hyp_size));
    reserved.push(Region::new(
        dtb_addr & !0xfff,
        (dtb.len() as u64 + 0xfff) & !0xfff,
    ));
    reserved
}

fn vm_limits(reserved: &[Region], info: &HostInfo) -> Limits {
    Limits {
        max_vcpus: vmm::layout::MAX_VCPUS,
        max_vms: MAX_VMS,
        reserved: reserved.to_vec(),
        ram: info.ram.clone(),
    }
}

/// What the host device tree says about the machine, kept for
/// [`find_config`].
static HOST_INFO: spin::Once<HostInfo> = spin::Once::new();

/// After a warm reload (see `Vm::config`, asked through `vcpu::Upcalls`): the configuration in the host
/// device tree of the VM with this name and shape, if there is one.
pub fn find_config(name: &str, ram_size: u64, vcpus: usize) -> Option<vmm::config::VmConfig> {
    let (info, dtb_addr) = (HOST_INFO.get()?, vcpu::machine().dtb);
    let dtb = device_tree(dtb_addr as usize);
    let reserved = reserved_regions(dtb, dtb_addr, info);
    let parsed = parse_vms(dtb, &vm_limits(&reserved, info)).ok()?;
    parsed
        .vms
        .into_iter()
        .find(|c| c.name == name && c.memory == ram_size && c.vcpus == vcpus)
}

fn create_vms(
    dtb: &[u8],
    dtb_addr: u64,
    info: &HostInfo,
    ncpus: usize,
    g: &Gic,
    gicv: Option<u64>,
) -> Vec<Vm> {
    let reserved = reserved_regions(dtb, dtb_addr, info);
    let limits = vm_limits(&reserved, info);
    let parsed = match parse_vms(dtb, &limits) {
        Ok(p) => p,
        Err(e) => {
            error!("device tree: VM descriptions unreadable: {}", e);
            return Vec::new();
        }
    };
    for e in &parsed.errors {
        error!("{}; VM not created", e);
    }
    // Free RAM: everything but reserved regions, modules and static memory.
    let mut free = RegionSet::from_regions(info.ram.iter().copied()).unwrap_or_default();
    for r in reserved.iter().copied() {
        let _ = free.remove(r);
    }
    for c in &parsed.vms {
        let _ = free.remove(Region::new(
            c.kernel.base & !0xfff,
            (c.kernel.size + 0x1fff) & !0xfff,
        ));
        if let Some(rd) = c.ramdisk {
            let _ = free.remove(Region::new(rd.base & !0xfff, (rd.size + 0x1fff) & !0xfff));
        }
        if let Some(s) = c.static_mem {
            let _ = free.remove(s);
        }
    }
    let mut vms = Vec::new();
    let mut next_pcpu = 0;
    for cfg in &parsed.vms {
        let base = match cfg.static_mem {
            Some(s) => s.base,
            None => match free.alloc(cfg.memory, 2 * MIB) {
                Some(b) => b,
                None => {
                    error!(
                        "{}: not enough free memory for {} MiB; VM not created",
                        cfg.path,
                        cfg.memory / MIB
                    );
                    continue;
                }
            },
        };
        let pcpus: Vec<usize> = (0..cfg.vcpus).map(|i| (next_pcpu + i) % ncpus).collect();
        let id = vms.len();
        let shape = VmShape {
            id,
            name: cfg.name.clone(),
            ram_pa: base,
            ram_size: cfg.memory,
            vcpus: cfg.vcpus,
            passthrough: &cfg.passthrough,
            gicv,
            vgic: Vgic::new(g.version(), cfg.vcpus, g.nr_lrs()),
            uart: vmm::vpl011::Pl011::new(),
            cntvoff: sysreg::counter(),
            pcpus: &pcpus,
        };
        match Vm::build(shape)
            .and_then(|vm| vm.load_images(cfg, g.version()).map(|start| (vm, start)))
        {
            Ok((vm, (entry, dtb))) => {
                vm.set_config(cfg.clone());
                hvprintln!(
                    "vm {} '{}': {} MiB at {:#x}, {} vCPUs",
                    id,
                    vm.name,
                    cfg.memory / MIB,
                    base,
                    cfg.vcpus
                );
                vm.vcpus[0].request_on(entry, dtb);
                next_pcpu = (next_pcpu + cfg.vcpus) % ncpus;
                vms.push(vm);
            }
            Err(e) => error!("{}: {}; VM not created", cfg.path, e),
        }
    }
    vms
}
