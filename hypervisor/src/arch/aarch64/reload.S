// The copy-and-jump trampoline of a warm reload. It is copied to the board's
// trampoline page (outside the image, which it overwrites) and entered with
// the MMU still on; everything it touches is identity mapped.
//
//   x0 = destination (the load address)     x3 = device tree
//   x1 = source (the staged image)          x4 = handoff block
//   x2 = length in bytes (multiple of 8)    x5 = WARM_MAGIC
.section .text
.balign 4096
.global reload_trampoline
.global reload_trampoline_end
reload_trampoline:
    mov     x9, x0
    // MMU, data and instruction caches off: from here on every access goes
    // to memory, so the copy is visible to the new image's first fetches.
    mrs     x6, sctlr_el2
    mov     x7, #((1 << 0) | (1 << 2) | (1 << 12))
    bic     x6, x6, x7
    msr     sctlr_el2, x6
    isb
    // Clean and invalidate the whole data cache by set/way, so that no
    // dirty line of the old image (its heap, stacks, bss) can be written
    // back over the new one later. Other CPUs are off (PSCI CPU_OFF cleans
    // their caches).
    mrs     x10, clidr_el1
    and     x11, x10, #0x07000000       // LoC
    lsr     x11, x11, #23               // LoC * 2
    cbz     x11, 5f
    mov     x12, #0                     // cache level * 2
1:  add     x13, x12, x12, lsr #1       // level * 3
    lsr     x14, x10, x13
    and     x14, x14, #7                // cache type at this level
    cmp     x14, #2
    b.lt    4f                          // no data cache here
    msr     csselr_el1, x12
    isb
    mrs     x14, ccsidr_el1
    and     x15, x14, #7
    add     x15, x15, #4                // log2(line size)
    ubfx    x16, x14, #3, #10           // ways - 1
    clz     w17, w16                    // way shift
    ubfx    x18, x14, #13, #15          // sets - 1
2:  mov     x19, x16                    // way
3:  lsl     x20, x19, x17
    orr     x20, x20, x12               // | level
    lsl     x21, x18, x15
    orr     x20, x20, x21               // | set
    dc      cisw, x20
    subs    x19, x19, #1
    b.ge    3b
    subs    x18, x18, #1
    b.ge    2b
    ubfx    x18, x14, #13, #15          // reload sets for the next level
4:  add     x12, x12, #2
    cmp     x11, x12
    b.gt    1b
5:  dsb     sy
    isb
    tlbi    alle2
    dsb     sy
    // Copy the staged image into place.
6:  cbz     x2, 7f
    ldr     x7, [x1], #8
    str     x7, [x0], #8
    sub     x2, x2, #8
    b       6b
7:  dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x0, x3
    mov     x1, x4
    mov     x2, x5
    br      x9
reload_trampoline_end:
