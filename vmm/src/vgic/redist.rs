//! GICv3 redistributor (GICR) register emulation and the trapped
//! ICC_SGI1R_EL1 write (a GICv3 guest's IPIs).

use super::{Effects, Vgic};

impl Vgic {
    /// GICv3 ICC_SGI1R_EL1 write (trapped) from `vcpu`. Our vCPUs have
    /// Aff1..3 = 0, so only TargetList/Aff0 and IRM matter.
    pub fn sgi1r_write(&mut self, vcpu: usize, value: u64) -> Effects {
        let intid = ((value >> 24) & 0xf) as u32;
        let n = self.cpus.len();
        let all = (1u64 << n) - 1;
        let targets = if value & (1 << 40) != 0 {
            all & !(1 << vcpu)
        } else {
            let aff1_3 =
                (value >> 16) & 0xff | ((value >> 32) & 0xff) << 8 | ((value >> 48) & 0xff) << 16;
            let rs = (value >> 44) & 0xf;
            if aff1_3 != 0 || rs != 0 {
                0
            } else {
                value & 0xffff & all
            }
        };
        let e = self.raise_sgi(vcpu, targets, intid);
        self.mark(e)
    }

    /// Read a GICv3 redistributor register of `vcpu`'s frame (`off` within
    /// its 128 KiB: RD_base, then SGI_base at +0x10000).
    pub fn redist_read(&self, vcpu: usize, off: u64, size: u8) -> u64 {
        match off {
            0x0000 => 0, // GICR_CTLR
            0x0004 => 0x43b,
            0x0008 => {
                // GICR_TYPER: affinity = vCPU index, processor number, Last.
                let last = (vcpu + 1 == self.cpus.len()) as u64;
                let v = ((vcpu as u64) << 32) | ((vcpu as u64) << 8) | (last << 4);
                if size == 4 {
                    v & 0xffff_ffff
                } else {
                    v
                }
            }
            0x000c => vcpu as u64, // upper half of TYPER
            0x0014 => {
                let s = self.cpus[vcpu].sleeping;
                ((s as u64) << 1) | ((s as u64) << 2)
            }
            0xffe8 => 0x3b,
            o if (0x10000..0x20000).contains(&o) => self.read_common(vcpu, o - 0x10000, size, true),
            _ => 0,
        }
    }

    pub fn redist_write(&mut self, vcpu: usize, off: u64, size: u8, value: u64) -> Effects {
        match off {
            0x0014 => {
                self.cpus[vcpu].sleeping = value & 2 != 0;
                Effects::default()
            }
            o if (0x10000..0x20000).contains(&o) => {
                self.needs_fill |= 1 << vcpu;
                let e = self.write_common(vcpu, o - 0x10000, size, value, true);
                self.mark(e)
            }
            _ => Effects::default(),
        }
    }
}
