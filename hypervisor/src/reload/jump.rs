//! Step 3 of the old image's side: copy the trampoline (reload.S) to the
//! board's trampoline page, clean everything the new image reads to the
//! point of coherency, and enter it with the warm-entry registers (see the
//! ABI in `reload/mod.rs`).
use super::WARM_MAGIC;
use crate::arch::aarch64::cache;
use crate::arch::aarch64::sysreg::counter;
use crate::board::board;

extern "C" {
    static __image_start: u8;
    /// End of what the image ever writes (code, data, bss, stacks); the
    /// image's footprint is rounded up to 2 MiB beyond it.
    static __stacks_end: u8;
    static reload_trampoline: u8;
    static reload_trampoline_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Replace this image with the one at `src` (`copy_len` bytes) and enter
/// it; `handoff_len` bytes of handoff block are cleaned for it.
pub fn jump(dtb: u64, src: u64, copy_len: u64, handoff_len: u64, slot_base: u64) -> ! {
    // SAFETY: linker symbols delimit the trampoline code.
    let (t_start, t_end, img_start, img_end) = unsafe {
        (
            sym(&reload_trampoline),
            sym(&reload_trampoline_end),
            sym(&__image_start),
            sym(&__stacks_end),
        )
    };
    let t_len = t_end - t_start;
    // SAFETY: the trampoline page is reserved for this, outside the image it
    // overwrites; the code is position independent (no literal pools).
    unsafe {
        core::ptr::copy_nonoverlapping(
            t_start as *const u8,
            board().trampoline as *mut u8,
            t_len as usize,
        )
    };
    cache::clean_invalidate_to_poc(board().trampoline, t_len);
    cache::clean_invalidate_to_poc(board().handoff.0, handoff_len);
    cache::clean_invalidate_to_poc(src, copy_len);
    cache::clean_invalidate_to_poc(img_start, img_end - img_start);
    cache::invalidate_icache();
    crate::arch::aarch64::guest::leave_vm();
    // SAFETY: the trampoline never returns: it replaces this image and
    // enters the new one. Everything it reads was cleaned to memory above.
    unsafe {
        let t: extern "C" fn(u64, u64, u64, u64, u64, u64, u64, u64) -> ! =
            core::mem::transmute(board().trampoline as usize);
        t(
            // Where this image runs: the next one is copied over it (the
            // board was chosen by this address, src/board.rs).
            img_start,
            src,
            copy_len,
            dtb,
            board().handoff.0,
            WARM_MAGIC,
            slot_base,
            counter(),
        )
    }
}
