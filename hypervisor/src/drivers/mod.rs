//! The devices the hypervisor drives itself: its UART and the firmware
//! below it (PSCI). Nothing here knows about VMs.
pub mod psci;
pub mod uart;
