//! The devices the hypervisor drives itself: its UART, the firmware below
//! it (PSCI), and what a board without PSCI needs instead: a spin table to
//! start CPUs, a watchdog to reset the machine. Nothing here knows about
//! VMs; which of them runs is the board's data (`platform`).
pub mod bcm2835_wdt;
pub mod psci;
pub mod reset;
pub mod spin_table;
pub mod uart;
