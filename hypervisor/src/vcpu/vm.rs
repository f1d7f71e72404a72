//! A virtual machine: its memory, stage-2 tables, virtual GIC, console
//! UART and vCPUs. A VM is built either from its configuration (cold boot:
//! images copied into its RAM) or from a handoff block (warm reload: its RAM
//! is left exactly as it is).
use super::vcpu::Vcpu;
use crate::arch::aarch64::cache;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use spin::Mutex;
use vmm::config::{Passthrough, VmConfig};
use vmm::layout;
use vmm::stage2::{MemKind, Stage2Tables};
use vmm::vgic::Vgic;
use vmm::vpl011::Pl011;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Running = 0,
    /// Powered off (SYSTEM_OFF) or stopped by the hypervisor.
    Stopped = 1,
    /// SYSTEM_RESET: its vCPUs are leaving their physical CPUs; the last
    /// one to leave restarts the VM (see `lifecycle::restart_vm`).
    Resetting = 2,
    /// One CPU is restarting it (images copied again); nothing of the VM
    /// runs.
    Restarting = 3,
}

pub struct Vm {
    pub id: usize,
    pub name: String,
    /// Host-physical base and size of the VM's RAM (at IPA `layout::RAM_BASE`).
    pub ram_pa: u64,
    pub ram_size: u64,
    pub vttbr: u64,
    /// CNTVOFF_EL2: the guest's virtual counter starts near zero at creation.
    pub cntvoff: u64,
    pub vgic: Mutex<Vgic>,
    pub uart: Mutex<Pl011>,
    pub vcpus: Vec<Vcpu>,
    /// Host devices this VM owns.
    pub passthrough: Vec<Passthrough>,
    /// Physical SPIs of passed-through devices, delivered to this VM.
    pub passthrough_intids: Vec<u32>,
    state: AtomicU8,
    /// vCPUs of this VM currently loaded on a physical CPU (run.rs): a
    /// reset rewrites the VM only once this is zero.
    pub loaded: AtomicUsize,
    /// How it was configured, to copy its images again on SYSTEM_RESET: set
    /// when a cold boot creates it; after a warm reload looked up in the
    /// host device tree the first time it is needed (see [`Vm::config`]).
    /// Holds None if the device tree no longer describes it.
    config: spin::Once<Option<VmConfig>>,
    /// Boots since the hypervisor created it (1 = the first).
    pub boots: AtomicU32,
    /// Counter time of the VM's last sign of life in this image (0: none
    /// yet): an exit the guest caused itself (WFI, MMIO, a call, a trapped
    /// register) or an interrupt it finished handling. Physical interrupts
    /// taking the CPU away do not count: a guest spinning with its
    /// interrupts masked shows none (the trial health check, trial.rs).
    last_progress: AtomicU64,
    /// Kept alive: the hardware walks these tables.
    _stage2: Stage2Tables,
}

/// Where the kernel goes in guest RAM, from its arm64 Image header.
fn kernel_offset(image: &[u8]) -> u64 {
    if image.len() >= 64 && &image[56..60] == b"ARM\x64" {
        u64::from_le_bytes(image[8..16].try_into().unwrap_or([0; 8]))
    } else {
        0x8_0000
    }
}

/// Everything a VM is made of except the contents of its RAM.
pub struct VmShape<'a> {
    pub id: usize,
    pub name: String,
    pub ram_pa: u64,
    pub ram_size: u64,
    pub vcpus: usize,
    pub passthrough: &'a [Passthrough],
    /// Host GICV frame, mapped at the guest's GICC address (GICv2 only).
    pub gicv: Option<u64>,
    pub vgic: Vgic,
    pub uart: Pl011,
    pub cntvoff: u64,
    pub pcpus: &'a [usize],
}

impl Vm {
    /// The configuration a SYSTEM_RESET restarts the VM from. A warm reload
    /// carries none in the handoff block: the host device tree (and the
    /// modules it names, which nothing overwrites) still describes the VM,
    /// and it is read here on first use rather than while every VM is
    /// paused for the reload.
    pub fn config(&self) -> Option<&VmConfig> {
        self.config
            .call_once(|| {
                super::machine()
                    .upcalls
                    .find_config(&self.name, self.ram_size, self.vcpus.len())
            })
            .as_ref()
    }

    /// Cold boot: the configuration it was created from.
    pub fn set_config(&self, cfg: VmConfig) {
        self.config.call_once(|| Some(cfg));
    }

    /// Build a VM around RAM it already has: stage-2 tables, devices,
    /// vCPUs (all off). Nothing in guest RAM is read or written.
    pub fn build(shape: VmShape<'_>) -> Result<Self, String> {
        let mut s2 = Stage2Tables::new();
        s2.map(layout::RAM_BASE, shape.ram_pa, shape.ram_size, MemKind::Ram)
            .map_err(|e| alloc::format!("stage-2 mapping of RAM failed: {e:?}"))?;
        for dev in shape.passthrough {
            for r in &dev.regions {
                // Identity-mapped: the guest's device tree names the host
                // address, so the guest driver needs no translation.
                s2.map(r.base, r.base, r.size, MemKind::Device)
                    .map_err(|e| alloc::format!("stage-2 mapping of {} failed: {e:?}", dev.path))?;
            }
        }
        if let Some(gicv) = shape.gicv {
            s2.map(layout::GICC_BASE, gicv, layout::GICC_SIZE, MemKind::Device)
                .map_err(|e| alloc::format!("stage-2 mapping of GICV failed: {e:?}"))?;
        }
        let vmid = (shape.id + 1) as u8;
        Ok(Vm {
            id: shape.id,
            name: shape.name,
            ram_pa: shape.ram_pa,
            ram_size: shape.ram_size,
            vttbr: vmm::stage2::vttbr(s2.root_pa(), vmid),
            cntvoff: shape.cntvoff,
            vgic: Mutex::new(shape.vgic),
            uart: Mutex::new(shape.uart),
            vcpus: (0..shape.vcpus)
                .map(|i| Vcpu::new(i, shape.pcpus[i]))
                .collect(),
            passthrough: shape.passthrough.to_vec(),
            passthrough_intids: shape
                .passthrough
                .iter()
                .flat_map(|d| d.intids.iter().copied())
                .collect(),
            state: AtomicU8::new(VmState::Running as u8),
            loaded: AtomicUsize::new(0),
            config: spin::Once::new(),
            boots: AtomicU32::new(1),
            last_progress: AtomicU64::new(0),
            _stage2: s2,
        })
    }

    /// Cold boot: copy the kernel (and ramdisk) from their modules into the
    /// VM's RAM, write its device tree, and return where vCPU 0 starts
    /// (entry, device tree IPA).
    pub fn load_images(
        &self,
        cfg: &VmConfig,
        version: vmm::vgic::Version,
    ) -> Result<(u64, u64), String> {
        let size = self.ram_size;
        let ram_pa = self.ram_pa;
        // SAFETY: the module regions were checked by the configuration parser
        // to lie in host RAM and outside every reserved region; they are
        // identity-mapped and nothing writes them.
        let kernel = unsafe {
            core::slice::from_raw_parts(cfg.kernel.base as *const u8, cfg.kernel.size as usize)
        };
        let koff = kernel_offset(kernel);
        // The device tree goes in the last 2 MiB, the ramdisk just below it.
        let dtb_off = size - 0x20_0000;
        let mut initrd = None;
        let mut top = dtb_off;
        if let Some(rd) = cfg.ramdisk {
            let rd_off = dtb_off
                .checked_sub(rd.size)
                .map(|o| o & !0xfff)
                .unwrap_or(0);
            if rd_off < koff + kernel.len() as u64 {
                return Err(alloc::format!(
                    "memory too small for kernel + ramdisk ({} MiB)",
                    size >> 20
                ));
            }
            copy_into(ram_pa + rd_off, rd.base, rd.size);
            initrd = Some((
                layout::RAM_BASE + rd_off,
                layout::RAM_BASE + rd_off + rd.size,
            ));
            top = rd_off;
        }
        if koff + kernel.len() as u64 > top {
            return Err(alloc::format!(
                "kernel ({} bytes) does not fit in {} MiB",
                kernel.len(),
                size >> 20
            ));
        }
        copy_into(ram_pa + koff, cfg.kernel.base, cfg.kernel.size);
        let fdt = vmm::guest_fdt::build(&vmm::guest_fdt::GuestFdtParams {
            ram_base: layout::RAM_BASE,
            ram_size: size,
            vcpus: cfg.vcpus,
            gic: match version {
                vmm::vgic::Version::V2 => vmm::guest_fdt::GicVersion::V2,
                vmm::vgic::Version::V3 => vmm::guest_fdt::GicVersion::V3,
            },
            bootargs: cfg.bootargs.as_deref(),
            initrd,
            devices: &cfg.passthrough,
        })
        .map_err(|e| alloc::format!("guest device tree: {e:?}"))?;
        if fdt.len() as u64 > 0x20_0000 {
            return Err("guest device tree larger than 2 MiB".into());
        }
        copy_into(ram_pa + dtb_off, fdt.as_ptr() as u64, fdt.len() as u64);
        // The guest starts with its MMU (and so its caches) off; after a
        // reset no line of its previous life may shadow the new contents.
        cache::clean_invalidate_to_poc(ram_pa, size);
        cache::invalidate_icache();
        Ok((layout::RAM_BASE + koff, layout::RAM_BASE + dtb_off))
    }

    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            0 => VmState::Running,
            2 => VmState::Resetting,
            3 => VmState::Restarting,
            _ => VmState::Stopped,
        }
    }

    /// SYSTEM_RESET: a running VM becomes Resetting and all its vCPUs off
    /// (they leave their CPUs). False if it was not running.
    pub fn begin_reset(&self) -> bool {
        let ok = self
            .state
            .compare_exchange(
                VmState::Running as u8,
                VmState::Resetting as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if ok {
            for v in &self.vcpus {
                v.set_off();
            }
        }
        ok
    }

    /// Claim the restart of a Resetting VM: true for exactly one caller.
    pub fn claim_restart(&self) -> bool {
        self.state
            .compare_exchange(
                VmState::Resetting as u8,
                VmState::Restarting as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// End of a restart: the VM runs again (unless it was stopped meanwhile).
    pub fn finish_restart(&self) -> bool {
        self.state
            .compare_exchange(
                VmState::Restarting as u8,
                VmState::Running as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Stop every vCPU of the VM (power-off, or contained misbehaviour).
    pub fn stop(&self) {
        self.state.store(VmState::Stopped as u8, Ordering::Release);
        for v in &self.vcpus {
            v.set_off();
        }
    }

    /// The guest did something itself at counter time `now` (see
    /// `last_progress`).
    pub fn note_progress(&self, now: u64) {
        self.last_progress.store(now, Ordering::Relaxed);
    }

    /// Whether the guest showed a sign of life at or after counter time
    /// `since` (in this image).
    pub fn progressed_since(&self, since: u64) -> bool {
        let t = self.last_progress.load(Ordering::Relaxed);
        t != 0 && t >= since
    }

    pub fn is_ram(&self, ipa: u64) -> bool {
        ipa >= layout::RAM_BASE && ipa - layout::RAM_BASE < self.ram_size
    }
}

impl vmm::psci::PsciVm for Vm {
    fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & 0xff_00ff_ffff;
        (aff < self.vcpus.len() as u64).then_some(aff as usize)
    }

    fn power_state(&self, vcpu: usize) -> vmm::psci::PowerState {
        self.vcpus[vcpu].power_state()
    }

    fn is_ram(&self, ipa: u64) -> bool {
        Vm::is_ram(self, ipa)
    }
}

fn copy_into(dst: u64, src: u64, len: u64) {
    // SAFETY: `dst..dst+len` lies in RAM allocated to this VM (checked by
    // the caller against the VM's size) and `src..src+len` is a module or a
    // heap buffer; the two never overlap because VM RAM is allocated away
    // from modules.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len as usize) }
}
