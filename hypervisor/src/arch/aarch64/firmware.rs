//! Calls to the firmware below us (PSCI through SMC or HVC, as the host
//! device tree says).
use smccc::psci;
use smccc::{Hvc, Smc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), psci::Error> {
    match conduit {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}
