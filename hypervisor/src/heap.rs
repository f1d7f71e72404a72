//! The hypervisor heap: everything between the end of the image (where it
//! runs) and the board's heap end, below the memory kept across warm
//! reloads. Rebuilt from scratch by every image, which is what clears leaks
//! on a reload.
use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<33> = LockedHeap::empty();

extern "C" {
    /// The end of the image's footprint (2 MiB aligned from its start).
    static __heap_start: u8;
}

pub fn init() {
    // SAFETY: only the address of the linker symbol is taken (PC-relative
    // or relocated: where this image runs).
    let start = unsafe { &__heap_start as *const u8 as usize };
    let end = crate::board::board().heap_end() as usize;
    if start >= end {
        crate::boot::fatal(format_args!(
            "heap: the image ends at {start:#x}, above the board's heap end {end:#x} (loaded at the wrong address?)"
        ));
    }
    // SAFETY: [start, end) lies between the image's footprint and the
    // board's kept regions (slots, handoff, trampoline), inside its
    // hypervisor region; nothing else uses it and this runs once, before
    // any allocation.
    unsafe { HEAP.lock().init(start, end - start) };
}

/// (bytes in use, bytes total) — an aging indicator.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.stats_alloc_actual(), h.stats_total_bytes())
}

/// Largest block the heap could hand out now, in bytes — with usage, the
/// aging indicator that shows fragmentation. The buddy allocator does not
/// expose its free lists, so this asks it: the largest power of two it can
/// allocate (and frees it at once) is its largest free block.
pub fn largest_free_block() -> usize {
    let mut h = HEAP.lock();
    let mut size = h.stats_total_bytes().next_power_of_two();
    while size >= 16 {
        if let Ok(layout) = core::alloc::Layout::from_size_align(size, 16) {
            if let Ok(p) = h.alloc(layout) {
                h.dealloc(p, layout);
                return size;
            }
        }
        size /= 2;
    }
    0
}

/// Live allocations (user requests minus frees): a leak shows here too.
pub fn user_bytes() -> usize {
    HEAP.lock().stats_alloc_user()
}
