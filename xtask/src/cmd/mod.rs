//! What each `cargo xtask` subcommand does, one file per subcommand (the
//! options are in `main.rs`); here, what `run` and `dtb` share: the
//! scenario their options describe, and getting its guests ready.

use anyhow::{bail, Context, Result};

use xtask::machine::Machine;
use xtask::{images, Scenario, VmSpec};

use crate::ScenarioArgs;

pub mod bench;
mod blinkctl;
pub mod build;
pub mod dtb;
pub mod keygen;
pub mod linux;
pub mod maint;
pub mod run;
pub mod sdcard;
pub mod sign;
pub mod test;

impl ScenarioArgs {
    fn scenario(&self) -> Scenario {
        let mut s = match Machine::by_board(&self.board) {
            Some(Machine::Raspi4b) => Scenario::raspi4b(),
            _ => {
                let mut s = Scenario::new(self.gic).smp(self.smp);
                s.cpu = self.cpu.clone();
                s.mem_mib = self.mem;
                s
            }
        };
        s.icount = self.icount;
        if let Some(hv) = &self.hv {
            s.hypervisor = hv.clone();
        }
        if self.next_image {
            s.next_image = Some(images::next_image_for(s.machine));
        }
        s.reload_every_ms = self.reload_every;
        if let Some(sock) = &self.maint_socket {
            if s.machine == Machine::Virt {
                s.maint_uart_on_socket(sock);
            } else {
                eprintln!("xtask: --maint-socket: only qemu-virt has a maintenance UART (here the link rides on the console); ignored");
            }
        }
        for (i, guest) in self.guests.iter().enumerate() {
            let name = format!("domU{i}");
            let is_path = guest.contains('/') || guest.ends_with(".bin");
            let vm = if guest == LINUX {
                let mut vm = VmSpec::linux(name)
                    .cpus(self.linux_cpus)
                    .mem_mib(self.linux_mem);
                if let Some(t) = &self.linux_test {
                    vm = vm.linux_test(t);
                }
                vm.append_bootargs(&self.linux_append)
            } else if is_path {
                VmSpec::new(name, guest)
            } else if guest == HEARTBEAT && !self.verbose_guests {
                VmSpec::guest(name, guest).append_bootargs(HEARTBEAT_QUIET)
            } else {
                VmSpec::guest(name, guest)
            };
            s = s.vm(if guest == "smp" { vm.cpus(4) } else { vm });
        }
        s
    }

    /// Guest names that refer to built test-guest images (not paths, not Linux).
    fn named_guests(&self) -> impl Iterator<Item = &str> {
        self.guests
            .iter()
            .filter(|g| !(g.contains('/') || g.ends_with(".bin") || *g == LINUX))
            .map(String::as_str)
    }

    fn wants_linux(&self) -> bool {
        self.guests.iter().any(|g| g == LINUX)
    }
}

/// The `--guests` name of the Linux guest.
const LINUX: &str = "linux";
/// The heartbeat guest, and the bootargs that keep it quiet for a person
/// (guests/src/bin/heartbeat.rs); without them it prints what the tests parse.
const HEARTBEAT: &str = "heartbeat";
const HEARTBEAT_QUIET: &str = "heartbeat.report=quiet";

/// Fetches/builds the Linux images if the scenario has a Linux guest, and
/// the Pi 4 device tree if it runs on that board.
fn prepare_linux(args: &ScenarioArgs) -> Result<()> {
    if args.wants_linux() {
        xtask::linux::prepare(false).context("preparing the Linux guest (`cargo xtask linux`)")?;
    }
    if Machine::by_board(&args.board) == Some(Machine::Raspi4b) {
        xtask::rpi4_dtb::prepare(false).context("fetching the Raspberry Pi 4 device tree")?;
    }
    Ok(())
}

fn check_guests_exist(args: &ScenarioArgs) -> Result<()> {
    for guest in args.named_guests() {
        if !images::guest_image(guest).is_file() {
            let known = images::guest_names()?;
            bail!(
                "no image for guest {guest:?} ({} missing; known guests: {})",
                images::guest_image(guest).display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(())
}
