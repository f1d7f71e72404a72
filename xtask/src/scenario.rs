//! A scenario is one QEMU machine plus the VMs the hypervisor should start on
//! it. [`Scenario::prepare`] turns it into a ready-to-run QEMU command: it asks
//! QEMU for its own device tree (`dumpdtb`), adds the `/chosen/domU*` nodes,
//! and places the guest images with `-device loader`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::dtb::{self, Module, ModuleKind};
use crate::{images, linux, qemu};

/// Start of RAM on QEMU `virt`.
pub const RAM_BASE: u64 = 0x4000_0000;
/// First module address: above the hypervisor region (up to 0x4400_0000) and
/// the DTB QEMU places at 0x4800_0000.
pub const MODULE_BASE: u64 = 0x4900_0000;
/// Module alignment (the arm64 boot protocol wants 2 MiB aligned images).
pub const MODULE_ALIGN: u64 = 2 << 20;

/// One VM, as described to the hypervisor by a `/chosen/<name>` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Node name, also the tag of the VM's console lines (`[domU0] ...`).
    pub name: String,
    pub kernel: PathBuf,
    pub ramdisk: Option<PathBuf>,
    pub mem_kib: u64,
    pub cpus: u32,
    /// `bootargs` of the kernel module node.
    pub bootargs: Option<String>,
    /// `(address, size)` in bytes: emits `xen,static-mem = <2 addr cells, 2 size cells>`.
    pub static_mem: Option<(u64, u64)>,
    /// Leave out the kernel module (negative test "missing kernel").
    pub omit_kernel: bool,
    /// Raw properties added to the domU node (replacing a standard one of the same name).
    pub extra_props: Vec<(String, Vec<u8>)>,
}

impl VmSpec {
    /// A 1-vCPU, 64 MiB VM booting `kernel`.
    pub fn new(name: impl Into<String>, kernel: impl Into<PathBuf>) -> Self {
        VmSpec {
            name: name.into(),
            kernel: kernel.into(),
            ramdisk: None,
            mem_kib: 64 * 1024,
            cpus: 1,
            bootargs: None,
            static_mem: None,
            omit_kernel: false,
            extra_props: Vec::new(),
        }
    }

    /// A VM booting the test guest `guest` from `target/images/<guest>.bin`.
    pub fn guest(name: impl Into<String>, guest: &str) -> Self {
        Self::new(name, images::guest_image(guest))
    }

    /// A Linux VM: Debian's kernel with the busybox initramfs from
    /// `target/linux/` (prepared by [`crate::linux::prepare`]),
    /// [`linux::DEFAULT_MEM_MIB`] of RAM, [`linux::DEFAULT_CPUS`] vCPUs and
    /// [`linux::BASE_BOOTARGS`]. See [`VmSpec::linux_test`] and
    /// [`VmSpec::append_bootargs`].
    pub fn linux(name: impl Into<String>) -> Self {
        Self::new(name, linux::kernel_image())
            .ramdisk(linux::initramfs())
            .mem_mib(linux::DEFAULT_MEM_MIB)
            .cpus(linux::DEFAULT_CPUS)
            .bootargs(linux::bootargs(None, ""))
    }

    /// Runs the `/init` workload `test` (`checksum`, `poweroff`, `reboot`, `panic`)
    /// instead of the idle shell: adds `blink.test=<test>` to the bootargs.
    pub fn linux_test(self, test: &str) -> Self {
        self.append_bootargs(&format!("blink.test={test}"))
    }

    /// Appends options to the kernel command line (e.g. `loglevel=8`).
    pub fn append_bootargs(mut self, extra: &str) -> Self {
        let extra = extra.trim();
        if !extra.is_empty() {
            let args = self.bootargs.get_or_insert_with(String::new);
            if !args.is_empty() {
                args.push(' ');
            }
            args.push_str(extra);
        }
        self
    }

    pub fn mem_mib(mut self, mib: u64) -> Self {
        self.mem_kib = mib * 1024;
        self
    }

    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    pub fn bootargs(mut self, args: impl Into<String>) -> Self {
        self.bootargs = Some(args.into());
        self
    }

    pub fn ramdisk(mut self, path: impl Into<PathBuf>) -> Self {
        self.ramdisk = Some(path.into());
        self
    }

    pub fn static_mem(mut self, addr: u64, size: u64) -> Self {
        self.static_mem = Some((addr, size));
        self
    }

    pub fn omit_kernel(mut self) -> Self {
        self.omit_kernel = true;
        self
    }

    pub fn prop(mut self, name: impl Into<String>, value: Vec<u8>) -> Self {
        self.extra_props.push((name.into(), value));
        self
    }
}

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
    /// GIC version: 2 or 3.
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
}

impl Scenario {
    /// `gic` version, cortex-a72, 2 CPUs, 1 GiB, no VMs.
    pub fn new(gic: u32) -> Self {
        Scenario {
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
        }
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
        if self.gic != 2 && self.gic != 3 {
            bail!("GIC version must be 2 or 3, not {}", self.gic);
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

    /// The machine options shared by the `dumpdtb` run and the real run.
    fn machine_args(&self, dumpdtb: Option<&Path>) -> Result<Vec<String>> {
        let mut machine = format!("virt,virtualization=on,gic-version={}", self.gic);
        if let Some(path) = dumpdtb {
            machine.push_str(",dumpdtb=");
            machine.push_str(&qemu_opt_path(path)?);
        }
        let mut args: Vec<String> = vec![
            "-M".into(),
            machine,
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            self.smp.to_string(),
            "-m".into(),
            format!("{}M", self.mem_mib),
            "-display".into(),
            "none".into(),
        ];
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        Ok(args)
    }

    /// Computes where each VM's modules go: from [`MODULE_BASE`] upward,
    /// 2 MiB aligned, in VM order (kernel, then ramdisk); sizes are the file
    /// sizes. Fails if a module does not fit below the end of RAM.
    pub fn place_modules(&self) -> Result<Vec<Vec<Module>>> {
        let ram_end = RAM_BASE + (self.mem_mib << 20);
        let mut next = MODULE_BASE;
        let mut placed = Vec::new();
        for vm in &self.vms {
            let mut mods = Vec::new();
            let files = [
                (!vm.omit_kernel).then_some((ModuleKind::Kernel, &vm.kernel)),
                vm.ramdisk.as_ref().map(|r| (ModuleKind::Ramdisk, r)),
            ];
            for (kind, path) in files.into_iter().flatten() {
                let size = std::fs::metadata(path)
                    .with_context(|| format!("VM {}: cannot read {}", vm.name, path.display()))?
                    .len();
                if size == 0 {
                    bail!("VM {}: {} is empty", vm.name, path.display());
                }
                let addr = next.next_multiple_of(MODULE_ALIGN);
                let end = addr.checked_add(size).context("module address overflow")?;
                if end > ram_end {
                    bail!(
                        "VM {}: {} ({size} bytes) does not fit below the end of RAM (0x{ram_end:x}); raise mem_mib",
                        vm.name,
                        path.display()
                    );
                }
                mods.push(Module {
                    kind,
                    path: path.clone(),
                    addr,
                    size,
                });
                next = end;
            }
            placed.push(mods);
        }
        Ok(placed)
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
        let base = self.dump_dtb(&qemu.path, &base_path)?;
        let mut chosen = Vec::new();
        if let Some(ms) = self.reload_every_ms {
            chosen.push((
                "blink,rejuvenate-interval-ms".to_string(),
                ms.to_be_bytes().to_vec(),
            ));
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
                platform::boards::qemu_virt::BOARD.image_slots[1].0
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

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

/// A path inside a QEMU `key=value,...` option: commas are doubled.
fn qemu_opt_path(path: &Path) -> Result<String> {
    Ok(path_str(path)?.replace(',', ",,"))
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn shell_line(program: &Path, args: &[String]) -> String {
    let mut line = shell_quote(&program.to_string_lossy());
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    line
}

/// A directory under `target/xtask/` private to one prepared command.
#[derive(Debug)]
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = crate::target_dir().join("xtask").join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("BLINK_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A prepared QEMU invocation. Owns its temporary directory: keep it alive
/// while QEMU runs.
#[derive(Debug)]
pub struct QemuCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The patched device tree passed with `-dtb`.
    pub dtb: PathBuf,
    /// QEMU's own tree as dumped, before patching.
    pub base_dtb: PathBuf,
    /// Every module, in load order.
    pub modules: Vec<Module>,
    workdir: WorkDir,
}

impl QemuCommand {
    /// A QEMU invocation that boots no hypervisor: `args` as given, none of
    /// a scenario's device tree or modules (`dtb` and `base_dtb` are empty
    /// paths, `modules` empty). For running a guest bare on QEMU, as a
    /// baseline (`cargo xtask bench linux`).
    pub fn bare(program: PathBuf, args: Vec<String>) -> Result<Self> {
        Ok(QemuCommand {
            program,
            args,
            dtb: PathBuf::new(),
            base_dtb: PathBuf::new(),
            modules: Vec::new(),
            workdir: WorkDir::new()?,
        })
    }

    /// A `Command` for this invocation (stdio left to the caller).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// The temporary directory holding the device trees.
    pub fn workdir(&self) -> &Path {
        &self.workdir.path
    }
}

impl fmt::Display for QemuCommand {
    /// The command as a shell line, for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_line(&self.program, &self.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn modules_are_placed_upward_2mib_aligned() {
        let dir = TempDir::new("place");
        let k0 = dir.write("k0", &vec![1; 0x30_0001]); // spills into a second 2 MiB block
        let k1 = dir.write("k1", &[1; 100]);
        let rd = dir.write("rd", &[1; 10]);
        let s = Scenario::new(3)
            .vm(VmSpec::new("domU0", &k0))
            .vm(VmSpec::new("domU1", &k1).ramdisk(&rd))
            .vm(VmSpec::new("domU2", "/missing").omit_kernel());
        let placed = s.place_modules().unwrap();
        let got: Vec<Vec<(ModuleKind, u64, u64)>> = placed
            .iter()
            .map(|v| v.iter().map(|m| (m.kind, m.addr, m.size)).collect())
            .collect();
        assert_eq!(
            got,
            vec![
                vec![(ModuleKind::Kernel, 0x4900_0000, 0x30_0001)],
                vec![
                    (ModuleKind::Kernel, 0x4940_0000, 100),
                    (ModuleKind::Ramdisk, 0x4960_0000, 10)
                ],
                vec![],
            ]
        );
    }

    #[test]
    fn module_placement_errors() {
        let dir = TempDir::new("place-err");
        let k = dir.write("k", &vec![1; 4 << 20]);
        let mut s = Scenario::new(2).vm(VmSpec::new("domU0", &k));
        s.mem_mib = 148; // RAM ends at 0x4940_0000: 4 MiB at 0x4900_0000 fits exactly
        assert!(s.place_modules().is_ok());
        s.mem_mib = 147;
        assert!(s.place_modules().is_err());
        let s = Scenario::new(2).vm(VmSpec::new("domU0", "/definitely/missing.bin"));
        assert!(s.place_modules().is_err());
        let empty = dir.write("empty", &[]);
        let s = Scenario::new(2).vm(VmSpec::new("domU0", &empty));
        assert!(s.place_modules().is_err());
    }

    #[test]
    fn validation() {
        let dir = TempDir::new("validate");
        let hv = dir.write("hv", &[1; 16]);
        let mut s = Scenario::new(3);
        s.hypervisor = hv.clone();
        assert!(s.validate().is_ok());
        s.gic = 4;
        assert!(s.validate().is_err());
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

    #[test]
    fn linux_vm_spec() {
        let vm = VmSpec::linux("domU0").cpus(1).linux_test("checksum");
        assert_eq!(vm.kernel, linux::kernel_image());
        assert_eq!(vm.ramdisk, Some(linux::initramfs()));
        assert_eq!((vm.mem_kib, vm.cpus), (256 * 1024, 1));
        assert_eq!(
            vm.bootargs.as_deref(),
            Some(&*format!("{} blink.test=checksum", linux::BASE_BOOTARGS))
        );
        let vm = VmSpec::new("x", "k")
            .append_bootargs(" quiet ")
            .append_bootargs("");
        assert_eq!(vm.bootargs.as_deref(), Some("quiet"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-M"), "-M");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(qemu_opt_path(Path::new("/a,b")).unwrap(), "/a,,b");
    }
}
