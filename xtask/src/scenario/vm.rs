//! [`VmSpec`]: one VM of a scenario, as the hypervisor will be told about it
//! in its `/chosen/<name>` node (kernel, ramdisk, RAM, vCPUs, bootargs).

use std::path::PathBuf;

use crate::{images, linux};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
