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
