//! GICv3: distributor and redistributors by MMIO, CPU and virtual CPU
//! interfaces by system registers.
use super::{mmio_read, mmio_write};
use crate::arch::aarch64::sysreg::{dsb_sy, isb};
use crate::{read_sysreg, write_sysreg};
use alloc::vec::Vec;

const GICD_CTLR: usize = 0x0;
const GICD_TYPER: usize = 0x4;
const GICD_IGROUPR: usize = 0x80;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICACTIVER: usize = 0x380;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_IROUTER: usize = 0x6000;
const GICR_TYPER: usize = 0x8;
const GICR_WAKER: usize = 0x14;
const SGI_BASE: usize = 0x1_0000;

pub struct GicV3 {
    gicd: usize,
    /// Redistributor RD_base of each logical CPU.
    gicr: Vec<usize>,
    /// MPIDR of each logical CPU (for routing and SGIs).
    mpidr: Vec<u64>,
}

fn aff(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl GicV3 {
    /// Set up the distributor; locate each CPU's redistributor by the
    /// affinity in its GICR_TYPER.
    pub fn new(
        gicd: usize,
        gicr_base: usize,
        gicr_size: usize,
        mpidrs: &[u64],
    ) -> Result<Self, &'static str> {
        let mut gicr = Vec::new();
        for &m in mpidrs {
            let mut frame = gicr_base;
            let found = loop {
                if frame + 0x2_0000 > gicr_base + gicr_size {
                    break None;
                }
                let typer = mmio_read(frame + GICR_TYPER) as u64
                    | (mmio_read(frame + GICR_TYPER + 4) as u64) << 32;
                let a = typer >> 32;
                let want = (aff(m) & 0xff_ffff) | ((aff(m) >> 32) << 24);
                if a == want {
                    break Some(frame);
                }
                if typer & (1 << 4) != 0 {
                    break None; // Last
                }
                frame += 0x2_0000;
            };
            gicr.push(found.ok_or("no redistributor matches a CPU's MPIDR")?);
        }
        let g = Self {
            gicd,
            gicr,
            mpidr: mpidrs.to_vec(),
        };
        let lines = ((mmio_read(gicd + GICD_TYPER) & 0x1f) as usize + 1) * 32;
        mmio_write(gicd + GICD_CTLR, 0);
        for i in (32..lines).step_by(32) {
            mmio_write(gicd + GICD_ICENABLER + i / 8, u32::MAX);
            mmio_write(gicd + GICD_IGROUPR + i / 8, u32::MAX);
        }
        for i in (32..lines).step_by(4) {
            mmio_write(gicd + GICD_IPRIORITYR + i, 0xa0a0_a0a0);
        }
        // ARE_NS | EnableGrp1NS (| EnableGrp0); with a single security state
        // (QEMU without EL3) bit 1 is EnableGrp1.
        mmio_write(gicd + GICD_CTLR, (1 << 4) | (1 << 1) | 1);
        Ok(g)
    }

    pub fn init_cpu(&self, cpu: usize) {
        let rd = self.gicr[cpu];
        // Wake the redistributor.
        let w = mmio_read(rd + GICR_WAKER);
        mmio_write(rd + GICR_WAKER, w & !(1 << 1));
        while mmio_read(rd + GICR_WAKER) & (1 << 2) != 0 {}
        let sgi = rd + SGI_BASE;
        mmio_write(sgi + GICD_ICENABLER, u32::MAX);
        mmio_write(sgi + GICD_IGROUPR, u32::MAX);
        for i in (0..32).step_by(4) {
            mmio_write(sgi + GICD_IPRIORITYR + i, 0xa0a0_a0a0);
        }
        // System register interface at EL2, and allow EL1 to use it (the
        // guest's accesses go to the virtual interface).
        write_sysreg!("s3_4_c12_c9_5", 0xf); // ICC_SRE_EL2: SRE|DFB|DIB|Enable
        isb();
        write_sysreg!("s3_0_c4_c6_0", 0xff); // ICC_PMR_EL1
        write_sysreg!("s3_0_c12_c12_3", 0); // ICC_BPR1_EL1
        write_sysreg!("s3_0_c12_c12_4", 1 << 1); // ICC_CTLR_EL1.EOImode = 1
        write_sysreg!("s3_0_c12_c12_7", 1); // ICC_IGRPEN1_EL1
        write_sysreg!("s3_4_c12_c11_7", 0); // ICH_VMCR_EL2
        for i in 0..nr_lrs() {
            write_lr(i, 0);
        }
        isb();
    }

    pub fn enable(&self, cpu: usize, intid: u32, on: bool) {
        let (base, i) = if intid < 32 {
            (self.gicr[cpu] + SGI_BASE, intid)
        } else {
            (self.gicd, intid)
        };
        let reg = if on { GICD_ISENABLER } else { GICD_ICENABLER };
        mmio_write(base + reg + (i as usize / 32) * 4, 1 << (i % 32));
        dsb_sy();
    }

    /// Whether `intid` is level-sensitive and its line is asserted (pending
    /// or active-and-pending: for a level interrupt the pending state is the
    /// line); private interrupts are CPU `cpu`'s (its redistributor, same
    /// register offsets in the SGI frame). None for an edge interrupt.
    pub fn line_asserted(&self, cpu: usize, intid: u32) -> Option<bool> {
        let base = if intid < 32 {
            self.gicr[cpu] + SGI_BASE
        } else {
            self.gicd
        };
        super::level_line(base, intid)
    }

    /// Clear an SPI's active state from any CPU (distributor, not ICC_DIR_EL1).
    pub fn clear_active(&self, intid: u32) {
        mmio_write(
            self.gicd + GICD_ICACTIVER + (intid as usize / 32) * 4,
            1 << (intid % 32),
        );
        dsb_sy();
    }

    pub fn route_spi(&self, intid: u32, cpu: usize) {
        let a = aff(self.mpidr[cpu]);
        let off = self.gicd + GICD_IROUTER + intid as usize * 8;
        mmio_write(off, a as u32);
        mmio_write(off + 4, (a >> 32) as u32);
    }

    pub fn send_sgi(&self, cpu: usize, intid: u32) {
        let m = self.mpidr[cpu];
        let aff0 = m & 0xf; // target list covers Aff0 0..15
        let v = ((m >> 8) & 0xff) << 16
            | ((m >> 16) & 0xff) << 32
            | ((m >> 32) & 0xff) << 48
            | (intid as u64) << 24
            | (1 << aff0);
        dsb_sy();
        write_sysreg!("s3_0_c12_c11_5", v); // ICC_SGI1R_EL1
        isb();
    }
}

pub fn nr_lrs() -> usize {
    (read_sysreg!("s3_4_c12_c11_1") & 0x1f) as usize + 1 // ICH_VTR_EL2.ListRegs
}

pub fn ack() -> u32 {
    let v = read_sysreg!("s3_0_c12_c12_0") as u32; // ICC_IAR1_EL1
    dsb_sy();
    v & 0xff_ffff
}

pub fn eoi(intid: u32) {
    write_sysreg!("s3_0_c12_c12_1", intid as u64); // ICC_EOIR1_EL1
    isb();
}

pub fn deactivate(intid: u32) {
    write_sysreg!("s3_0_c12_c11_1", intid as u64); // ICC_DIR_EL1
    isb();
}

/// ICH_HCR_EL2: En, UIE (a maintenance interrupt when the list registers
/// run low) and TALL1 (trap the guest's Group 1 ICC accesses).
pub fn set_hcr(underflow: bool, trap_group1: bool) {
    let v = 1 | (underflow as u64) << 1 | (trap_group1 as u64) << 12;
    write_sysreg!("s3_4_c12_c11_0", v);
}

pub fn vmcr() -> u64 {
    read_sysreg!("s3_4_c12_c11_7")
}

pub fn set_vmcr(v: u64) {
    write_sysreg!("s3_4_c12_c11_7", v);
}

pub fn aprs() -> [u32; 2] {
    [
        read_sysreg!("s3_4_c12_c8_0") as u32,
        read_sysreg!("s3_4_c12_c9_0") as u32,
    ]
}

pub fn set_aprs(a: [u32; 2]) {
    write_sysreg!("s3_4_c12_c8_0", a[0] as u64);
    write_sysreg!("s3_4_c12_c9_0", a[1] as u64);
}

macro_rules! lr_access {
    ($n:expr, $op:ident $(, $v:expr)?) => {
        match $n {
            0 => lr_access!(@ $op "s3_4_c12_c12_0" $(, $v)?),
            1 => lr_access!(@ $op "s3_4_c12_c12_1" $(, $v)?),
            2 => lr_access!(@ $op "s3_4_c12_c12_2" $(, $v)?),
            3 => lr_access!(@ $op "s3_4_c12_c12_3" $(, $v)?),
            4 => lr_access!(@ $op "s3_4_c12_c12_4" $(, $v)?),
            5 => lr_access!(@ $op "s3_4_c12_c12_5" $(, $v)?),
            6 => lr_access!(@ $op "s3_4_c12_c12_6" $(, $v)?),
            7 => lr_access!(@ $op "s3_4_c12_c12_7" $(, $v)?),
            8 => lr_access!(@ $op "s3_4_c12_c13_0" $(, $v)?),
            9 => lr_access!(@ $op "s3_4_c12_c13_1" $(, $v)?),
            10 => lr_access!(@ $op "s3_4_c12_c13_2" $(, $v)?),
            11 => lr_access!(@ $op "s3_4_c12_c13_3" $(, $v)?),
            12 => lr_access!(@ $op "s3_4_c12_c13_4" $(, $v)?),
            13 => lr_access!(@ $op "s3_4_c12_c13_5" $(, $v)?),
            14 => lr_access!(@ $op "s3_4_c12_c13_6" $(, $v)?),
            _ => lr_access!(@ $op "s3_4_c12_c13_7" $(, $v)?),
        }
    };
    (@ read $r:literal) => { read_sysreg!($r) };
    (@ write $r:literal, $v:expr) => { write_sysreg!($r, $v) };
}

pub fn read_lr(n: usize) -> u64 {
    lr_access!(n, read)
}

pub fn write_lr(n: usize, v: u64) {
    lr_access!(n, write, v)
}
