//! Reads the guest's device tree from the address it got in x0.

use crate::dtb::{self as blob, HEADER_SIZE};
pub use crate::dtb::{Error, Info};

use super::RAM_BASE;

/// End of the RAM the static identity map covers as normal memory (`boot.rs`).
const RAM_WINDOW_END: u64 = 0xc000_0000;

/// Parses the DTB at guest-physical address `addr`.
pub fn parse(addr: usize) -> Result<Info, Error> {
    blob::parse(blob(addr)?, addr as u64, RAM_BASE..RAM_WINDOW_END)
}

/// The `bootargs` of the DTB at guest-physical address `addr`.
pub fn bootargs(addr: usize) -> Result<Option<&'static str>, Error> {
    blob::bootargs(blob(addr)?)
}

/// The DTB at `addr` as bytes, its header checked.
fn blob(addr: usize) -> Result<&'static [u8], Error> {
    let addr64 = addr as u64;
    if !addr64.is_multiple_of(8)
        || addr64 < RAM_BASE
        || addr64 + (blob::MAX_DTB_SIZE as u64) > RAM_WINDOW_END
    {
        return Err(Error::BadAddress(addr64));
    }
    // SAFETY: the address is 8-byte aligned and the header lies inside the
    // mapped RAM window (checked above); nothing writes to the DTB.
    let header = unsafe { &*(addr as *const [u8; HEADER_SIZE]) };
    let total = blob::total_size(header)?;
    // SAFETY: `total` <= MAX_DTB_SIZE bytes from `addr` lie inside the mapped
    // RAM window (checked above); nothing ever writes to the DTB.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, total) })
}
