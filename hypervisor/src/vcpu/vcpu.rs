//! A virtual CPU: its registers, its EL1 context, its virtual-interface
//! state, and its power state as PSCI sees it.
use crate::arch::aarch64::context::{El1Context, FpContext};
use crate::arch::aarch64::debug::DebugRegs;
use crate::arch::aarch64::gic::VifState;
use crate::arch::aarch64::pauth::PauthKeys;
use crate::arch::aarch64::regs::GuestRegs;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use spin::Mutex;
use vmm::psci::PowerState;

/// PSTATE for a vCPU entering the guest: EL1h, D/A/I/F masked.
pub const PSTATE_EL1H_MASKED: u64 = 0b0101 | (0b1111 << 6);
/// SCTLR_EL1 reset value: RES1 bits, MMU and caches off.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// EL1 state of vCPU `index` out of reset: MMU off, its MPIDR (Aff0 = index).
fn reset_el1(index: usize) -> El1Context {
    El1Context {
        sctlr_el1: SCTLR_EL1_RESET,
        vmpidr_el2: (1 << 31) | index as u64,
        ..El1Context::default()
    }
}

const POWER_OFF: u8 = 0;
const POWER_ON_PENDING: u8 = 1;
const POWER_ON: u8 = 2;

/// Registers and context of a vCPU. Only its home physical CPU touches it
/// while the vCPU is powered on.
pub struct VcpuState {
    pub regs: GuestRegs,
    pub el1: El1Context,
    pub fp: FpContext,
    pub vif: VifState,
    /// Breakpoint and watchpoint registers (switched with the vCPU).
    pub debug: DebugRegs,
    /// Pointer authentication keys (switched with the vCPU).
    pub pauth: PauthKeys,
    /// The emulated EL1 physical timer (`vmm::ptimer`).
    pub ptimer: vmm::ptimer::PTimer,
    /// Waiting in WFI (yielded its physical CPU).
    pub waiting: bool,
    /// GICv3: the guest's next Group 1 ICC access traps, so that a linked
    /// SPI copy placed while it had interrupts masked is re-sampled before
    /// it is acknowledged (`vmm::vgic::Vgic::withdraw_dropped_lrs`).
    pub trap_ack: bool,
}

pub struct Vcpu {
    pub index: usize,
    /// Physical CPU this vCPU always runs on.
    pub pcpu: usize,
    power: AtomicU8,
    /// Entry point and context id of a pending CPU_ON.
    boot: Mutex<(u64, u64)>,
    /// Physical counter value at which a waiting vCPU's virtual timer fires
    /// (u64::MAX: none).
    pub wake_at: AtomicU64,
    pub state: Mutex<VcpuState>,
}

impl Vcpu {
    pub fn new(index: usize, pcpu: usize) -> Self {
        let el1 = reset_el1(index);
        Self {
            index,
            pcpu,
            power: AtomicU8::new(POWER_OFF),
            boot: Mutex::new((0, 0)),
            wake_at: AtomicU64::new(u64::MAX),
            state: Mutex::new(VcpuState {
                regs: GuestRegs::default(),
                el1,
                fp: FpContext::default(),
                vif: VifState::default(),
                debug: DebugRegs::default(),
                pauth: PauthKeys::default(),
                ptimer: vmm::ptimer::PTimer::default(),
                waiting: false,
                trap_ack: false,
            }),
        }
    }

    pub fn power_state(&self) -> PowerState {
        match self.power.load(Ordering::Acquire) {
            POWER_ON => PowerState::On,
            POWER_ON_PENDING => PowerState::OnPending,
            _ => PowerState::Off,
        }
    }

    /// Ask for the vCPU to start at `entry` with x0 = `context` (CPU_ON, or
    /// vCPU 0 at VM start). Its home CPU performs the reset.
    pub fn request_on(&self, entry: u64, context: u64) -> bool {
        *self.boot.lock() = (entry, context);
        self.power
            .compare_exchange(
                POWER_OFF,
                POWER_ON_PENDING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Entry point and context of the last power-on request.
    pub fn boot_request(&self) -> (u64, u64) {
        *self.boot.lock()
    }

    /// Put back a vCPU as a handoff block describes it.
    pub fn restore(&self, power: PowerState, boot: (u64, u64), state: VcpuState) {
        *self.boot.lock() = boot;
        *self.state.lock() = state;
        self.power.store(
            match power {
                PowerState::On => POWER_ON,
                PowerState::OnPending => POWER_ON_PENDING,
                PowerState::Off => POWER_OFF,
            },
            Ordering::Release,
        );
    }

    pub fn set_off(&self) {
        self.power.store(POWER_OFF, Ordering::Release);
    }

    /// VM reset, with the vCPU unloaded: off, and no stale WFI wake-up
    /// deadline for its CPU's idle loop to keep arming.
    pub fn reset_off(&self) {
        self.set_off();
        self.wake_at.store(u64::MAX, Ordering::Release);
        self.state.lock().waiting = false;
    }

    /// On the home CPU: turn a pending power-on into architectural reset
    /// state at the requested entry point.
    pub fn complete_power_on(&self) -> bool {
        if self.power.load(Ordering::Acquire) != POWER_ON_PENDING {
            return false;
        }
        let (entry, context) = *self.boot.lock();
        let mut s = self.state.lock();
        s.regs = GuestRegs::default();
        s.regs.x[0] = context;
        s.regs.pc = entry;
        s.regs.pstate = PSTATE_EL1H_MASKED;
        s.el1 = reset_el1(self.index);
        s.fp = FpContext::default();
        s.vif = VifState::default();
        s.debug = DebugRegs::default();
        s.pauth = PauthKeys::default();
        s.ptimer = vmm::ptimer::PTimer::default();
        s.waiting = false;
        drop(s);
        self.power.store(POWER_ON, Ordering::Release);
        true
    }
}
