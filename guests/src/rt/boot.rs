//! Image header, boot/secondary entry assembly, vector table and identity map.
//!
//! Why the MMU is turned on: with stage 1 off every data access is
//! Device-nGnRnE, where unaligned accesses fault and exclusive (atomic)
//! accesses are not guaranteed to work on real hardware. A static 1 GiB-block
//! identity map (below) makes RAM normal cacheable memory and everything else
//! Device memory. It is enabled before the first memory write, so no data
//! written with caches off can later be shadowed by stale cache lines.
//!
//! Addresses outside RAM stay mapped (as Device memory) on purpose: a stray
//! access must reach stage 2 so that the hypervisor, not our own page table,
//! decides what happens (the hostile guest relies on it).

use core::arch::global_asm;

use super::boot_main;
use super::exception::exception_entry;
use super::psci::secondary_main;

/// A level-1 translation table (4 KiB granule, 39-bit VA: 512 x 1 GiB).
#[repr(C, align(4096))]
struct PageTable([u64; 512]);

const BLOCK: u64 = 0b01;
const ATTR_DEVICE: u64 = 0 << 2; // MAIR attr 0: Device-nGnRnE
const ATTR_NORMAL: u64 = 1 << 2; // MAIR attr 1: Normal write-back
const INNER_SHAREABLE: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// 1 GiB blocks 1 and 2 (0x4000_0000..0xC000_0000) cover the RAM of any VM
/// these guests are meant for.
const RAM_BLOCKS: core::ops::RangeInclusive<usize> = 1..=2;

const fn identity_map() -> PageTable {
    let mut table = [0u64; 512];
    let mut i = 0;
    while i < table.len() {
        let pa = (i as u64) << 30;
        table[i] = if i >= *RAM_BLOCKS.start() && i <= *RAM_BLOCKS.end() {
            pa | BLOCK | ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG | UXN
        } else {
            pa | BLOCK | ATTR_DEVICE | ACCESS_FLAG | PXN | UXN
        };
        i += 1;
    }
    PageTable(table)
}

/// Never written at run time; the walker reads it (caches on or off alike).
static PAGE_TABLE: PageTable = identity_map();

/// MAIR_EL1: attr 0 = Device-nGnRnE (0x00), attr 1 = Normal WB RW-allocate (0xff).
const MAIR: u64 = 0xff << 8;
/// TCR_EL1: T0SZ=25 (39-bit VA), walks inner/outer WB cacheable inner
/// shareable, 4 KiB granule, TTBR1 walks disabled (EPD1, TG1=4K), IPS=40 bits.
const TCR: u64 =
    25 | (1 << 8) | (1 << 10) | (0b11 << 12) | (1 << 23) | (0b10 << 30) | (0b010 << 32);
/// SCTLR_EL1: ARMv8.0 RES1 bits + M (MMU) + C (data cache) + I (instruction cache).
const SCTLR: u64 = 0x30d0_0800 | (1 << 0) | (1 << 2) | (1 << 12);
/// CPACR_EL1.FPEN = 0b11: FP/SIMD usable at EL1 (Rust code uses NEON registers).
const CPACR_FPEN: u64 = 0b11 << 20;

extern "C" {
    /// PSCI CPU_ON entry point for secondary vCPUs (x0 = context id).
    pub fn rt_secondary_entry();
}

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst) */
    b       1f                  /* code0: jump over the header */
    .long   0                   /* code1 */
    .quad   0x80000             /* text_offset */
    .quad   __image_size        /* image_size, incl. BSS and stacks */
    .quad   0xa                 /* flags: LE, 4K pages, anywhere in RAM */
    .quad   0, 0, 0             /* res2..res4 */
    .ascii  "ARM\x64"           /* magic */
    .long   0                   /* res5 (no PE header) */

1:  mov     x19, x0             /* keep the DTB address */
    bl      rt_cpu_setup
    bl      rt_set_stack
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
2:  cmp     x0, x1
    b.hs    3f
    stp     xzr, xzr, [x0], #16
    b       2b
3:  mov     x0, x19
    bl      {boot_main}
    b       rt_park

    .text
    .global rt_secondary_entry
rt_secondary_entry:
    mov     x19, x0             /* PSCI context id */
    bl      rt_cpu_setup
    bl      rt_set_stack
    mov     x0, x19
    bl      {secondary_main}
    b       rt_park

/* FP/SIMD, vectors, MMU. Touches no memory (except the table walks), so it is
 * safe to run with caches off before anything has been written. */
rt_cpu_setup:
    ldr     x0, ={cpacr}
    msr     cpacr_el1, x0
    adrp    x0, rt_vectors
    add     x0, x0, :lo12:rt_vectors
    msr     vbar_el1, x0
    msr     spsel, #1
    ldr     x0, ={mair}
    msr     mair_el1, x0
    ldr     x0, ={tcr}
    msr     tcr_el1, x0
    adrp    x0, {page_table}
    add     x0, x0, :lo12:{page_table}
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x0, ={sctlr}
    msr     sctlr_el1, x0
    isb
    ret

/* sp = top of stack slot MPIDR.Aff0; vCPUs without a slot are parked. */
rt_set_stack:
    mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    ldr     x1, =__max_cpus
    cmp     x0, x1
    b.hs    rt_park
    add     x0, x0, #1
    ldr     x1, =__stack_size
    adrp    x2, __stacks_start
    add     x2, x2, :lo12:__stacks_start
    madd    x0, x0, x1, x2
    mov     sp, x0
    ret

rt_park:
    msr     daifset, #0xf
4:  wfi
    b       4b
    .ltorg

/* Exception vectors: each entry saves x0/x1, passes its kind in x1 and jumps
 * to the common path, which saves the rest and calls exception_entry(frame, kind). */
    .balign 2048
rt_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 128
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       rt_exception_common
    .endr

rt_exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x30, x2, [sp, #240]
    str     x3, [sp, #256]
    /* Rust handlers may use SIMD registers: save the interrupted ones. */
    add     x2, sp, #272
    stp     q0, q1, [x2], #32
    stp     q2, q3, [x2], #32
    stp     q4, q5, [x2], #32
    stp     q6, q7, [x2], #32
    stp     q8, q9, [x2], #32
    stp     q10, q11, [x2], #32
    stp     q12, q13, [x2], #32
    stp     q14, q15, [x2], #32
    stp     q16, q17, [x2], #32
    stp     q18, q19, [x2], #32
    stp     q20, q21, [x2], #32
    stp     q22, q23, [x2], #32
    stp     q24, q25, [x2], #32
    stp     q26, q27, [x2], #32
    stp     q28, q29, [x2], #32
    stp     q30, q31, [x2], #32
    mrs     x3, fpsr
    mrs     x4, fpcr
    stp     x3, x4, [x2]
    mov     x0, sp
    bl      {exception_entry}
    add     x2, sp, #272
    ldp     q0, q1, [x2], #32
    ldp     q2, q3, [x2], #32
    ldp     q4, q5, [x2], #32
    ldp     q6, q7, [x2], #32
    ldp     q8, q9, [x2], #32
    ldp     q10, q11, [x2], #32
    ldp     q12, q13, [x2], #32
    ldp     q14, q15, [x2], #32
    ldp     q16, q17, [x2], #32
    ldp     q18, q19, [x2], #32
    ldp     q20, q21, [x2], #32
    ldp     q22, q23, [x2], #32
    ldp     q24, q25, [x2], #32
    ldp     q26, q27, [x2], #32
    ldp     q28, q29, [x2], #32
    ldp     q30, q31, [x2], #32
    ldp     x3, x4, [x2]
    msr     fpsr, x3
    msr     fpcr, x4
    ldp     x30, x2, [sp, #240]
    ldr     x3, [sp, #256]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame_size}
    eret
"#,
    boot_main = sym boot_main,
    secondary_main = sym secondary_main,
    exception_entry = sym exception_entry,
    page_table = sym PAGE_TABLE,
    cpacr = const CPACR_FPEN,
    mair = const MAIR,
    tcr = const TCR,
    sctlr = const SCTLR,
    frame_size = const core::mem::size_of::<super::exception::Frame>(),
);
