//! PSCI 1.0 as the hypervisor offers it to guests (reached by HVC, or by an
//! SMC that HCR_EL2.TSC traps). Dispatch is pure: the VM is reached through
//! the [`PsciVm`] trait, so every call is tested on the host.
use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{
    ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING,
};
use smccc::psci::*;

/// PSCI version 1.0 (major 1, minor 0).
pub const VERSION_1_0: u64 = 1 << 16;
/// SMCCC version 1.1.
const SMCCC_1_1: u64 = 0x1_0001;
/// AFFINITY_INFO answers.
pub const AFF_ON: u64 = 0;
pub const AFF_OFF: u64 = 1;
pub const AFF_ON_PENDING: u64 = 2;
/// MIGRATE_INFO_TYPE: "trusted OS not present or does not require migration".
const MIGRATE_NOT_REQUIRED: u64 = 2;

/// Power state of a vCPU as PSCI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    OnPending,
}

/// What dispatch needs to know about, and do to, the calling VM.
pub trait PsciVm {
    /// vCPU index whose MPIDR (affinity fields only) is `mpidr`.
    fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize>;
    fn power_state(&self, vcpu: usize) -> PowerState;
    /// Whether `ipa` is guest RAM where a vCPU could start executing.
    fn is_ram(&self, ipa: u64) -> bool;
}

/// What the caller must do after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this value to x0 and resume the caller.
    Return(u64),
    /// Power on `vcpu` at `entry` with x0 = `context`, then return 0 to the caller.
    CpuOn {
        vcpu: usize,
        entry: u64,
        context: u64,
    },
    /// Stop the calling vCPU (no return).
    CpuOff,
    /// CPU_SUSPEND: treat as a wait for interrupt, then return success.
    Suspend,
    /// The whole VM powers off / resets.
    SystemOff,
    SystemReset,
}

fn err(code: i32) -> Action {
    Action::Return(code as i64 as u64)
}

/// Handle a PSCI/SMCCC call `fid` with arguments x1..x3.
pub fn dispatch(vm: &dyn PsciVm, fid: u64, args: [u64; 3]) -> Action {
    // SMC32 calls only look at the low 32 bits of their arguments.
    let fid32 = fid as u32;
    let is64 = fid32 & 0x4000_0000 != 0;
    let arg = |i: usize| if is64 { args[i] } else { args[i] & 0xffff_ffff };
    match fid32 {
        PSCI_VERSION => Action::Return(VERSION_1_0),
        PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => {
            let (target, entry, context) = (arg(0), arg(1), arg(2));
            let Some(vcpu) = vm.vcpu_by_mpidr(target) else {
                return err(INVALID_PARAMETERS);
            };
            match vm.power_state(vcpu) {
                PowerState::On => err(ALREADY_ON),
                PowerState::OnPending => err(ON_PENDING),
                PowerState::Off if !vm.is_ram(entry) => err(INVALID_ADDRESS),
                PowerState::Off => Action::CpuOn {
                    vcpu,
                    entry,
                    context,
                },
            }
        }
        PSCI_CPU_OFF => Action::CpuOff,
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => Action::Suspend,
        PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => {
            // Only affinity level 0 (a single vCPU) is meaningful here.
            if arg(1) != 0 {
                return err(INVALID_PARAMETERS);
            }
            match vm.vcpu_by_mpidr(arg(0)) {
                None => err(INVALID_PARAMETERS),
                Some(v) => Action::Return(match vm.power_state(v) {
                    PowerState::On => AFF_ON,
                    PowerState::Off => AFF_OFF,
                    PowerState::OnPending => AFF_ON_PENDING,
                }),
            }
        }
        PSCI_MIGRATE_INFO_TYPE => Action::Return(MIGRATE_NOT_REQUIRED),
        PSCI_SYSTEM_OFF => Action::SystemOff,
        PSCI_SYSTEM_RESET => Action::SystemReset,
        PSCI_FEATURES => Action::Return(match arg(0) as u32 {
            PSCI_VERSION
            | PSCI_CPU_ON_32
            | PSCI_CPU_ON_64
            | PSCI_CPU_OFF
            | PSCI_AFFINITY_INFO_32
            | PSCI_AFFINITY_INFO_64
            | PSCI_MIGRATE_INFO_TYPE
            | PSCI_SYSTEM_OFF
            | PSCI_SYSTEM_RESET
            | PSCI_FEATURES
            | SMCCC_VERSION => 0,
            // Feature flags 0: original (non-extended) power_state format.
            PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => 0,
            _ => NOT_SUPPORTED as i64 as u64,
        }),
        SMCCC_VERSION => Action::Return(SMCCC_1_1),
        // No firmware workarounds are offered to guests.
        SMCCC_ARCH_FEATURES => err(NOT_SUPPORTED),
        _ => err(NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vm {
        states: [PowerState; 4],
    }

    impl PsciVm for Vm {
        fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
            let idx = (mpidr & 0xff_00ff_ffff) as usize;
            (idx < self.states.len()).then_some(idx)
        }
        fn power_state(&self, vcpu: usize) -> PowerState {
            self.states[vcpu]
        }
        fn is_ram(&self, ipa: u64) -> bool {
            (0x4000_0000..0x5000_0000).contains(&ipa)
        }
    }

    fn vm() -> Vm {
        Vm {
            states: [
                PowerState::On,
                PowerState::Off,
                PowerState::OnPending,
                PowerState::Off,
            ],
        }
    }

    const NEG: fn(i32) -> Action = err;

    #[test]
    fn version_is_1_0() {
        assert_eq!(
            dispatch(&vm(), PSCI_VERSION as u64, [0; 3]),
            Action::Return(0x1_0000)
        );
    }

    #[test]
    fn cpu_on_cases() {
        let v = vm();
        let on = |t, e| dispatch(&v, PSCI_CPU_ON_64 as u64, [t, e, 0x55]);
        assert_eq!(
            on(1, 0x4008_0000),
            Action::CpuOn {
                vcpu: 1,
                entry: 0x4008_0000,
                context: 0x55
            }
        );
        assert_eq!(on(0, 0x4008_0000), NEG(ALREADY_ON));
        assert_eq!(on(2, 0x4008_0000), NEG(ON_PENDING));
        assert_eq!(on(7, 0x4008_0000), NEG(INVALID_PARAMETERS));
        assert_eq!(on(3, 0x1000), NEG(INVALID_ADDRESS));
    }

    #[test]
    fn cpu_on_32_truncates_arguments() {
        let a = dispatch(
            &vm(),
            PSCI_CPU_ON_32 as u64,
            [0xffff_ffff_0000_0001, 0x1_4008_0000, 1],
        );
        assert_eq!(
            a,
            Action::CpuOn {
                vcpu: 1,
                entry: 0x4008_0000,
                context: 1
            }
        );
    }

    #[test]
    fn affinity_info() {
        let v = vm();
        assert_eq!(
            dispatch(&v, PSCI_AFFINITY_INFO_64 as u64, [0, 0, 0]),
            Action::Return(AFF_ON)
        );
        assert_eq!(
            dispatch(&v, PSCI_AFFINITY_INFO_64 as u64, [1, 0, 0]),
            Action::Return(AFF_OFF)
        );
        assert_eq!(
            dispatch(&v, PSCI_AFFINITY_INFO_64 as u64, [2, 0, 0]),
            Action::Return(AFF_ON_PENDING)
        );
        assert_eq!(
            dispatch(&v, PSCI_AFFINITY_INFO_64 as u64, [9, 0, 0]),
            NEG(INVALID_PARAMETERS)
        );
        assert_eq!(
            dispatch(&v, PSCI_AFFINITY_INFO_64 as u64, [0, 1, 0]),
            NEG(INVALID_PARAMETERS)
        );
    }

    #[test]
    fn power_and_features() {
        let v = vm();
        assert_eq!(
            dispatch(&v, PSCI_SYSTEM_OFF as u64, [0; 3]),
            Action::SystemOff
        );
        assert_eq!(
            dispatch(&v, PSCI_SYSTEM_RESET as u64, [0; 3]),
            Action::SystemReset
        );
        assert_eq!(dispatch(&v, PSCI_CPU_OFF as u64, [0; 3]), Action::CpuOff);
        assert_eq!(
            dispatch(&v, PSCI_FEATURES as u64, [PSCI_CPU_ON_64 as u64, 0, 0]),
            Action::Return(0)
        );
        assert_eq!(
            dispatch(&v, PSCI_FEATURES as u64, [PSCI_MEM_PROTECT as u64, 0, 0]),
            NEG(NOT_SUPPORTED)
        );
        assert_eq!(
            dispatch(&v, SMCCC_VERSION as u64, [0; 3]),
            Action::Return(0x1_0001)
        );
    }

    #[test]
    fn unknown_functions_are_not_supported() {
        for fid in [0u64, 0x8400_00ff, 0xC200_0000, 0xdead_beef, u64::MAX] {
            assert_eq!(
                dispatch(&vm(), fid, [1, 2, 3]),
                NEG(NOT_SUPPORTED),
                "fid {fid:#x}"
            );
        }
    }
}
