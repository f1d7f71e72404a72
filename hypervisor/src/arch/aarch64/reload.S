// The copy-and-jump trampoline of a warm reload. It is copied to the board's
// trampoline page (outside the image, which it overwrites) and entered with
// the MMU still on; everything it touches is identity mapped.
//
//   x0 = destination (the load address)     x3 = device tree
//   x1 = source (the image in its slot)     x4 = handoff block
//   x2 = length in bytes (multiple of 8)    x5 = WARM_MAGIC
//   x6 = base of the image slot (passed on, so the new image knows which
//        slot holds its own pristine copy)
//   x7 = counter value when the old image jumped here (passed on, for the
//        reload's phase timestamps)
// Clean and invalidate data caches by set/way, from level 1 up to the
// level in CLIDR_EL1 at bit \lshift (24: LoC, the whole hierarchy; 21:
// LoUIS, the caches private to this CPU). Clobbers x10-x21.
.macro dcache_clean_inval_setway lshift
    mrs     x10, clidr_el1
    ubfx    x11, x10, #\lshift, #3
    lsl     x11, x11, #1                // level limit * 2
    cbz     x11, 95f
    mov     x12, #0                     // cache level * 2
91: add     x13, x12, x12, lsr #1       // level * 3
    lsr     x14, x10, x13
    and     x14, x14, #7                // cache type at this level
    cmp     x14, #2
    b.lt    94f                         // no data cache here
    msr     csselr_el1, x12
    isb
    mrs     x14, ccsidr_el1
    and     x15, x14, #7
    add     x15, x15, #4                // log2(line size)
    ubfx    x16, x14, #3, #10           // ways - 1
    clz     w17, w16                    // way shift
    ubfx    x18, x14, #13, #15          // sets - 1
92: mov     x19, x16                    // way
93: lsl     x20, x19, x17
    orr     x20, x20, x12               // | level
    lsl     x21, x18, x15
    orr     x20, x20, x21               // | set
    dc      cisw, x20
    subs    x19, x19, #1
    b.ge    93b
    subs    x18, x18, #1
    b.ge    92b
94: add     x12, x12, #2
    cmp     x11, x12
    b.gt    91b
95: dsb     sy
.endm

.section .text
.balign 4096
.global reload_trampoline
.global reload_trampoline_end
reload_trampoline:
    msr     daifset, #0xf           // nothing may reach the old vectors
    mov     x9, x0
    mov     x22, x6
    mov     x23, x7
    mov     x24, x2
    // Copy the image from its slot into place while the MMU and caches are
    // still on: with them off every access goes to DRAM uncached, several
    // milliseconds for ~350 KB on a Cortex-A72. Only the 16-byte blocks
    // that differ are written: a rejuvenation into the same build leaves
    // the code pages untouched (under QEMU a write to a code page discards
    // its translated code, and retranslating cost the guests tens of
    // milliseconds after every reload; on hardware it saves writes).
6:  cmp     x2, #16
    b.lo    8f
    ldp     x7, x8, [x1], #16
    ldp     x10, x11, [x0]
    sub     x2, x2, #16
    cmp     x7, x10
    ccmp    x8, x11, #0, eq
    b.eq    9f
    stp     x7, x8, [x0]
9:  add     x0, x0, #16
    b       6b
8:  cbz     x2, 7f
    ldr     x7, [x1], #8
    str     x7, [x0], #8
    sub     x2, x2, #8
    b       8b
    // The new image to the point of coherency, by address: its first
    // instructions and data are fetched with the MMU off.
7:  mrs     x10, ctr_el0
    ubfx    x10, x10, #16, #4       // DminLine, log2 of words
    mov     x11, #4
    lsl     x11, x11, x10           // smallest D-cache line, bytes
    sub     x12, x11, #1
    bic     x13, x9, x12
    add     x14, x9, x24
10: dc      civac, x13
    add     x13, x13, x11
    cmp     x13, x14
    b.lo    10b
    dsb     sy
    // MMU, data and instruction caches off.
    mrs     x6, sctlr_el2
    mov     x7, #((1 << 0) | (1 << 2) | (1 << 12))
    bic     x6, x6, x7
    msr     sctlr_el2, x6
    isb
    // Clean and invalidate the whole data cache by set/way, so that no
    // dirty line of the old image (its heap, stacks, bss) can be written
    // back over the new one later. Other CPUs wait in the holding pen with
    // their caches cleaned and off (or were powered off, which cleans them).
    dcache_clean_inval_setway 24
    isb
    tlbi    alle2
    tlbi    alle1                   // the new image builds new stage-2 tables
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x0, x3
    mov     x1, x4
    mov     x2, x5
    mov     x3, x22
    mov     x4, x23
    br      x9
reload_trampoline_end:

// The holding pen where secondary CPUs wait during a warm reload, instead
// of being powered off (PSCI CPU_OFF/CPU_ON cost tens of milliseconds, and
// spin-table boards cannot power CPUs off at all). Copied next to the
// trampoline, outside every image; entered from `reload::pen::enter` with
// the MMU on:
//
//   x0 = logical CPU index     x1 = this CPU's mailbox (16 bytes:
//                                   +0 entry point, +8 state)
//   x2 = the pen header (layout in reload/pen.rs)
//
// The CPU turns its MMU and caches off, cleans its private caches (so that
// no dirty line of the old image can be written back over the new one),
// sets state = 1 ("parked") and waits for an entry point, which the new
// image writes (then SEV). It enters it with x0 = its index, as PSCI
// CPU_ON would.
//
// The watch: if the header holds a deadline (a trial upgrade: the new image
// is not trusted yet) and the counter passes it before this CPU is
// released, the new image hung in its warm entry. The CPU marks the header
// for the next boot and resets the machine the way the header says (a PSCI
// call through SMC, or two 32-bit MMIO writes); RAM, with the VMs and the
// handoff block, survives the reset. x22-x24 hold what the pen keeps: the
// cache macro uses x10-x21, SMCCC lets the SMC clobber x0-x17.
.balign 64
.global holding_pen
.global holding_pen_end
holding_pen:
    msr     daifset, #0xf           // nothing may reach the old vectors
    mov     x22, x0
    mov     x23, x1
    mov     x24, x2
    mrs     x2, sctlr_el2
    mov     x3, #((1 << 0) | (1 << 2) | (1 << 12))
    bic     x2, x2, x3
    msr     sctlr_el2, x2
    isb
    // All levels to LoC: LoUIS is not "this CPU's private caches" on every
    // core (it reads 0 on some with private L2), and cleaning a shared
    // level from here loses nothing.
    dcache_clean_inval_setway 24
    isb
    tlbi    alle2
    tlbi    alle1                   // no stage-2 walk cached for the next image
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x2, #1
    str     x2, [x23, #8]
    dsb     sy
    sev
1:  wfe
    ldr     x3, [x23]
    cbnz    x3, 3f
    ldr     x4, [x24, #16]          // deadline (0: no watch)
    cbz     x4, 1b
    mrs     x5, cntpct_el0
    cmp     x5, x4
    b.lo    1b
    // Passed. The new image clears the deadline before it writes any entry
    // point: look at both once more.
    ldr     x3, [x23]
    cbnz    x3, 3f
    ldr     x4, [x24, #16]
    cbz     x4, 1b
    // "BLINKRST": the machine was reset with CPUs in the pen (pen.rs).
    movz    x5, #0x4c42
    movk    x5, #0x4e49, lsl #16
    movk    x5, #0x524b, lsl #32
    movk    x5, #0x5453, lsl #48
    str     x5, [x24]
    dsb     sy
    ldr     x6, [x24, #24]          // how to reset
    cmp     x6, #1
    b.ne    2f
    ldr     x0, [x24, #32]          // a PSCI function (SYSTEM_RESET)
    smc     #0
    b       1b                      // it returned: keep waiting
2:  cmp     x6, #2
    b.ne    1b
    ldp     x0, x1, [x24, #32]      // two MMIO writes (a watchdog)
    str     w1, [x0]
    ldp     x0, x1, [x24, #48]
    str     w1, [x0]
    dsb     sy
    b       1b
3:  mov     x0, x22
    br      x3
holding_pen_end:
