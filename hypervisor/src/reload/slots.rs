//! The board's three image slots (format: `vmm::image_slot`): which one
//! holds this image's pristine copy, which one the image it was upgraded
//! from, which one is staged, and choosing the image a warm reload starts.
//!
//! A cold boot copies the running image into slot 0. A warm entry is told
//! (x3) which slot its image came from, and the handoff block which slot
//! the old image ran from, so after an upgrade from slot 0 to slot 1 the
//! old image still sits untouched in slot 0 and is the way back
//! (`rollback`). The third slot, neither running nor previous, is the
//! *staging* slot: what `upgrade` starts, and the only one an upload
//! (`super::upload`) ever replaces.
use super::state;
use crate::arch::aarch64::cache;
use crate::board::board;
use alloc::string::String;
use core::sync::atomic::Ordering;
use log::error;
use vmm::image_slot::{self, ImageRules, SlotError, SlotImage, HEADER_SIZE};

/// "No slot" in `ReloadState::{current_slot, previous_slot}` (indices into
/// `board().image_slots`).
pub const NONE: usize = usize::MAX;

extern "C" {
    static __image_start: u8;
    static __data_start: u8;
    static __image_end_file: u8;
    /// The initial `.data`, saved by boot.S before it relocated the image.
    static __data_pristine: u8;
    /// The relocation table boot.S applied (`Elf64_Rela` entries, all
    /// R_AARCH64_RELATIVE; never written).
    static __rela_start: u8;
    static __rela_end: u8;
}

/// Which slot a reload starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A fresh copy of the running image (rejuvenation).
    Current,
    /// The staged image (upgrade).
    Staged,
    /// The image the running one was upgraded from (rollback).
    Previous,
}

impl Target {
    /// The verb that asks for it, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Target::Current => "rejuvenate",
            Target::Staged => "upgrade",
            Target::Previous => "rollback",
        }
    }
}

pub fn rules() -> ImageRules {
    let keep = board().image_slots[0]
        .0
        .min(board().image_slots[1].0)
        .min(board().handoff.0)
        .min(board().trampoline);
    // A reload copies the next image where this one runs.
    let here = crate::board::image_base();
    ImageRules {
        board: board().name,
        load_address: here,
        max_image_size: keep.saturating_sub(here),
    }
}

pub(super) fn bytes(slot: usize) -> &'static [u8] {
    let (base, size) = board().image_slots[slot];
    // SAFETY: image slots are reserved in the board description, identity
    // mapped, outside the heap and written only by `stage_self` (before any
    // reader) or by the boot loader.
    unsafe { core::slice::from_raw_parts(base as *const u8, size as usize) }
}

pub fn current() -> Option<usize> {
    Some(state().current_slot.load(Ordering::Acquire)).filter(|&s| s != NONE)
}

pub fn previous() -> Option<usize> {
    Some(state().previous_slot.load(Ordering::Acquire)).filter(|&s| s != NONE)
}

/// After a trial was reverted: the trial image is no way back, it is
/// staged again (to retry, or to be replaced by an upload).
pub fn forget_previous() {
    state().previous_slot.store(NONE, Ordering::Release);
}

/// The staging slot: the first that holds neither the running image nor
/// the previous one (there are three, so there always is one). A cold
/// boot stages slot 1, where `cargo xtask run --next-image` has QEMU
/// place a second build.
pub fn staging() -> usize {
    let (cur, prev) = (current(), previous());
    (1..board().image_slots.len())
        .chain([0])
        .find(|&i| Some(i) != cur && Some(i) != prev)
        .unwrap_or(1)
}

/// The slot the handoff block names as the way back after a reload into
/// `slot`: the running one, unless the reload restarts the running image
/// itself (a rejuvenation keeps the way back it had).
pub fn previous_after(slot: usize) -> Option<usize> {
    match current() {
        Some(c) if c == slot => previous(),
        c => c,
    }
}

/// Base and size of slot `slot` (for the upload's commit into the staging
/// slot).
pub(super) fn region(slot: usize) -> (u64, u64) {
    board().image_slots[slot]
}

/// The places boot.S relocated, in `image` (the file part of this image),
/// get back the bytes the file holds there: the link-time value, which for
/// an image linked at 0 is the addend (`--apply-dynamic-relocs`). Returns
/// how many were restored.
fn unrelocate(image: &mut [u8]) -> usize {
    // SAFETY: the linker symbols delimit the relocation table in the
    // image's read-only part; only its address range is taken here.
    let (start, end) = unsafe {
        (
            &__rela_start as *const u8 as usize,
            &__rela_end as *const u8 as usize,
        )
    };
    // SAFETY: [start, end) is the table (8-byte aligned, a whole number of
    // 24-byte entries, by the linker script); it is never written.
    let table = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    let mut n = 0;
    for e in table.chunks_exact(24) {
        let word = |i: usize| u64::from_le_bytes(e[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (offset, addend) = (word(0) as usize, word(2));
        if let Some(place) = image.get_mut(offset..offset.saturating_add(8)) {
            place.copy_from_slice(&addend.to_le_bytes());
            n += 1;
        }
    }
    n
}

/// Cold boot: copy this image, with a slot header, into slot 0: the running
/// image's code and read-only data, and `.data` as it was at entry (statics
/// change at run time), with the relocations boot.S applied undone: the
/// copy is byte for byte what a boot loader would load.
pub fn stage_self() {
    // SAFETY: linker symbols delimit the file part of the image and its
    // `.data`; boot.S filled `__data_pristine` with that many bytes (the
    // linker script asserts they fit).
    let (image, data_off, pristine) = unsafe {
        let start = &__image_start as *const u8 as usize;
        let data = &__data_start as *const u8 as usize;
        let end = &__image_end_file as *const u8 as usize;
        (
            // Only `..data_off` of this is read.
            core::slice::from_raw_parts(start as *const u8, data - start),
            data - start,
            core::slice::from_raw_parts(&__data_pristine as *const u8, end - data),
        )
    };
    let image_len = data_off + pristine.len();
    let (base, size) = board().image_slots[0];
    if (HEADER_SIZE + image_len) as u64 > size {
        error!(
            "image ({} bytes) larger than image slot 0: warm reload unavailable",
            image_len
        );
        return;
    }
    let dst = (base + HEADER_SIZE as u64) as *mut u8;
    // SAFETY: slot 0 is reserved for this (board description), mapped, and
    // disjoint from the running image; nothing else writes it. The `.data`
    // range lies inside the image just copied.
    let staged = unsafe {
        core::ptr::write_bytes(base as *mut u8, 0, HEADER_SIZE);
        // Code and read-only data from the running image (never written);
        // `.data` only from the saved copy (the live one may be changing).
        core::ptr::copy_nonoverlapping(image.as_ptr(), dst, data_off);
        core::ptr::copy_nonoverlapping(pristine.as_ptr(), dst.add(data_off), pristine.len());
        core::slice::from_raw_parts_mut(dst, image_len)
    };
    unrelocate(staged);
    let staged: &[u8] = staged;
    let header = image_slot::header(crate::VERSION, board().name, staged);
    // SAFETY: the header page at the start of slot 0, see above.
    unsafe { core::ptr::copy_nonoverlapping(header.as_ptr(), base as *mut u8, header.len()) };
    cache::clean_to_poc(base, (HEADER_SIZE + image_len) as u64);
    state().current_slot.store(0, Ordering::Release);
}

/// Warm entry: `slot_base` (x3) is the base of the slot this image was
/// copied from; the handoff's `prev-image`, if any, the old image's slot.
pub fn adopt(slot_base: u64, prev: Option<u64>) {
    match board().image_slots.iter().position(|s| s.0 == slot_base) {
        Some(i) => state().current_slot.store(i, Ordering::Release),
        None => {
            error!(
                "warm entry from an unknown image slot {:#x}; staging this image into slot 0",
                slot_base
            );
            stage_self();
        }
    }
    if let Some(p) = prev.and_then(|b| board().image_slots.iter().position(|s| s.0 == b)) {
        state().previous_slot.store(p, Ordering::Release);
    }
}

/// The slot a reload to `target` starts, fully verified (header, checksum
/// of the whole image, arm64 header); with what it holds.
pub fn choose(target: Target) -> Result<(usize, SlotImage), String> {
    let cur = current().ok_or_else(|| String::from("no image slot holds this image"))?;
    let slot = match target {
        Target::Current => cur,
        Target::Staged => staging(),
        Target::Previous => previous().filter(|&p| p != cur).ok_or_else(|| {
            String::from("no previous image: this image was not started by an upgrade")
        })?,
    };
    image_slot::verify(bytes(slot), &rules())
        .map(|img| (slot, img))
        .map_err(|e| alloc::format!("image slot {slot}: {e}"))
}

/// Last check just before jumping (the slot was verified when the reload
/// was requested): the header still reads; returns (image address, bytes
/// to copy, a multiple of 8 within the slot).
pub fn copy_source(slot: usize) -> Result<(u64, u64), SlotError> {
    let s = image_slot::read_header(bytes(slot))?;
    let (base, size) = board().image_slots[slot];
    let len = s.image_len.next_multiple_of(8);
    if HEADER_SIZE as u64 + len > size {
        return Err(SlotError::TooLarge {
            image_len: s.image_len,
            room: size - HEADER_SIZE as u64,
        });
    }
    image_slot::check_arm64_image(
        &bytes(slot)[HEADER_SIZE..HEADER_SIZE + s.image_len as usize],
        &rules(),
    )?;
    Ok((base + HEADER_SIZE as u64, len))
}

/// What one image slot holds, for the `images` verb.
pub struct SlotReport {
    pub index: usize,
    pub base: u64,
    pub size: u64,
    /// The image it holds, fully verified, or why it holds none.
    pub content: Result<SlotImage, SlotError>,
    /// " [running]", " [previous]", " [staged]" or "".
    pub role: &'static str,
}

/// What each slot holds.
pub fn describe() -> alloc::vec::Vec<SlotReport> {
    board()
        .image_slots
        .iter()
        .enumerate()
        .map(|(i, &(base, size))| SlotReport {
            index: i,
            base,
            size,
            content: image_slot::verify(bytes(i), &rules()),
            role: match (current(), previous()) {
                (Some(c), _) if c == i => " [running]",
                (_, Some(p)) if p == i => " [previous]",
                _ if i == staging() => " [staged]",
                _ => "",
            },
        })
        .collect()
}
