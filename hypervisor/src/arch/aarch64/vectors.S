// EL2 exception vectors, guest entry and guest exit.
//
// The hypervisor itself always runs with interrupts masked. A guest runs
// between `enter_guest` and the next exception from a lower EL, which saves
// the guest's general registers into its `GuestRegs` and *returns* from
// `enter_guest` with the exit kind, so every exit is handled by ordinary
// Rust code on the CPU's own stack (no re-entrancy).

// Offsets in struct GuestRegs (arch/aarch64/regs.rs): x[0..31], pc, pstate.
.set REGS_PC, 31 * 8

.set EXIT_SYNC, 0
.set EXIT_IRQ, 1
.set EXIT_FIQ, 2
.set EXIT_SERROR, 3

.macro fault_entry kind
    // Exception taken at EL2 itself: a hypervisor bug. Save everything for
    // the report, then let Rust print it and stop this CPU.
    sub     sp, sp, #(34 * 8)
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    b       el2_fault_common_\kind
.endm

.macro guest_exit_entry kind
    stp     x0, x1, [sp, #-16]!
    mov     x1, #\kind
    b       guest_exit
.endm

.section .text
.balign 0x800
.global el2_vectors
el2_vectors:
// Current EL with SP0 (never used by the hypervisor).
.balign 0x80
    fault_entry 0
.balign 0x80
    fault_entry 1
.balign 0x80
    fault_entry 2
.balign 0x80
    fault_entry 3
// Current EL with SPx.
.balign 0x80
    fault_entry 0
.balign 0x80
    fault_entry 1
.balign 0x80
    fault_entry 2
.balign 0x80
    fault_entry 3
// Lower EL, AArch64: the guest.
.balign 0x80
    guest_exit_entry EXIT_SYNC
.balign 0x80
    guest_exit_entry EXIT_IRQ
.balign 0x80
    guest_exit_entry EXIT_FIQ
.balign 0x80
    guest_exit_entry EXIT_SERROR
// Lower EL, AArch32: guests are AArch64-only (HCR_EL2.RW); treat as fatal
// for the guest (reported as a sync exit with an AArch32 PSTATE).
.balign 0x80
    guest_exit_entry EXIT_SYNC
.balign 0x80
    guest_exit_entry EXIT_IRQ
.balign 0x80
    guest_exit_entry EXIT_FIQ
.balign 0x80
    guest_exit_entry EXIT_SERROR

.macro el2_fault_common kind
el2_fault_common_\kind:
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x0, elr_el2
    mrs     x1, spsr_el2
    stp     x30, x0, [sp, #240]
    str     x1, [sp, #256]
    mov     x0, sp
    mov     x1, #\kind
    bl      el2_fault
    b       halt
.endm
    el2_fault_common 0
    el2_fault_common 1
    el2_fault_common 2
    el2_fault_common 3

// u64 enter_guest(GuestRegs *regs)
// Saves the host's callee-saved registers, loads the guest's, erets. Returns
// (through guest_exit) the exit kind once the guest traps to EL2.
.global enter_guest
enter_guest:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    // Keep the GuestRegs pointer where guest_exit finds it: at the top of
    // the stack, which is where SP_EL2 will point when the guest traps.
    stp     x0, xzr, [sp, #-16]!
    ldp     x1, x2, [x0, #REGS_PC]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
    dsb     nsh                     // speculation barrier after eret
    isb

// Entered from a lower-EL vector with the guest's x0/x1 pushed and x1 =
// exit kind. SP is the host stack as enter_guest left it.
guest_exit:
    ldr     x0, [sp, #16]           // GuestRegs pointer
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30, [x0, #240]
    ldp     x2, x3, [sp], #16       // the guest's x0, x1
    stp     x2, x3, [x0, #0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #REGS_PC]
    add     sp, sp, #16             // drop the GuestRegs pointer slot
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    mov     x0, x1
    ret
