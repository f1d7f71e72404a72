//! The self-hosted debug registers of a vCPU: breakpoint and watchpoint
//! value and control registers, which the guest programs directly
//! (MDCR_EL2.TDA = 0). They are switched with the vCPU, so one VM's
//! breakpoints never fire in another VM sharing its physical CPU; they never
//! fire in the hypervisor, which runs at EL2 with MDCR_EL2.TDE = 0 (debug
//! exceptions target EL1 and are not generated at a higher level).
//! MDSCR_EL1 is part of the EL1 context (`context.rs`).

/// Breakpoint and watchpoint registers of one vCPU: (value, control).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugRegs {
    pub bvr: [u64; 16],
    pub bcr: [u64; 16],
    pub wvr: [u64; 16],
    pub wcr: [u64; 16],
}

/// How many breakpoints and watchpoints this CPU has (ID_AA64DFR0_EL1).
pub fn counts() -> (usize, usize) {
    let dfr0 = crate::read_sysreg!(id_aa64dfr0_el1);
    (
        ((dfr0 >> 12) & 0xf) as usize + 1,
        ((dfr0 >> 20) & 0xf) as usize + 1,
    )
}

/// A register of breakpoint/watchpoint `n` (0..15) by name.
macro_rules! debug_reg {
    (read $kind:literal, $n:expr) => {
        debug_reg!(@each read $kind, $n)
    };
    (write $kind:literal, $n:expr, $v:expr) => {
        debug_reg!(@each write $kind, $n, $v)
    };
    (@each $op:ident $kind:literal, $n:expr $(, $v:expr)?) => {
        match $n {
            0 => debug_reg!(@one $op $kind, "0" $(, $v)?),
            1 => debug_reg!(@one $op $kind, "1" $(, $v)?),
            2 => debug_reg!(@one $op $kind, "2" $(, $v)?),
            3 => debug_reg!(@one $op $kind, "3" $(, $v)?),
            4 => debug_reg!(@one $op $kind, "4" $(, $v)?),
            5 => debug_reg!(@one $op $kind, "5" $(, $v)?),
            6 => debug_reg!(@one $op $kind, "6" $(, $v)?),
            7 => debug_reg!(@one $op $kind, "7" $(, $v)?),
            8 => debug_reg!(@one $op $kind, "8" $(, $v)?),
            9 => debug_reg!(@one $op $kind, "9" $(, $v)?),
            10 => debug_reg!(@one $op $kind, "10" $(, $v)?),
            11 => debug_reg!(@one $op $kind, "11" $(, $v)?),
            12 => debug_reg!(@one $op $kind, "12" $(, $v)?),
            13 => debug_reg!(@one $op $kind, "13" $(, $v)?),
            14 => debug_reg!(@one $op $kind, "14" $(, $v)?),
            _ => debug_reg!(@one $op $kind, "15" $(, $v)?),
        }
    };
    (@one read $kind:literal, $n:literal) => {{
        let v: u64;
        // SAFETY: reading a debug register that ID_AA64DFR0_EL1 says this
        // CPU has (the callers stay below `counts()`); no side effects.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $kind, $n, "_el1"), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
    (@one write $kind:literal, $n:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: writing a debug register the CPU has; it only affects
        // debug events at EL1/EL0 (MDCR_EL2.TDE = 0), of the vCPU whose
        // values these are.
        unsafe {
            core::arch::asm!(concat!("msr ", $kind, $n, "_el1, {}"), in(reg) v, options(nostack, preserves_flags))
        };
    }};
}

impl DebugRegs {
    /// Read the loaded vCPU's registers (the `counts()` the CPU has).
    pub fn save(&mut self) {
        let (brps, wrps) = counts();
        for n in 0..brps.min(16) {
            self.bvr[n] = debug_reg!(read "dbgbvr", n);
            self.bcr[n] = debug_reg!(read "dbgbcr", n);
        }
        for n in 0..wrps.min(16) {
            self.wvr[n] = debug_reg!(read "dbgwvr", n);
            self.wcr[n] = debug_reg!(read "dbgwcr", n);
        }
    }

    /// Load these registers for the vCPU being loaded.
    pub fn restore(&self) {
        let (brps, wrps) = counts();
        for n in 0..brps.min(16) {
            debug_reg!(write "dbgbvr", n, self.bvr[n]);
            debug_reg!(write "dbgbcr", n, self.bcr[n]);
        }
        for n in 0..wrps.min(16) {
            debug_reg!(write "dbgwvr", n, self.wvr[n]);
            debug_reg!(write "dbgwcr", n, self.wcr[n]);
        }
    }

    /// (name, value) of every register that is not zero, as carried in a
    /// handoff block (zero ones are left out: absent means zero).
    pub fn named(&self) -> alloc::vec::Vec<(alloc::string::String, u64)> {
        let mut out = alloc::vec::Vec::new();
        for (kind, regs) in [
            ("dbgbvr", &self.bvr),
            ("dbgbcr", &self.bcr),
            ("dbgwvr", &self.wvr),
            ("dbgwcr", &self.wcr),
        ] {
            for (n, &v) in regs.iter().enumerate() {
                if v != 0 {
                    out.push((alloc::format!("{kind}{n}_el1"), v));
                }
            }
        }
        out
    }

    /// From a handoff block's (name, value) system register entries:
    /// those named like `dbgbvr3_el1`; registers not given are zero. One
    /// pass over the entries (this runs inside a warm reload's pause).
    pub fn from_entries<'a>(entries: impl Iterator<Item = (&'a str, u64)>) -> Self {
        let mut d = DebugRegs::default();
        for (name, v) in entries {
            let Some(rest) = name.strip_prefix("dbg") else {
                continue;
            };
            let (regs, rest) = match rest.get(..3) {
                Some("bvr") => (&mut d.bvr, &rest[3..]),
                Some("bcr") => (&mut d.bcr, &rest[3..]),
                Some("wvr") => (&mut d.wvr, &rest[3..]),
                Some("wcr") => (&mut d.wcr, &rest[3..]),
                _ => continue,
            };
            if let Some(n) = rest
                .strip_suffix("_el1")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(r) = regs.get_mut(n) {
                    *r = v;
                }
            }
        }
        d
    }
}
