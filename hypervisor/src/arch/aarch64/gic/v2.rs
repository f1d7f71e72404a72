//! GICv2 / GIC-400: everything by MMIO (GICD, GICC, GICH; GICV is mapped
//! into guests).
use super::{mmio_read, mmio_write};
use crate::arch::aarch64::sysreg::dsb_sy;

const GICD_CTLR: usize = 0x0;
const GICD_TYPER: usize = 0x4;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICACTIVER: usize = 0x380;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_SGIR: usize = 0xf00;
const GICC_CTLR: usize = 0x0;
const GICC_PMR: usize = 0x4;
const GICC_IAR: usize = 0xc;
const GICC_EOIR: usize = 0x10;
const GICC_DIR: usize = 0x1000;
const GICH_HCR: usize = 0x0;
const GICH_VTR: usize = 0x4;
const GICH_VMCR: usize = 0x8;
const GICH_APR: usize = 0xf0;
const GICH_LR: usize = 0x100;

pub struct GicV2 {
    gicd: usize,
    gicc: usize,
    gich: usize,
    /// GICv2 CPU-interface mask of each logical CPU (from ITARGETSR0).
    cpu_mask: [core::sync::atomic::AtomicU8; 8],
}

impl GicV2 {
    pub fn new(gicd: usize, gicc: usize, gich: usize) -> Self {
        let lines = ((mmio_read(gicd + GICD_TYPER) & 0x1f) as usize + 1) * 32;
        mmio_write(gicd + GICD_CTLR, 0);
        for i in (32..lines).step_by(32) {
            mmio_write(gicd + GICD_ICENABLER + i / 8, u32::MAX);
        }
        for i in (32..lines).step_by(4) {
            mmio_write(gicd + GICD_IPRIORITYR + i, 0xa0a0_a0a0);
        }
        mmio_write(gicd + GICD_CTLR, 1);
        Self {
            gicd,
            gicc,
            gich,
            cpu_mask: Default::default(),
        }
    }

    pub fn init_cpu(&self, cpu: usize) {
        // ITARGETSR0 is banked: it reads as this CPU interface's own mask.
        let mask = mmio_read(self.gicd + GICD_ITARGETSR) as u8;
        self.cpu_mask[cpu & 7].store(mask, core::sync::atomic::Ordering::SeqCst);
        mmio_write(self.gicd + GICD_ICENABLER, u32::MAX);
        for i in (0..32).step_by(4) {
            mmio_write(self.gicd + GICD_IPRIORITYR + i, 0xa0a0_a0a0);
        }
        mmio_write(self.gicc + GICC_PMR, 0xff);
        // Enable, EOImode (priority drop and deactivation split) for both
        // banked views.
        mmio_write(self.gicc + GICC_CTLR, 1 | (1 << 9) | (1 << 10));
        mmio_write(self.gich + GICH_VMCR, 0);
        for i in 0..self.nr_lrs() {
            self.write_lr(i, 0);
        }
    }

    pub fn nr_lrs(&self) -> usize {
        (mmio_read(self.gich + GICH_VTR) & 0x3f) as usize + 1
    }

    pub fn ack(&self) -> u32 {
        // Keep the source-CPU bits of SGIs: EOIR/DIR need the same value.
        mmio_read(self.gicc + GICC_IAR) & 0x1fff
    }

    pub fn eoi(&self, intid: u32) {
        mmio_write(self.gicc + GICC_EOIR, intid);
    }

    pub fn deactivate(&self, intid: u32) {
        mmio_write(self.gicc + GICC_DIR, intid);
    }

    pub fn enable(&self, intid: u32, on: bool) {
        let reg = if on { GICD_ISENABLER } else { GICD_ICENABLER };
        mmio_write(
            self.gicd + reg + (intid as usize / 32) * 4,
            1 << (intid % 32),
        );
        dsb_sy();
    }

    /// Whether `intid` is level-sensitive and its line is asserted (pending
    /// or active-and-pending: for a level interrupt the pending state is the
    /// line). Private interrupts are this CPU's (banked registers).
    pub fn line_asserted(&self, intid: u32) -> Option<bool> {
        super::level_line(self.gicd, intid)
    }

    /// Clear an SPI's active state from any CPU (distributor, not GICC_DIR).
    pub fn clear_active(&self, intid: u32) {
        mmio_write(
            self.gicd + GICD_ICACTIVER + (intid as usize / 32) * 4,
            1 << (intid % 32),
        );
        dsb_sy();
    }

    pub fn route_spi(&self, intid: u32, cpu: usize) {
        let mask = self.cpu_mask[cpu & 7].load(core::sync::atomic::Ordering::SeqCst);
        let addr = self.gicd + GICD_ITARGETSR + (intid as usize & !3);
        let shift = (intid % 4) * 8;
        let v = mmio_read(addr) & !(0xff << shift) | (mask as u32) << shift;
        mmio_write(addr, v);
    }

    pub fn send_sgi(&self, cpu: usize, intid: u32) {
        let mask = self.cpu_mask[cpu & 7].load(core::sync::atomic::Ordering::SeqCst);
        dsb_sy();
        mmio_write(self.gicd + GICD_SGIR, (mask as u32) << 16 | (intid & 0xf));
    }

    pub fn read_lr(&self, n: usize) -> u32 {
        mmio_read(self.gich + GICH_LR + 4 * n)
    }

    pub fn write_lr(&self, n: usize, v: u32) {
        mmio_write(self.gich + GICH_LR + 4 * n, v)
    }

    pub fn set_hcr(&self, underflow: bool) {
        mmio_write(self.gich + GICH_HCR, 1 | ((underflow as u32) << 1));
    }

    pub fn vmcr(&self) -> u32 {
        mmio_read(self.gich + GICH_VMCR)
    }

    pub fn set_vmcr(&self, v: u32) {
        mmio_write(self.gich + GICH_VMCR, v)
    }

    pub fn apr(&self) -> u32 {
        mmio_read(self.gich + GICH_APR)
    }

    pub fn set_apr(&self, v: u32) {
        mmio_write(self.gich + GICH_APR, v)
    }
}
