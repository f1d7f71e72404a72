//! blinkctl: the host end of blink's maintenance link. The protocol is
//! `vmm::maint` (the code the hypervisor runs too); this crate adds the
//! transports, the clock, key files and the command line. See
//! docs/maintenance.md.
#![forbid(unsafe_code)]

pub mod exit;
pub mod keys;
pub mod link;
pub mod session;
