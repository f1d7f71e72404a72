//! A scenario is one QEMU machine plus the VMs the hypervisor should start on
//! it. [`Scenario::prepare`] turns it into a ready-to-run QEMU command: it asks
//! QEMU for its own device tree (`dumpdtb`), adds the `/chosen/domU*` nodes,
//! and places the guest images with `-device loader`.
//!
//! The parts: [`VmSpec`] (one VM), module placement
//! ([`Scenario::place_modules`]), preparing the command
//! ([`Scenario::prepare`]) and the prepared [`QemuCommand`]. What the
//! machine itself is (its `-M` option, RAM base, where things load) is in
//! [`crate::machine`].

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::images;
use crate::machine::{raspi4b, Machine};

mod command;
mod modules;
mod prepare;
mod vm;

pub use crate::machine::virt::{MODULE_BASE, RAM_BASE};
pub use command::QemuCommand;
pub use modules::MODULE_ALIGN;
pub use vm::VmSpec;

/// How the first UART is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialMode {
    /// Serial on QEMU's stdin/stdout, no monitor: for [`crate::QemuRun`].
    Pipe,
    /// Serial and monitor multiplexed on the terminal (Ctrl-A x quits,
    /// Ctrl-A c toggles the monitor): for `cargo xtask run`.
    Interactive,
}

/// A QEMU machine plus the VMs to run on it.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Which QEMU machine (`virt` unless [`Scenario::raspi4b`]).
    pub machine: Machine,
    /// GIC version: 2 or 3 (`raspi4b`: 2).
    pub gic: u32,
    pub cpu: String,
    pub smp: u32,
    pub mem_mib: u64,
    pub vms: Vec<VmSpec>,
    /// Deterministic time (`-icount shift=0`).
    pub icount: bool,
    /// Appended to the QEMU command line (and to the `dumpdtb` run, so that
    /// extra devices show up in the device tree).
    pub extra_args: Vec<String>,
    /// The raw image given to `-kernel`; defaults to `target/images/hypervisor.bin`.
    pub hypervisor: PathBuf,
    /// An image slot file (`target/images/hypervisor-next.slot`) QEMU places
    /// in the board's image slot 1, for `upgrade`.
    pub next_image: Option<PathBuf>,
    /// `/chosen/blink,rejuvenate-interval-ms`: the hypervisor reloads
    /// itself this often.
    pub reload_every_ms: Option<u32>,
    /// `/chosen/blink,test-fault`: how the faulty test build
    /// (`images::faulty_image_for`) fails in its warm entry ("refuse",
    /// "panic", "hang"); every other build ignores it.
    pub test_fault: Option<&'static str>,
}

impl Scenario {
    /// `virt` with a `gic` version, cortex-a72, 2 CPUs, 1 GiB, no VMs.
    pub fn new(gic: u32) -> Self {
        Scenario {
            machine: Machine::Virt,
            gic,
            cpu: "cortex-a72".to_string(),
            smp: 2,
            mem_mib: 1024,
            vms: Vec::new(),
            icount: false,
            extra_args: Vec::new(),
            hypervisor: images::hypervisor_image(),
            next_image: None,
            reload_every_ms: None,
            test_fault: None,
        }
    }

    /// `raspi4b`: GICv2, 4 Cortex-A72, 2 GiB (all fixed by the model),
    /// booted with Debian's Pi 4 device tree ([`crate::rpi4_dtb`]), no VMs.
    pub fn raspi4b() -> Self {
        Scenario {
            machine: Machine::Raspi4b,
            smp: raspi4b::CPUS,
            mem_mib: raspi4b::MEM_MIB,
            ..Scenario::new(2)
        }
    }

    /// A second serial port (the `virt` maintenance UART, the second PL011)
    /// on a Unix socket at `sock`, which QEMU serves without waiting for a
    /// client.
    pub fn maint_uart_on_socket(&mut self, sock: &std::path::Path) {
        self.extra_args.extend([
            "-chardev".into(),
            format!("socket,id=maint,path={},server=on,wait=off", sock.display()),
            "-serial".into(),
            "chardev:maint".into(),
        ]);
    }

    /// Moves a scenario built for `virt` (GICv2) to `raspi4b`: the model's
    /// fixed CPUs and RAM.
    pub fn on_raspi4b(&mut self) {
        self.machine = Machine::Raspi4b;
        self.smp = raspi4b::CPUS;
        self.mem_mib = raspi4b::MEM_MIB;
    }

    pub fn smp(mut self, smp: u32) -> Self {
        self.smp = smp;
        self
    }

    pub fn vm(mut self, vm: VmSpec) -> Self {
        self.vms.push(vm);
        self
    }

    fn validate(&self) -> Result<()> {
        if !self.machine.gic_versions().contains(&self.gic) {
            bail!(
                "GIC version {} on {:?}: the machine has {:?}",
                self.gic,
                self.machine,
                self.machine.gic_versions()
            );
        }
        if self.machine == Machine::Raspi4b
            && (self.smp != raspi4b::CPUS || self.mem_mib != raspi4b::MEM_MIB)
        {
            bail!(
                "raspi4b has {} CPUs and {} MiB, not {} and {}",
                raspi4b::CPUS,
                raspi4b::MEM_MIB,
                self.smp,
                self.mem_mib
            );
        }
        if self.smp == 0 {
            bail!("smp must be at least 1");
        }
        if self.mem_mib == 0 {
            bail!("mem_mib must be at least 1");
        }
        if !self.hypervisor.is_file() {
            bail!(
                "{} is missing: run `cargo xtask build` first",
                self.hypervisor.display()
            );
        }
        if let Some(next) = &self.next_image {
            if !next.is_file() {
                bail!(
                    "{} is missing: run `cargo xtask build` first",
                    next.display()
                );
            }
        }
        for (i, vm) in self.vms.iter().enumerate() {
            if self.vms[..i].iter().any(|other| other.name == vm.name) {
                bail!("two VMs are named {:?}", vm.name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn validation() {
        let dir = TempDir::new("validate");
        let hv = dir.write("hv", &[1; 16]);
        let mut s = Scenario::new(3);
        s.hypervisor = hv.clone();
        assert!(s.validate().is_ok());
        s.gic = 4;
        assert!(s.validate().is_err());
        let mut pi = Scenario::raspi4b();
        pi.hypervisor = hv.clone();
        assert!(pi.validate().is_ok());
        pi.gic = 3;
        assert!(pi.validate().is_err(), "raspi4b has a GICv2");
        let mut pi = Scenario::raspi4b().smp(2);
        pi.hypervisor = hv.clone();
        assert!(pi.validate().is_err(), "raspi4b has 4 CPUs");
        let mut s = Scenario::new(2)
            .vm(VmSpec::new("a", &hv))
            .vm(VmSpec::new("a", &hv));
        s.hypervisor = hv;
        assert!(s.validate().is_err(), "duplicate VM names");
        let mut s = Scenario::new(2);
        s.hypervisor = "/no/such/hypervisor.bin".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("cargo xtask build"), "{err}");
    }
}
