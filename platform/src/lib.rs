//! Boards are data: each board folder describes what the device tree cannot
//! tell the hypervisor before it has parsed one (where the early console is,
//! where the image is linked) and the quirks of its boot protocol.
#![no_std]
