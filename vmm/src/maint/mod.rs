//! The maintenance link: what a technician's tool (`blinkctl`) and the
//! hypervisor say to each other over a UART, as plain logic that is unit
//! tested and fuzzed on the host. The hypervisor only moves bytes between
//! its UART and these types (see docs/maintenance.md for the protocol and
//! what is wired so far).
//!
//! - [`frame`]: one message on the wire (COBS, header, CRC-32);
//! - [`decoder`]: bytes in one at a time, text and frames told apart;
//! - [`proto`]: the typed messages frames carry (upload, replies);
//! - [`receiver`]: the device's side of an upload, into a staging slot;
//! - [`sender`]: the host's side of an upload (window, retransmissions);
//! - [`compress`]: image chunks as LZ4 blocks on the wire;
//! - [`signed`]: the signature block of an image slot (ed25519, SHA-256);
//! - [`command`]: the line console's command parser;
//! - [`auth`]: who may change state (challenge-response, ed25519);
//! - [`entropy`]: the pool the challenge nonces come from;
//! - [`trial`]: the rules of a trial upgrade (confirm, health, revert);
//! - [`device`]: the device's end in one place (bytes in, bytes out);
//! - `sim` (tests, feature `sim`): an upload over a simulated lossy line.
#![forbid(unsafe_code)]

pub mod auth;
pub mod command;
pub mod compress;
pub mod decoder;
pub mod device;
pub mod entropy;
pub mod frame;
pub mod proto;
pub mod receiver;
pub mod sender;
pub mod signed;
pub mod trial;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod receiver_tests;
/// The simulated lossy line, for the tests and `cargo xtask bench maint`
/// (feature `sim`).
#[cfg(any(test, feature = "sim"))]
pub mod sim;
