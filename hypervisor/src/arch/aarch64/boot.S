// EL2 entry points of the hypervisor image.
//
// The image starts with an arm64 Linux "Image" header so boot loaders that
// understand it (QEMU, the Raspberry Pi firmware) place it correctly.
//
// The image is position independent (linked at 0, platform/link.ld): until
// `relocate` has run, code here may only address the image PC-relative
// (adr/adrp), never through a literal pool (`ldr x, =symbol` would hold the
// link-time address). Linker constants (HYP_*) are plain numbers and fine.

// x = address of `sym` where the image runs (adrp + :lo12:, +-4 GiB).
.macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           // code0
    .word   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size: image + bss + stacks
    // flags: little endian, 4 KiB pages, bit 3 (placement anywhere) clear:
    // the image runs at any address, but picks its board by where it was
    // loaded (src/board.rs), so it wants the board's usual place, 2 MiB
    // aligned RAM base + text_offset. The arm64 boot protocol has no flag
    // for "position independent"; every Image is expected to be.
    .quad   0x2
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .word   0                       // reserved

// x0 = physical address of the device tree (boot protocol); x1-x4 are
// passed on unchanged: at a warm entry they follow the warm-entry ABI
// described once, in src/reload/mod.rs.
primary_entry:
    mov     x19, x0
    mov     x21, x1
    mov     x22, x2
    mov     x23, x3
    mov     x24, x4
    mov     x20, #0                 // logical CPU index 0
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    not_el2
    // Clear .bss before any Rust code runs (only the primary CPU does it).
    adr_l   x1, __bss_start
    adr_l   x2, __bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
    // Keep the initial .data (the few statics with non-zero initializers),
    // before it is relocated: the copy of this image staged for warm
    // reloads must be what a boot loader would load, not what the statics
    // hold by then.
2:  adr_l   x1, __data_start
    adr_l   x2, __image_end_file
    adr_l   x3, __data_pristine
5:  cmp     x1, x2
    b.hs    6f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
    b       5b
6:  bl      relocate
    bl      cpu_common_setup
    mov     x0, x19
    mov     x1, x21
    mov     x2, x22
    mov     x3, x23
    mov     x4, x24
    bl      rust_primary_main
    b       halt

// Secondary CPUs arrive here from PSCI CPU_ON / a spin table, with
// x0 = the logical CPU index the primary passed as context.
.global secondary_entry
secondary_entry:
    mov     x20, x0
    mov     x19, #0
    bl      cpu_common_setup
    mov     x0, x20
    bl      rust_secondary_main
    b       halt

// Apply the image's relocations for where it runs (the primary CPU, once,
// MMU off, before any Rust code). The table holds only R_AARCH64_RELATIVE
// entries (a static PIE defines every symbol itself): *(base + offset) =
// base + addend, base being where `_start` runs (it is linked at 0).
// Rewriting every place from the table alone makes the pass idempotent, so
// an image copied after relocation would still come out right; the warm
// reload nevertheless stages the pristine bytes (reload/slots.rs).
// Clobbers x1-x6.
relocate:
    adr_l   x1, _start              // base (link address 0)
    adr_l   x2, __rela_start
    adr_l   x3, __rela_end
7:  cmp     x2, x3
    b.hs    8f
    ldp     x4, x5, [x2], #24       // r_offset, r_info
    ldr     x6, [x2, #-8]           // r_addend
    cmp     w5, #1027               // R_AARCH64_RELATIVE
    b.ne    bad_reloc
    add     x6, x6, x1
    str     x6, [x1, x4]
    b       7b
    // Everything written so far went to memory (MMU and caches off); a
    // clean line the boot loader left in a cache for these addresses would
    // hide it once the caches are on. Drop them, to the point of coherency.
8:  mrs     x4, ctr_el0
    ubfx    x4, x4, #16, #4         // DminLine: log2(words)
    mov     x5, #4
    lsl     x5, x5, x4              // smallest D-cache line, bytes
    adr_l   x3, __bss_end
9:  dc      civac, x1
    add     x1, x1, x5
    cmp     x1, x3
    b.lo    9b
    dsb     sy
    ret

// Secondary CPUs released from a spin table (drivers/spin_table.rs) arrive
// here, MMU and caches off, with no context register: the logical index is
// the entry of `spin_table_mpidrs` that holds this CPU's MPIDR affinity
// (Aff3 and Aff2-Aff0), written and cleaned to memory before the release.
.global spin_table_entry
spin_table_entry:
    mrs     x1, mpidr_el1
    and     x2, x1, #0xff00000000   // Aff3
    and     x1, x1, #0xffffff       // Aff2, Aff1, Aff0
    orr     x1, x1, x2
    adr_l   x2, spin_table_mpidrs
    ldr     x3, =HYP_MAX_CPUS
    mov     x0, #1                  // entry 0 is the boot CPU's
10: cmp     x0, x3
    b.hs    halt                    // not in the table: stay out of the way
    ldr     x4, [x2, x0, lsl #3]
    cmp     x4, x1
    b.eq    secondary_entry
    add     x0, x0, #1
    b       10b

// Per-CPU state every CPU needs before Rust: its own stack, the vectors,
// and TPIDR_EL2 = logical CPU index. x20 = index. Clobbers x1-x3.
cpu_common_setup:
    ldr     x1, =HYP_MAX_CPUS       // linker constants (hypervisor/build.rs)
    cmp     x20, x1
    b.hs    halt
    adr_l   x1, __stacks_start
    ldr     x3, =HYP_STACK_SIZE
    add     x2, x20, #1
    madd    x1, x2, x3, x1          // top of this CPU's stack
    mov     sp, x1
    msr     tpidr_el2, x20
    adr     x1, el2_vectors
    msr     vbar_el2, x1
    isb
    ret

// Not entered at EL2: we cannot virtualize anything. Say so on the early
// UART if we can (it works at any EL) and stop.
not_el2:
    adr_l   x2, not_el2_msg
    b       early_fatal

// A relocation this code does not know (the link produced something other
// than a static PIE): nothing relocated can be trusted.
bad_reloc:
    adr_l   x2, bad_reloc_msg
    // fall through

// x2 = NUL-terminated message, written to the console of the board whose
// load address is where this image runs (src/board.rs has not run yet),
// or of the first board; `early_uarts` is generated by build.rs.
early_fatal:
    adr_l   x4, _start
    adr_l   x5, early_uarts
    adr_l   x6, early_uarts_end
    ldr     x1, [x5, #8]            // the first board's console
11: cmp     x5, x6
    b.hs    3f
    ldp     x7, x8, [x5], #16       // load address, console
    cmp     x7, x4
    b.ne    11b
    mov     x1, x8
3:  ldrb    w3, [x2], #1
    cbz     w3, halt
    str     w3, [x1]
    b       3b

.global halt
halt:
    msr     daifset, #0xf
4:  wfe
    b       4b

.section .bss
.balign 16
.global __data_pristine
__data_pristine:
    .space  4096

.section .rodata
not_el2_msg:
    .asciz "[hv] FATAL: not entered at EL2 (boot loader must start the hypervisor at EL2)\r\n"
bad_reloc_msg:
    .asciz "[hv] FATAL: image relocation of an unknown type (not R_AARCH64_RELATIVE)\r\n"
