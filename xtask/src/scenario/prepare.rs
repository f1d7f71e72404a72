//! Turning a scenario into a ready-to-run [`QemuCommand`]: the machine
//! options, QEMU's own device tree (`dumpdtb`) patched with the VMs, the
//! `-device loader` lines that place the images, the serial wiring.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::command::{path_str, qemu_opt_path, shell_line, WorkDir};
use super::{QemuCommand, Scenario, SerialMode};
use crate::dtb;
use crate::machine::{raspi4b, virt, Machine};
use crate::qemu;

impl Scenario {
    /// The machine options shared by the `dumpdtb` run and the real run.
    fn machine_args(&self, dumpdtb: Option<&Path>) -> Result<Vec<String>> {
        let mut machine = match self.machine {
            Machine::Virt => virt::machine_option(self.gic, true),
            Machine::Raspi4b => raspi4b::machine_option(),
        };
        if let Some(path) = dumpdtb {
            machine.push_str(",dumpdtb=");
            machine.push_str(&qemu_opt_path(path)?);
        }
        let mut args: Vec<String> = vec!["-M".into(), machine];
        // raspi4b's CPU model and count are fixed (validate checked them).
        if self.machine == Machine::Virt {
            args.extend([
                "-cpu".into(),
                self.cpu.clone(),
                "-smp".into(),
                self.smp.to_string(),
            ]);
        }
        args.extend([
            "-m".into(),
            format!("{}M", self.mem_mib),
            "-display".into(),
            "none".into(),
        ]);
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        Ok(args)
    }

    /// Builds the final QEMU command (see the module docs). All temporary
    /// files live in `target/xtask/<unique>/`, removed when the returned
    /// command is dropped (kept if `$BLINK_KEEP_TMP` is set).
    pub fn prepare(&self, serial: SerialMode) -> Result<QemuCommand> {
        self.validate()?;
        let lock = qemu::QemuLock::acquire()?;
        self.prepare_locked(serial, &lock)
    }

    /// [`Scenario::prepare`] for a caller already holding the QEMU lock
    /// (taking it twice would deadlock).
    pub fn prepare_locked(
        &self,
        serial: SerialMode,
        _lock: &qemu::QemuLock,
    ) -> Result<QemuCommand> {
        self.validate()?;
        let qemu = qemu::find()?;
        let modules = self.place_modules()?;
        let workdir = WorkDir::new()?;

        let base_path = workdir.path.join("qemu.dtb");
        let base = match self.machine {
            Machine::Virt => self.dump_dtb(&qemu.path, &base_path)?,
            // raspi4b makes no tree of its own: the Pi's, as the firmware
            // would load it (QEMU then disables what it does not model).
            Machine::Raspi4b => {
                let dtb = crate::rpi4_dtb::require()?;
                std::fs::copy(&dtb, &base_path)
                    .with_context(|| format!("copying {}", dtb.display()))?;
                std::fs::read(&base_path)?
            }
        };
        let mut chosen = Vec::new();
        if let Some(ms) = self.reload_every_ms {
            chosen.push((
                "blink,rejuvenate-interval-ms".to_string(),
                ms.to_be_bytes().to_vec(),
            ));
        }
        if let Some(fault) = self.test_fault {
            let mut value = fault.as_bytes().to_vec();
            value.push(0);
            chosen.push(("blink,test-fault".to_string(), value));
        }
        let patched = dtb::patch_dtb_with(&base, &self.vms, &modules, &chosen)
            .context("adding the /chosen/domU* nodes to QEMU's device tree")?;
        let dtb_path = workdir.path.join("blink.dtb");
        std::fs::write(&dtb_path, &patched)
            .with_context(|| format!("writing {}", dtb_path.display()))?;

        let mut args = self.machine_args(None)?;
        args.extend(["-kernel".into(), path_str(&self.hypervisor)?.to_string()]);
        args.extend(["-dtb".into(), path_str(&dtb_path)?.to_string()]);
        if let Some(next) = &self.next_image {
            args.push("-device".into());
            args.push(format!(
                "loader,file={},addr=0x{:x},force-raw=on",
                qemu_opt_path(next)?,
                self.machine.board().image_slots[1].0
            ));
        }
        for m in modules.iter().flatten() {
            args.push("-device".into());
            args.push(format!(
                "loader,file={},addr=0x{:x},force-raw=on",
                qemu_opt_path(&m.path)?,
                m.addr
            ));
        }
        match serial {
            SerialMode::Pipe => {
                args.extend(["-serial", "stdio", "-monitor", "none"].map(String::from));
            }
            SerialMode::Interactive => {
                args.extend(
                    [
                        "-chardev",
                        "stdio,id=con,mux=on,signal=off",
                        "-serial",
                        "chardev:con",
                        "-mon",
                        "chardev=con,mode=readline",
                    ]
                    .map(String::from),
                );
            }
        }
        args.extend(self.extra_args.iter().cloned());

        Ok(QemuCommand {
            program: qemu.path,
            args,
            dtb: dtb_path,
            base_dtb: base_path,
            modules: modules.into_iter().flatten().collect(),
            workdir,
        })
    }

    /// Runs QEMU with the same machine options plus `dumpdtb=` and returns
    /// the tree it generated. The serial port goes to `null` here: this run
    /// only builds the machine and exits, but the port must exist so its
    /// node is in the tree.
    fn dump_dtb(&self, qemu: &Path, out: &Path) -> Result<Vec<u8>> {
        let mut args = self.machine_args(Some(out))?;
        args.extend(["-serial", "null", "-monitor", "none"].map(String::from));
        args.extend(self.extra_args.iter().cloned());
        let mut child = Command::new(qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", qemu.display()))?;
        // QEMU exits right after writing the tree; the deadline only guards
        // against a hang (e.g. an extra argument that starts the machine).
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("QEMU did not exit within 60 s while dumping its device tree");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !status.success() {
            bail!(
                "QEMU failed to dump its device tree ({status}): {}\ncommand: {}",
                stderr.trim(),
                shell_line(qemu, &args)
            );
        }
        std::fs::read(out).with_context(|| {
            format!(
                "QEMU exited without writing {} (stderr: {})",
                out.display(),
                stderr.trim()
            )
        })
    }
}
