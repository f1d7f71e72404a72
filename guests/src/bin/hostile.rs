//! hostile: a guest that pokes at things it must not reach.
//!
//! Each probe prints `hostile: probe <name>: <outcome>`; outcomes are e.g.
//! `abort taken (esr=0x…, far=0x…)`, `undefined taken (esr=0x…)`,
//! `returned -1`, `write ignored (read back 0x0)`. A probe is *contained*
//! when the guest got an exception or an error / a sanitised value instead of
//! silently succeeding where it should not; outcomes that are not contained
//! end in `(NOT contained)`. Then `hostile: done <n> probes, <m> contained`,
//! and `hostile: alive <k>` every 2 s so a test can see the guest survived.
//!
//! Without a hypervisor (bare QEMU) several probes behave differently (e.g.
//! SMC is UNDEFINED and CPU_ON accepts any entry point); the guest only has
//! to keep running there.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;
    use core::fmt::{self, Display};

    use guests::println;
    use guests::rt::exception::{self, Fault};
    use guests::rt::gic::{self, Version};
    use guests::rt::{self, dtb, psci, timer};

    /// IPA far above any VM's RAM.
    const IPA_OUTSIDE_RAM: u64 = 0x1_0000_0000;
    /// Where the host's GICv2 virtual interface control block (GICH) lives.
    const HOST_GICH: u64 = 0x0803_0000;
    /// SPIs no test VM owns (the VM's only SPI is the UART, INTID 33).
    const FOREIGN_SPI: usize = 128;
    /// A function id in the PSCI range that PSCI does not define.
    const UNKNOWN_PSCI_FUNCTION: u32 = 0x8400_00ff;
    const ALIVE_INTERVAL_MS: u64 = 2000;

    /// What a probe observed, and whether that counts as contained.
    enum Outcome {
        Fault(Fault),
        /// A read that should have faulted returned a value.
        Read(u64),
        /// A store that should have faulted completed.
        Stored,
        /// A register write, with the value read back afterwards.
        WriteReadBack {
            value: u32,
            contained: bool,
        },
        /// A call returned this value.
        Returned {
            value: i64,
            contained: bool,
        },
    }

    impl Outcome {
        fn contained(&self) -> bool {
            match self {
                Outcome::Fault(_) => true,
                Outcome::Read(_) | Outcome::Stored => false,
                Outcome::WriteReadBack { contained, .. } | Outcome::Returned { contained, .. } => {
                    *contained
                }
            }
        }
    }

    impl Display for Outcome {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Outcome::Fault(fault) => match fault.class() {
                    exception::EC_UNKNOWN => write!(f, "undefined taken (esr={:#x})", fault.esr)?,
                    exception::EC_DATA_ABORT_SAME => write!(
                        f,
                        "abort taken (esr={:#x}, far={:#x})",
                        fault.esr, fault.far
                    )?,
                    ec => write!(
                        f,
                        "{} taken (esr={:#x})",
                        exception::class_name(ec),
                        fault.esr
                    )?,
                },
                Outcome::Read(v) => write!(f, "read {v:#x}")?,
                Outcome::Stored => write!(f, "store completed")?,
                Outcome::WriteReadBack {
                    value,
                    contained: true,
                } => write!(f, "write ignored (read back {value:#x})")?,
                Outcome::WriteReadBack {
                    value,
                    contained: false,
                } => write!(f, "write accepted (read back {value:#x})")?,
                Outcome::Returned { value, .. } if *value < 0 => write!(f, "returned {value}")?,
                Outcome::Returned { value, .. } => write!(f, "returned {value:#x}")?,
            }
            if !self.contained() {
                write!(f, " (NOT contained)")?;
            }
            Ok(())
        }
    }

    fn load(addr: u64) -> Outcome {
        let mut value: u64 = 0;
        // SAFETY: a single load that is expected to fault; `catch` skips it.
        // The address is not memory Rust uses.
        let r = exception::catch(|| unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = inout(reg) value, options(nostack));
        });
        match r {
            Ok(()) => Outcome::Read(value),
            Err(fault) => Outcome::Fault(fault),
        }
    }

    fn store8(addr: u64) -> Outcome {
        // SAFETY: a single store that is expected to fault; `catch` skips it.
        // The address is not memory Rust uses.
        let r = exception::catch(|| unsafe {
            asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) 0xa5u32, options(nostack));
        });
        match r {
            Ok(()) => Outcome::Stored,
            Err(fault) => Outcome::Fault(fault),
        }
    }

    fn store32(addr: u64, value: u32) -> Result<(), Fault> {
        // SAFETY: a single device-register store; a fault is caught and skipped.
        exception::catch(|| unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack));
        })
    }

    fn load32(addr: u64) -> Result<u32, Fault> {
        let mut value: u32 = 0;
        // SAFETY: a single device-register load; a fault is caught and skipped.
        exception::catch(|| unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = inout(reg) value, options(nostack));
        })
        .map(|()| value)
    }

    /// Writes `garbage` to a GICD register; contained if the write faults or
    /// does not stick as written (`sane` judges the read-back value).
    fn gicd_garbage(offset: usize, garbage: u32, sane: impl Fn(u32) -> bool) -> Outcome {
        let addr = (gic::GICD_BASE + offset) as u64;
        let result = store32(addr, garbage).and_then(|()| load32(addr));
        match result {
            Ok(value) => Outcome::WriteReadBack {
                value,
                contained: sane(value),
            },
            Err(fault) => Outcome::Fault(fault),
        }
    }

    fn msr_hcr_el2() -> Outcome {
        // SAFETY: UNDEFINED at EL1 (caught). If it were executed at EL2 it
        // would write 0, i.e. turn virtualization off, not corrupt memory.
        match exception::catch(|| unsafe { asm!("msr hcr_el2, xzr", options(nomem, nostack)) }) {
            Ok(()) => Outcome::Stored,
            Err(fault) => Outcome::Fault(fault),
        }
    }

    fn msr_vbar_el2() -> Outcome {
        // SAFETY: UNDEFINED at EL1 (caught); the value is never used by us.
        match exception::catch(|| unsafe {
            asm!("msr vbar_el2, {}", in(reg) 0xdead_0000u64, options(nomem, nostack))
        }) {
            Ok(()) => Outcome::Stored,
            Err(fault) => Outcome::Fault(fault),
        }
    }

    fn returned(value: i64, contained: bool) -> Outcome {
        Outcome::Returned { value, contained }
    }

    /// PSCI_VERSION through SMC: the hypervisor must trap and emulate it.
    fn smc_psci_version() -> Outcome {
        match exception::catch(|| psci::smc(psci::VERSION, 0, 0, 0)) {
            // A plausible version (major >= 1) means it was emulated.
            Ok(v) => returned(v, (0x1_0000..=0x7fff_ffff).contains(&v)),
            // No trap: the SMC is UNDEFINED at EL1, which is still contained.
            Err(fault) => Outcome::Fault(fault),
        }
    }

    pub fn main(dtb_addr: usize) -> ! {
        let ram_end = match dtb::parse(dtb_addr) {
            Ok(info) => info.ram_end(),
            Err(e) => {
                println!("hostile: ERROR: device tree at {dtb_addr:#x}: {e}");
                rt::halt();
            }
        };
        let gic = gic::detect();
        println!(
            "hostile: start gic={} ram_end={ram_end:#x}",
            match gic {
                Ok(Version::V2) => "v2",
                Ok(Version::V3) => "v3",
                Err(_) => "unknown",
            }
        );
        // 0x0801_0000 is right past the 64 KiB GICD window; on a GICv2 VM it
        // is the (legitimate) CPU interface, so probe the next 64 KiB there.
        let past_gicd = match gic {
            Ok(Version::V2) => 0x0802_0000,
            _ => 0x0801_0000,
        };
        let entry = rt::boot::rt_secondary_entry as *const () as u64;

        let mut probes = 0u32;
        let mut contained = 0u32;
        let mut report = |name: &str, outcome: Outcome| {
            probes += 1;
            contained += u32::from(outcome.contained());
            println!("hostile: probe {name}: {outcome}");
        };

        report("load_outside_ram", load(IPA_OUTSIDE_RAM));
        report("store_host_gich", store8(HOST_GICH));
        report("load_past_gicd", load(past_gicd));
        report("msr_hcr_el2", msr_hcr_el2());
        report("msr_vbar_el2", msr_vbar_el2());
        // GICD_CTLR: only architected bits (EnableGrp0/1, ARE, DS, E1NWF, RWP)
        // may read back.
        let ctlr = load32((gic::GICD_BASE + gic::GICD_CTLR) as u64).unwrap_or(0);
        report(
            "gicd_ctlr_garbage",
            gicd_garbage(gic::GICD_CTLR, 0xffff_ffff, |v| v & !0x8000_00d3 == 0),
        );
        let _ = store32((gic::GICD_BASE + gic::GICD_CTLR) as u64, ctlr);
        report(
            "gicd_itargetsr_foreign_spi",
            gicd_garbage(gic::GICD_ITARGETSR + FOREIGN_SPI, 0xffff_ffff, |v| {
                v != 0xffff_ffff
            }),
        );
        let isenabler = gic::GICD_ISENABLER + FOREIGN_SPI / 8;
        report(
            "gicd_isenabler_foreign_spi",
            gicd_garbage(isenabler, 0xffff_ffff, |v| v == 0),
        );
        let _ = store32(
            (gic::GICD_BASE + gic::GICD_ICENABLER + FOREIGN_SPI / 8) as u64,
            0xffff_ffff,
        );
        let r = psci::hvc(UNKNOWN_PSCI_FUNCTION, 0, 0, 0);
        report(
            "psci_unknown_function",
            returned(r, r == psci::NOT_SUPPORTED),
        );
        let r = psci::cpu_on(0xff, entry, 0);
        report(
            "cpu_on_bad_mpidr",
            returned(r, r == psci::INVALID_PARAMETERS),
        );
        let r = psci::cpu_on(1, IPA_OUTSIDE_RAM, 0);
        report(
            "cpu_on_entry_outside_ram",
            returned(
                r,
                r == psci::INVALID_ADDRESS || r == psci::INVALID_PARAMETERS,
            ),
        );
        report("smc_psci_version", smc_psci_version());
        report("store_ram_end", store8(ram_end));

        println!("hostile: done {probes} probes, {contained} contained");
        for alive in 1u64.. {
            timer::delay_ms(ALIVE_INTERVAL_MS);
            println!("hostile: alive {alive}");
        }
        rt::halt()
    }
}
