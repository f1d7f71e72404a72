//! The hypervisor heap: everything between the end of the image and the end
//! of the hypervisor region (see the board's linker script). Rebuilt from
//! scratch by every image, which is what clears leaks on a reload.
use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<33> = LockedHeap::empty();

extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
}

pub fn init() {
    // SAFETY: the linker script reserves [__heap_start, __heap_end) for the
    // heap; nothing else uses it and this runs once, before any allocation.
    unsafe {
        let start = &__heap_start as *const u8 as usize;
        let end = &__heap_end as *const u8 as usize;
        HEAP.lock().init(start, end - start);
    }
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
