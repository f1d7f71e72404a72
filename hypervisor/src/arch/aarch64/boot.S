// EL2 entry points of the hypervisor image.
//
// The image starts with an arm64 Linux "Image" header so boot loaders that
// understand it (QEMU, the Raspberry Pi firmware) place it correctly.

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           // code0
    .word   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size: image + bss + stacks
    .quad   0x2                     // flags: little endian, 4 KiB pages
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
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
    // Keep the initial .data (the few statics with non-zero initializers):
    // the copy of this image staged for warm reloads must be what a boot
    // loader would load, not what the statics hold by then.
2:  ldr     x1, =__data_start
    ldr     x2, =__image_end_file
    ldr     x3, =__data_pristine
5:  cmp     x1, x2
    b.hs    6f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
    b       5b
6:  bl      cpu_common_setup
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

// Per-CPU state every CPU needs before Rust: its own stack, the vectors,
// and TPIDR_EL2 = logical CPU index. x20 = index. Clobbers x1-x3.
cpu_common_setup:
    ldr     x1, =HYP_MAX_CPUS       // linker constants (hypervisor/build.rs)
    cmp     x20, x1
    b.hs    halt
    ldr     x1, =__stacks_start
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
    ldr     x1, =HYP_EARLY_UART     // the console of the board linked for
    adr     x2, not_el2_msg
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
