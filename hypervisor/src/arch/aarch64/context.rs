//! The part of a vCPU's state that lives in EL1 (and EL0) system registers,
//! the virtual timer and FP/SIMD. General registers are in `GuestRegs`.
//! These are loaded when a vCPU is switched onto a physical CPU and saved
//! when it is switched off — not on every exit, since the hypervisor itself
//! never uses them (it is built soft-float, so it does not touch FP/SIMD).

macro_rules! el1_context {
    ($($reg:ident),* $(,)?) => {
        #[derive(Clone, Copy, Debug, Default)]
        #[allow(non_snake_case)]
        pub struct El1Context {
            $(pub $reg: u64,)*
        }

        impl El1Context {
            pub fn save(&mut self) {
                $(self.$reg = crate::read_sysreg!($reg);)*
            }

            pub fn restore(&self) {
                $(crate::write_sysreg!($reg, self.$reg);)*
            }

            /// Register names, as stored in a handoff block.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($reg)),*];

            /// (name, value) of every register.
            pub fn named(&self) -> alloc::vec::Vec<(alloc::string::String, u64)> {
                alloc::vec![$((alloc::string::String::from(stringify!($reg)), self.$reg)),*]
            }

            /// From (name, value) pairs; registers not given are zero (the
            /// handoff reader has already refused blocks that lack one).
            pub fn from_named(get: impl Fn(&str) -> Option<u64>) -> Self {
                Self { $($reg: get(stringify!($reg)).unwrap_or(0),)* }
            }
        }
    };
}

el1_context!(
    sctlr_el1,
    ttbr0_el1,
    ttbr1_el1,
    tcr_el1,
    mair_el1,
    amair_el1,
    vbar_el1,
    contextidr_el1,
    tpidr_el0,
    tpidrro_el0,
    tpidr_el1,
    sp_el0,
    sp_el1,
    elr_el1,
    spsr_el1,
    esr_el1,
    far_el1,
    afsr0_el1,
    afsr1_el1,
    par_el1,
    cpacr_el1,
    csselr_el1,
    cntkctl_el1,
    mdscr_el1,
    cntv_ctl_el0,
    cntv_cval_el0,
    vmpidr_el2,
);

/// FP/SIMD registers: q0-q31, FPCR, FPSR.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct FpContext {
    pub q: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

extern "C" {
    fn fp_save(ctx: *mut FpContext);
    fn fp_restore(ctx: *const FpContext);
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".global fp_save",
    "fp_save:",
    "stp q0, q1, [x0, #0]",
    "stp q2, q3, [x0, #32]",
    "stp q4, q5, [x0, #64]",
    "stp q6, q7, [x0, #96]",
    "stp q8, q9, [x0, #128]",
    "stp q10, q11, [x0, #160]",
    "stp q12, q13, [x0, #192]",
    "stp q14, q15, [x0, #224]",
    "stp q16, q17, [x0, #256]",
    "stp q18, q19, [x0, #288]",
    "stp q20, q21, [x0, #320]",
    "stp q22, q23, [x0, #352]",
    "stp q24, q25, [x0, #384]",
    "stp q26, q27, [x0, #416]",
    "stp q28, q29, [x0, #448]",
    "stp q30, q31, [x0, #480]",
    "mrs x1, fpcr",
    "mrs x2, fpsr",
    "add x0, x0, #512",
    "stp x1, x2, [x0]",
    "ret",
    ".global fp_restore",
    "fp_restore:",
    "ldp q0, q1, [x0, #0]",
    "ldp q2, q3, [x0, #32]",
    "ldp q4, q5, [x0, #64]",
    "ldp q6, q7, [x0, #96]",
    "ldp q8, q9, [x0, #128]",
    "ldp q10, q11, [x0, #160]",
    "ldp q12, q13, [x0, #192]",
    "ldp q14, q15, [x0, #224]",
    "ldp q16, q17, [x0, #256]",
    "ldp q18, q19, [x0, #288]",
    "ldp q20, q21, [x0, #320]",
    "ldp q22, q23, [x0, #352]",
    "ldp q24, q25, [x0, #384]",
    "ldp q26, q27, [x0, #416]",
    "ldp q28, q29, [x0, #448]",
    "ldp q30, q31, [x0, #480]",
    "add x0, x0, #512",
    "ldp x1, x2, [x0]",
    "msr fpcr, x1",
    "msr fpsr, x2",
    "ret",
);

impl FpContext {
    pub fn save(&mut self) {
        // SAFETY: writes exactly the 528 bytes of `*self`; FP/SIMD access at
        // EL2 is not trapped (CPTR_EL2.TFP = 0).
        unsafe { fp_save(self) }
    }

    pub fn restore(&self) {
        // SAFETY: reads `*self`; the hypervisor itself never uses FP/SIMD
        // registers, so replacing them cannot corrupt its state.
        unsafe { fp_restore(self) }
    }
}
