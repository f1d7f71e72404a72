//! The physical GIC (the hypervisor owns it) and its virtualization
//! interface (list registers through which interrupts reach guests).
//! GICv2 (GIC-400 style: GICD/GICC/GICH MMIO) and GICv3 (GICD/GICR MMIO,
//! ICC_*/ICH_* system registers) behind one interface.
pub mod v2;
pub mod v3;

use spin::Once;
use vmm::vgic::{Lr, Version};

/// INTIDs the hypervisor uses itself.
pub const SGI_KICK: u32 = 1;
pub const PPI_MAINTENANCE: u32 = 25;
pub const PPI_HYP_TIMER: u32 = 26;
pub const PPI_VTIMER: u32 = 27;
pub const SPURIOUS: u32 = 1020;

pub enum Gic {
    V2(v2::GicV2),
    V3(v3::GicV3),
}

pub static GIC: Once<Gic> = Once::new();

pub fn gic() -> &'static Gic {
    GIC.get().expect("GIC initialised before use")
}

/// Per-vCPU state of the virtual CPU interface, saved when a vCPU is
/// switched out of its physical CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct VifState {
    pub vmcr: u64,
    pub apr: [u32; 2],
    pub lrs: [u64; 16],
}

pub(crate) fn mmio_read(addr: usize) -> u32 {
    // SAFETY: only called with addresses inside GIC frames found in the
    // device tree and mapped as device memory.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// The line of level-sensitive `intid` from the ICFGR and ISPENDR
/// registers at `base` (a GICv2/GICv3 distributor, or a GICv3
/// redistributor's SGI frame, which has them at the same offsets): for a
/// level interrupt the pending state is the line, also while it is active.
/// None if it is edge-triggered.
pub(crate) fn level_line(base: usize, intid: u32) -> Option<bool> {
    const ISPENDR: usize = 0x200;
    const ICFGR: usize = 0xc00;
    let i = intid as usize;
    if (mmio_read(base + ICFGR + (i / 16) * 4) >> ((i % 16) * 2 + 1)) & 1 != 0 {
        return None;
    }
    Some(mmio_read(base + ISPENDR + (i / 32) * 4) & (1 << (i % 32)) != 0)
}

pub(crate) fn mmio_write(addr: usize, v: u32) {
    // SAFETY: as in `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

impl Gic {
    pub fn version(&self) -> Version {
        match self {
            Gic::V2(_) => Version::V2,
            Gic::V3(_) => Version::V3,
        }
    }

    /// Per-CPU set-up (the distributor is set up once, by `new`).
    pub fn init_cpu(&self, cpu: usize) {
        match self {
            Gic::V2(g) => g.init_cpu(cpu),
            Gic::V3(g) => g.init_cpu(cpu),
        }
    }

    pub fn nr_lrs(&self) -> usize {
        match self {
            Gic::V2(g) => g.nr_lrs(),
            Gic::V3(_) => v3::nr_lrs(),
        }
    }

    /// Acknowledge the highest-priority pending interrupt (or SPURIOUS).
    pub fn ack(&self) -> u32 {
        match self {
            Gic::V2(g) => g.ack(),
            Gic::V3(_) => v3::ack(),
        }
    }

    /// Priority drop only (EOImode = 1): the interrupt stays active.
    pub fn eoi(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.eoi(intid),
            Gic::V3(_) => v3::eoi(intid),
        }
    }

    /// Deactivate (for interrupts the hypervisor handled itself).
    pub fn deactivate(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.deactivate(intid),
            Gic::V3(_) => v3::deactivate(intid),
        }
    }

    pub fn enable(&self, cpu: usize, intid: u32, on: bool) {
        match self {
            Gic::V2(g) => g.enable(intid, on),
            Gic::V3(g) => g.enable(cpu, intid, on),
        }
    }

    /// For a level-sensitive physical interrupt: whether its line is still
    /// asserted (private interrupts: CPU `cpu`'s, which must be the caller's
    /// on GICv2, whose private registers are banked). None if it is
    /// edge-triggered.
    pub fn line_asserted(&self, cpu: usize, intid: u32) -> Option<bool> {
        match self {
            Gic::V2(g) => g.line_asserted(intid),
            Gic::V3(g) => g.line_asserted(cpu, intid),
        }
    }

    /// Clear the active state of SPI `intid`, whichever CPU acknowledged it.
    pub fn clear_active_spi(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.clear_active(intid),
            Gic::V3(g) => g.clear_active(intid),
        }
    }

    /// Route an SPI to a physical CPU.
    pub fn route_spi(&self, intid: u32, cpu: usize) {
        match self {
            Gic::V2(g) => g.route_spi(intid, cpu),
            Gic::V3(g) => g.route_spi(intid, cpu),
        }
    }

    /// Send SGI `intid` to physical CPU `cpu`.
    pub fn send_sgi(&self, cpu: usize, intid: u32) {
        match self {
            Gic::V2(g) => g.send_sgi(cpu, intid),
            Gic::V3(g) => g.send_sgi(cpu, intid),
        }
    }

    /// A list register value as saved in `VifState::lrs`.
    pub fn decode_saved_lr(&self, raw: u64) -> Lr {
        match self {
            Gic::V2(_) => Lr::decode_v2(raw as u32),
            Gic::V3(_) => Lr::decode_v3(raw),
        }
    }

    pub fn encode_saved_lr(&self, lr: Lr) -> u64 {
        match self {
            Gic::V2(_) => lr.encode_v2() as u64,
            Gic::V3(_) => lr.encode_v3(),
        }
    }

    pub fn read_lr(&self, n: usize) -> Lr {
        match self {
            Gic::V2(g) => Lr::decode_v2(g.read_lr(n)),
            Gic::V3(_) => Lr::decode_v3(v3::read_lr(n)),
        }
    }

    pub fn write_lr(&self, n: usize, lr: Lr) {
        match self {
            Gic::V2(g) => g.write_lr(n, lr.encode_v2()),
            Gic::V3(_) => v3::write_lr(n, lr.encode_v3()),
        }
    }

    /// Enable the virtual CPU interface; `underflow` asks for a maintenance
    /// interrupt when the list registers run (nearly) empty; `trap_ack`
    /// (GICv3 only) traps the guest's next Group 1 ICC access, e.g. the
    /// acknowledge of what the list registers hold.
    pub fn set_vif_control(&self, underflow: bool, trap_ack: bool) {
        match self {
            Gic::V2(g) => g.set_hcr(underflow),
            Gic::V3(_) => v3::set_hcr(underflow, trap_ack),
        }
    }

    /// Whether [`Gic::set_vif_control`] can trap the guest's acknowledge.
    pub fn can_trap_ack(&self) -> bool {
        matches!(self, Gic::V3(_))
    }

    pub fn save_vif(&self, s: &mut VifState) {
        let n = self.nr_lrs();
        match self {
            Gic::V2(g) => {
                s.vmcr = g.vmcr() as u64;
                s.apr[0] = g.apr();
                for i in 0..n {
                    s.lrs[i] = g.read_lr(i) as u64;
                    g.write_lr(i, 0);
                }
            }
            Gic::V3(_) => {
                s.vmcr = v3::vmcr();
                s.apr = v3::aprs();
                for i in 0..n {
                    s.lrs[i] = v3::read_lr(i);
                    v3::write_lr(i, 0);
                }
            }
        }
    }

    pub fn restore_vif(&self, s: &VifState) {
        let n = self.nr_lrs();
        match self {
            Gic::V2(g) => {
                g.set_vmcr(s.vmcr as u32);
                g.set_apr(s.apr[0]);
                for i in 0..n {
                    g.write_lr(i, s.lrs[i] as u32);
                }
            }
            Gic::V3(_) => {
                v3::set_vmcr(s.vmcr);
                v3::set_aprs(s.apr);
                for i in 0..n {
                    v3::write_lr(i, s.lrs[i]);
                }
            }
        }
    }
}
