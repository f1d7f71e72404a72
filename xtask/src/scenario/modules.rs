//! Where a scenario's guest modules go in the machine's RAM: each VM's
//! kernel, then its ramdisk, upward from the machine's module base.

use anyhow::{bail, Context, Result};

use super::Scenario;
use crate::dtb::{Module, ModuleKind};

/// Module alignment (the arm64 boot protocol wants 2 MiB aligned images).
pub const MODULE_ALIGN: u64 = 2 << 20;

impl Scenario {
    /// Computes where each VM's modules go: from the machine's module base
    /// upward, 2 MiB aligned, in VM order (kernel, then ramdisk); sizes are
    /// the file sizes. Fails if a module does not fit below the end of RAM.
    pub fn place_modules(&self) -> Result<Vec<Vec<Module>>> {
        let ram_end = self.machine.ram_end(self.mem_mib);
        let mut next = self.machine.module_base();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use crate::VmSpec;

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
}
