//! Calls to the firmware below us: PSCI through SMC or HVC, as the host
//! device tree says. Starts and stops CPUs and resets the machine.
use smccc::psci;
use smccc::{Hvc, Smc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// The conduit this machine's PSCI firmware answers on, once boot has read
/// the device tree (None: no PSCI, e.g. a spin-table board).
static CONDUIT: spin::Once<Option<Conduit>> = spin::Once::new();

/// Boot: record whether (and how) PSCI is available.
pub fn init(conduit: Option<Conduit>) {
    CONDUIT.call_once(|| conduit);
}

/// The PSCI conduit, if the machine has PSCI.
pub fn conduit() -> Option<Conduit> {
    CONDUIT.get().copied().flatten()
}

pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), psci::Error> {
    match conduit {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

pub fn cpu_off(conduit: Conduit) -> Result<(), psci::Error> {
    match conduit {
        Conduit::Smc => psci::cpu_off::<Smc>(),
        Conduit::Hvc => psci::cpu_off::<Hvc>(),
    }
}

/// Whether the CPU with `mpidr` is off (PSCI AFFINITY_INFO at level 0).
pub fn is_off(conduit: Conduit, mpidr: u64) -> bool {
    let state = match conduit {
        Conduit::Smc => psci::affinity_info::<Smc>(mpidr, psci::LowestAffinityLevel::All),
        Conduit::Hvc => psci::affinity_info::<Hvc>(mpidr, psci::LowestAffinityLevel::All),
    };
    matches!(state, Ok(psci::AffinityState::Off))
}

/// PSCI SYSTEM_RESET: a cold reset of the whole machine (every CPU, the
/// GIC, memory contents as the firmware leaves them). Does not return on
/// success; an error means the firmware refused or does not implement it.
pub fn system_reset(conduit: Conduit) -> Result<(), psci::Error> {
    match conduit {
        Conduit::Smc => psci::system_reset::<Smc>(),
        Conduit::Hvc => psci::system_reset::<Hvc>(),
    }
}
