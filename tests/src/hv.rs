//! The hypervisor's console contract in code: one function per `[hv]` line
//! the integration tests read, named for what the line means, returning its
//! regex (or, where a test reads numbers out of the line, a typed parse).
//!
//! Each function's doc shows the line as the hypervisor prints it (the
//! `hvprintln!`/`info!`/`error!`/`warn!` calls in `hypervisor/src`; `error!`
//! and `warn!` add `ERROR: ` and `WARN: ` after the `[hv] ` tag). Arguments
//! that are names or versions are matched literally (escaped here);
//! arguments documented as regex fragments are inserted as they are.

use crate::{re, Regex};

/// Hypervisor lines that end a test at once, whatever it waits for
/// (`FATAL: ...` from `boot::fatal` and the EL2 exception report, `PANIC on
/// cpu N: ...` from the panic handler). Not anchored: such a line may be
/// printed in the middle of a partial line.
pub const FATAL: &str = r"\[hv\] (FATAL|PANIC)";

/// The tag after `[hv] ` that says how bad a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `FATAL: `: the hypervisor (or one CPU of it) stops.
    Fatal,
    /// `PANIC on cpu N: `: a Rust panic in the hypervisor.
    Panic,
    /// `WARN: ` (`warn!`): a guest did something it should not.
    Warn,
    /// `ERROR: ` (`error!`): something was refused or failed.
    Error,
}

impl Tag {
    fn word(self) -> &'static str {
        match self {
            Tag::Fatal => "FATAL",
            Tag::Panic => "PANIC",
            Tag::Warn => "WARN",
            Tag::Error => "ERROR",
        }
    }
}

/// Any hypervisor line tagged with one of `tags`:
/// `^\[hv\] (FATAL|PANIC|...)`.
pub fn tagged(tags: &[Tag]) -> Regex {
    let words: Vec<&str> = tags.iter().map(|t| t.word()).collect();
    re(&format!(r"^\[hv\] ({})", words.join("|")))
}

// --- Boot -----------------------------------------------------------------

/// `[hv] blink <version> on <board>: EL2, <n> CPUs, GICv<g>`: the banner,
/// printed at every boot (cold or warm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// Without the `blink ` prefix.
    pub version: String,
    pub board: String,
    pub ncpus: u32,
    pub gic: u32,
}

impl Banner {
    /// Regex of any banner (captures: version, board, CPUs, GIC version).
    pub fn pattern() -> Regex {
        re(r"^\[hv\] blink (\S+) on (.+): EL2, (\d+) CPUs, GICv(\d)$")
    }

    /// Parses a banner; `None` if the line is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = Self::pattern().captures(line)?;
        Some(Banner {
            version: c[1].to_string(),
            board: c[2].to_string(),
            ncpus: c[3].parse().ok()?,
            gic: c[4].parse().ok()?,
        })
    }
}

/// The banner of any build on any board with `ncpus` CPUs and GICv`gic`.
pub fn banner(ncpus: u32, gic: u32) -> Regex {
    re(&format!(
        r"^\[hv\] blink \S+ on .+: EL2, {ncpus} CPUs, GICv{gic}$"
    ))
}

/// The banner of build `version` (whole, `blink ...`) on `board` with
/// `ncpus` CPUs, any GIC: after a reload, which image is running now.
pub fn banner_of(version: &str, board: &str, ncpus: u32) -> Regex {
    re(&format!(
        r"^\[hv\] {} on {}: EL2, {ncpus} CPUs, GICv\d$",
        regex::escape(version),
        regex::escape(board)
    ))
}

/// `[hv] cpu <n> online`: a secondary CPU has started.
pub fn cpu_online(cpu: u32) -> Regex {
    re(&format!(r"^\[hv\] cpu {cpu} online$"))
}

/// `[hv] FATAL: device tree: none passed in x0 (got 0x0)`: booted without
/// a device tree.
pub fn no_device_tree() -> Regex {
    re(r"^\[hv\] FATAL: device tree: none passed in x0 \(got 0x0\)$")
}

/// `[hv] FATAL: device tree: no GIC: ...`: the host device tree describes
/// no GIC the hypervisor knows.
pub fn no_gic() -> Regex {
    re(r"^\[hv\] FATAL: device tree: no GIC: ")
}

// --- VMs --------------------------------------------------------------------

/// `^\[hv\] vm <id> '<name>': `: the start of every line about one VM;
/// `id: None` for any id.
fn vm(id: Option<u32>, name: &str) -> String {
    let id = id.map_or(r"\d+".to_string(), |i| i.to_string());
    format!(r"^\[hv\] vm {id} '{}': ", regex::escape(name))
}

/// `[hv] ERROR: /chosen/<name>: ...; VM not created`: the description of
/// VM `name` was refused.
pub fn vm_config_error(name: &str) -> Regex {
    re(&format!(
        r"^\[hv\] ERROR: /chosen/{}: ",
        regex::escape(name)
    ))
}

/// Any error about the description of VM `name` or one of its subnodes
/// (`[hv] ERROR: /chosen/<name>: ...` or `.../chosen/<name>/...`).
pub fn vm_config_error_in(name: &str) -> Regex {
    re(&format!(
        r"^\[hv\] ERROR: /chosen/{}[:/]",
        regex::escape(name)
    ))
}

/// `[hv] vm <id> '<name>': <mem> MiB at 0x<pa>, <n> vCPUs`: a VM created
/// at a cold boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmCreated {
    pub id: u32,
    pub name: String,
    pub mib: u64,
    pub pa: u64,
    pub vcpus: u32,
}

impl VmCreated {
    /// Regex of the created line of VM `name`.
    pub fn pattern(name: &str) -> Regex {
        re(&format!(
            r"^\[hv\] vm (\d+) '({})': (\d+) MiB at 0x([0-9a-fA-F]+), (\d+) vCPUs?$",
            regex::escape(name)
        ))
    }

    /// Parses a created line; `None` if it is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = re(r"^\[hv\] vm (\d+) '([^']+)': (\d+) MiB at 0x([0-9a-fA-F]+), (\d+) vCPUs?$")
            .captures(line)?;
        Some(VmCreated {
            id: c[1].parse().ok()?,
            name: c[2].to_string(),
            mib: c[3].parse().ok()?,
            pa: u64::from_str_radix(&c[4], 16).ok()?,
            vcpus: c[5].parse().ok()?,
        })
    }

    /// The VM's RAM as a physical address range.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.pa..self.pa + (self.mib << 20)
    }
}

/// Regex of the created line of VM `name` (see [`VmCreated`]).
pub fn vm_created(name: &str) -> Regex {
    VmCreated::pattern(name)
}

/// `[hv] vm <id> '<name>': started`: a VM started from its configuration
/// (a cold boot, or a refused handoff). `id: None` for any id.
pub fn vm_started(id: impl Into<Option<u32>>, name: &str) -> Regex {
    re(&format!("{}started$", vm(id.into(), name)))
}

/// `[hv] vm <id> '<name>': resumed, ...`: a VM taken over from the
/// previous image by a warm reload.
pub fn vm_resumed(id: u32, name: &str) -> Regex {
    re(&format!("{}resumed, ", vm(Some(id), name)))
}

/// `[hv] vm <id> '<name>': resumed, <mib> MiB at 0x<pa>, <vcpus> vCPUs`.
pub fn vm_resumed_as(id: u32, name: &str, mib: u64, vcpus: u32) -> Regex {
    re(&format!(
        "{}resumed, {mib} MiB at 0x[0-9a-f]+, {vcpus} vCPUs$",
        vm(Some(id), name)
    ))
}

/// `[hv] vm <id> '<name>': Running, ...`: the shell's `status` says the VM
/// runs.
pub fn vm_running(id: u32, name: &str) -> Regex {
    re(&format!("{}Running, ", vm(Some(id), name)))
}

/// `[hv] vm <id> '<name>': Running, <mib> MiB at 0x<pa>, <vcpus> vCPUs`.
pub fn vm_running_as(id: u32, name: &str, mib: u64, vcpus: u32) -> Regex {
    re(&format!(
        "{}Running, {mib} MiB at 0x[0-9a-f]+, {vcpus} vCPUs$",
        vm(Some(id), name)
    ))
}

/// `[hv] vm <id> '<name>': owns physical interrupt <intid>`: a passed-through
/// device's interrupt is routed to the VM.
pub fn vm_owns_interrupt(id: u32, name: &str, intid: u32) -> Regex {
    re(&format!(
        "{}owns physical interrupt {intid}$",
        vm(Some(id), name)
    ))
}

/// `[hv] vm <id> '<name>': reset requested, restarting`: the VM called PSCI
/// SYSTEM_RESET.
pub fn vm_reset_requested(id: u32, name: &str) -> Regex {
    re(&format!(
        "{}reset requested, restarting$",
        vm(Some(id), name)
    ))
}

/// `[hv] vm <id> '<name>': restarted (boot <n>)`: the VM was reloaded from
/// its images (boots counted by this image, from 1 at its start).
pub fn vm_restarted(id: u32, name: &str, boot: u64) -> Regex {
    re(&format!(
        r"{}restarted \(boot {boot}\)$",
        vm(Some(id), name)
    ))
}

/// `[hv] vm <id> '<name>': powered off`: the VM called PSCI SYSTEM_OFF.
/// `id: None` for any id.
pub fn vm_powered_off(id: impl Into<Option<u32>>, name: &str) -> Regex {
    re(&format!("{}powered off$", vm(id.into(), name)))
}

/// `[hv] WARN: vm ...`: a warning about a guest's misbehaviour (the VM's
/// name follows its id).
pub fn vm_warning() -> Regex {
    re(r"^\[hv\] WARN: vm ")
}

// --- Console and shell --------------------------------------------------------

/// `[hv] console: Ctrl-] then 0-9: ...`: the console's help (`Ctrl-] ?`).
pub fn console_help() -> Regex {
    re(r"^\[hv\] console: Ctrl-\] then 0-9")
}

/// `[hv] console input now goes to the hypervisor shell (type 'help')`.
pub fn input_to_shell() -> Regex {
    re(r"^\[hv\] console input now goes to the hypervisor shell")
}

/// `[hv] console input now goes to vm <id>`.
pub fn input_to_vm(id: u32) -> Regex {
    re(&format!(r"^\[hv\] console input now goes to vm {id}$"))
}

/// `[hv] unknown command '<cmd>' (try 'help')`.
pub fn unknown_command(cmd: &str) -> Regex {
    re(&format!(
        r"^\[hv\] unknown command '{}' \(try 'help'\)$",
        regex::escape(cmd)
    ))
}

/// `[hv] uptime <s> s, generation <g>, heap <used> KiB used of <total> KiB,
/// <n> CPUs`: the first line of the shell's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub uptime_s: u64,
    pub generation: u64,
    pub heap_used_kib: u64,
    pub heap_total_kib: u64,
    pub ncpus: u32,
}

impl Status {
    /// Regex of any status line (captures the five figures in order).
    pub fn pattern() -> Regex {
        re(
            r"^\[hv\] uptime (\d+) s, generation (\d+), heap (\d+) KiB used of (\d+) KiB, (\d+) CPUs$",
        )
    }

    /// Parses a status line; `None` if the line is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = Self::pattern().captures(line)?;
        Some(Status {
            uptime_s: c[1].parse().ok()?,
            generation: c[2].parse().ok()?,
            heap_used_kib: c[3].parse().ok()?,
            heap_total_kib: c[4].parse().ok()?,
            ncpus: c[5].parse().ok()?,
        })
    }
}

/// The status line of generation `generation` on `ncpus` CPUs.
pub fn status_line(generation: u32, ncpus: u32) -> Regex {
    re(&format!(
        r"^\[hv\] uptime \d+ s, generation {generation}, heap \d+ KiB used of \d+ KiB, {ncpus} CPUs$"
    ))
}

/// A status line of generation `generation` (the rest not checked).
pub fn status_generation(generation: u32) -> Regex {
    re(&format!(r"^\[hv\] uptime \d+ s, generation {generation}, "))
}

/// `[hv] aging: image up <s> s, generation <g> (<r> warm reloads since the
/// cold boot), heap <b> bytes in use (<q> bytes requested), largest free
/// block <k> KiB`: the aging indicators, the second line of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aging {
    pub image_up_s: u64,
    pub generation: u64,
    pub warm_reloads: u64,
    pub heap_used: u64,
    pub heap_requested: u64,
    pub largest_free_kib: u64,
}

impl Aging {
    /// Regex of any aging line (captures the six figures in order).
    pub fn pattern() -> Regex {
        re(
            r"^\[hv\] aging: image up (\d+) s, generation (\d+) \((\d+) warm reloads since the cold boot\), heap (\d+) bytes in use \((\d+) bytes requested\), largest free block (\d+) KiB$",
        )
    }

    /// Parses an aging line; `None` if the line is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = Self::pattern().captures(line)?;
        let n = |i: usize| c[i].parse::<u64>().ok();
        Some(Aging {
            image_up_s: n(1)?,
            generation: n(2)?,
            warm_reloads: n(3)?,
            heap_used: n(4)?,
            heap_requested: n(5)?,
            largest_free_kib: n(6)?,
        })
    }
}

/// `[hv] debug-leak: leaked <kib> KiB of hypervisor heap`.
pub fn leaked(kib: u64) -> Regex {
    re(&format!(
        r"^\[hv\] debug-leak: leaked {kib} KiB of hypervisor heap$"
    ))
}

/// `[hv] debug-leak: <kib> KiB refused: at most <k> KiB may be leaked`.
pub fn leak_refused(kib: u64) -> Regex {
    re(&format!(
        r"^\[hv\] debug-leak: {kib} KiB refused: at most \d+ KiB may be leaked$"
    ))
}

/// `[hv] exits at counter <c> freq <f>: total=<n> <kind>=<n>...`: the
/// shell's `exits` (parsed by `xtask::bench_linux::parse_exits`).
pub fn exits_report() -> Regex {
    re(r"^\[hv\] exits at counter \d+ freq \d+: total=")
}

// --- EL2 exception report (`arch::aarch64::exception`) ---------------------

/// `[hv] FATAL: unexpected exception at EL2 on cpu <cpu>: synchronous
/// (translation fault), ESR=0x9... (EC 0x25: data abort at EL2, ...`: the
/// report's first line for the fault `debug-fault` makes.
pub fn el2_data_abort(cpu: u32) -> Regex {
    re(&format!(
        r"^\[hv\] FATAL: unexpected exception at EL2 on cpu {cpu}: synchronous \(translation fault\), ESR=0x9[0-9a-f]+ \(EC 0x25: data abort at EL2"
    ))
}

/// `[hv]   ELR=0x<16 digits> FAR=0x<far> SPSR=0x...`: the report's second
/// line, for a fault at address `far`.
pub fn el2_fault_registers(far: u64) -> Regex {
    re(&format!(
        r"^\[hv\]   ELR=0x[0-9a-f]{{16}} FAR=0x{far:016x} SPSR=0x[0-9a-f]+$"
    ))
}

/// `[hv]   x0 =0x<16 digits> x1 =...`: the first row of the report's
/// general-purpose registers.
pub fn el2_fault_gprs() -> Regex {
    re(r"^\[hv\]   x0 +=0x[0-9a-f]{16}")
}

/// `[hv] cpu <cpu> stopped`: the report's last line; that CPU is halted.
pub fn cpu_stopped(cpu: u32) -> Regex {
    re(&format!(r"^\[hv\] cpu {cpu} stopped$"))
}

// --- Warm reload ------------------------------------------------------------

/// The first line of a warm reload, whatever asked for it: `[hv] upgrade:
/// image slot <n> holds ...` (into the other slot) or `[hv] rejuvenate:
/// suspending ...` (every reload, after the upgrade line if there is one).
pub fn reload_begins() -> Regex {
    re(r"^\[hv\] (upgrade: image slot \d+ holds |rejuvenate: suspending )")
}

/// `[hv] rejuvenate: periodic reload (every <ms> ms)`: the periodic timer
/// asks for a reload.
pub fn periodic_reload(ms: u64) -> Regex {
    re(&format!(
        r"^\[hv\] rejuvenate: periodic reload \(every {ms} ms\)$"
    ))
}

/// `[hv] upgrade: image slot <n> holds '<to>' (<len> bytes, checksum ok);
/// this is '<from>'`: `upgrade` accepted the other slot's image.
pub fn upgrade_to(to: &str, from: &str) -> Regex {
    reload_into("upgrade", to, from)
}

/// `[hv] rollback: image slot <n> holds '<to>' ...`: as [`upgrade_to`],
/// back into the previous image.
pub fn rollback_to(to: &str, from: &str) -> Regex {
    reload_into("rollback", to, from)
}

fn reload_into(verb: &str, to: &str, from: &str) -> Regex {
    re(&format!(
        r"^\[hv\] {verb}: image slot \d holds '{}' \(\d+ bytes, checksum ok\); this is '{}'$",
        regex::escape(to),
        regex::escape(from)
    ))
}

/// `[hv] ERROR: rejuvenate: image slot <slot>: <reason>; nothing changes, VMs
/// keep running`: a reload refused before any VM paused. `reason` is a
/// regex fragment.
pub fn slot_refused(slot: u32, reason: &str) -> Regex {
    re(&format!(
        r"^\[hv\] ERROR: rejuvenate: image slot {slot}: {reason}; nothing changes, VMs keep running$"
    ))
}

/// `[hv] rejuvenate: suspending <n> VMs for a warm reload (generation
/// <g>)`: the reload has begun (`g` is the generation it leads to).
pub fn suspending(nvms: u32, generation: u32) -> Regex {
    re(&format!(
        r"^\[hv\] rejuvenate: suspending {nvms} VMs for a warm reload \(generation {generation}\)$"
    ))
}

/// `[hv] rejuvenate: debug: flipping one byte in the middle of the handoff
/// block` (`debug-rejuvenate-corrupt`).
pub fn corrupting_handoff() -> Regex {
    re(r"^\[hv\] rejuvenate: debug: flipping one byte")
}

/// `[hv] <n> secondary CPU(s) released from the holding pen`: the new
/// image has taken the secondaries back.
pub fn secondaries_released(n: u32) -> Regex {
    re(&format!(
        r"^\[hv\] {n} secondary CPU\(s\) released from the holding pen$"
    ))
}

/// `[hv] warm entry: handoff block at 0x<pa>`: the new image has started
/// and found a handoff block.
pub fn warm_entry() -> Regex {
    re(r"^\[hv\] warm entry: handoff block at 0x[0-9a-f]+$")
}

/// `[hv] handoff: format 1.<m> written by '<writer>' (generation <g>); this
/// is '<reader>', format 1.<n>`: the new image read the handoff block the
/// previous one (`writer`, at generation `generation`) wrote.
pub fn handoff_read(
    written_minor: u32,
    writer: &str,
    generation: u32,
    reader: &str,
    reader_minor: u32,
) -> Regex {
    re(&format!(
        r"^\[hv\] handoff: format 1\.{written_minor} written by '{}' \(generation {generation}\); this is '{}', format 1\.{reader_minor}$",
        regex::escape(writer),
        regex::escape(reader)
    ))
}

/// `[hv] ERROR: handoff block refused: <reason>; cold-booting the VMs from
/// their configuration`. `reason` is a regex fragment.
pub fn handoff_refused(reason: &str) -> Regex {
    re(&format!(
        r"^\[hv\] ERROR: handoff block refused: {reason}; cold-booting the VMs from their configuration$"
    ))
}

/// `[hv] reload: generation <g>, <n> VMs resumed; request to resume <us>
/// us, VMs paused for <us> us; <phase> us, ...`: the reload is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    pub generation: u64,
    pub vms: u32,
    pub request_to_resume_us: u64,
    pub paused_us: u64,
}

impl ReloadReport {
    /// Regex of any reload report (captures the four figures in order).
    pub fn pattern() -> Regex {
        re(
            r"^\[hv\] reload: generation (\d+), (\d+) VMs resumed; request to resume (\d+) us, VMs paused for (\d+) us;",
        )
    }

    /// Parses a reload report; `None` if the line is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = Self::pattern().captures(line)?;
        Some(ReloadReport {
            generation: c[1].parse().ok()?,
            vms: c[2].parse().ok()?,
            request_to_resume_us: c[3].parse().ok()?,
            paused_us: c[4].parse().ok()?,
        })
    }
}

/// The report of the reload to generation `generation` with `nvms` VMs
/// resumed (the timings not checked).
pub fn reload_report(generation: u32, nvms: u32) -> Regex {
    re(&format!(
        r"^\[hv\] reload: generation {generation}, {nvms} VMs resumed; "
    ))
}

/// `[hv] image slot <i> at 0x<base> (<size> KiB): ...` of the shell's
/// `images`: what the slot's role is, as the line's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRole {
    /// No suffix.
    Other,
    /// ` [running]`: the image running now.
    Running,
    /// ` [previous]`: the image the running one was upgraded from.
    Previous,
    /// ` [staged]`: what `upgrade` starts.
    Staged,
}

impl SlotRole {
    fn suffix(self) -> &'static str {
        match self {
            SlotRole::Other => "",
            SlotRole::Running => r" \[running\]",
            SlotRole::Previous => r" \[previous\]",
            SlotRole::Staged => r" \[staged\]",
        }
    }
}

/// `[hv] image slot <index> at 0x<base> (<size> KiB): '<version>', <len>
/// bytes, for <board>, checksum 0x<crc> ok[ <role>]`: a sound image in the
/// slot.
pub fn image_slot(index: u32, version: &str, board: &str, role: SlotRole) -> Regex {
    re(&format!(
        r"^\[hv\] image slot {index} at 0x[0-9a-f]+ \(\d+ KiB\): '{}', \d+ bytes, for {}, checksum 0x[0-9a-f]{{8}} ok{}$",
        regex::escape(version),
        regex::escape(board),
        role.suffix()
    ))
}

/// The `images` line of slot `index` holding a sound image of `version`
/// with `role` (the other figures not checked).
pub fn image_slot_holding(index: u32, version: &str, role: SlotRole) -> Regex {
    re(&format!(
        r"^\[hv\] image slot {index} .*'{}'.* ok{}$",
        regex::escape(version),
        role.suffix()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as the hypervisor prints them (see the format strings named in
    // each function's doc).

    #[test]
    fn boot_lines() {
        let l = "[hv] blink 0.1.0 on qemu-virt: EL2, 2 CPUs, GICv3";
        assert_eq!(
            Banner::parse(l),
            Some(Banner {
                version: "0.1.0".into(),
                board: "qemu-virt".into(),
                ncpus: 2,
                gic: 3
            })
        );
        assert!(banner(2, 3).is_match(l));
        assert!(!banner(1, 3).is_match(l));
        assert!(!banner(2, 2).is_match(l));
        assert!(banner_of("blink 0.1.0", "qemu-virt", 2).is_match(l));
        assert!(!banner_of("blink 0.1.0+next", "qemu-virt", 2).is_match(l));
        assert!(cpu_online(1).is_match("[hv] cpu 1 online"));
        assert!(no_device_tree().is_match("[hv] FATAL: device tree: none passed in x0 (got 0x0)"));
        assert!(no_gic().is_match("[hv] FATAL: device tree: no GIC: no compatible node"));
    }

    #[test]
    fn vm_lines() {
        let l = "[hv] vm 1 'domU1': 64 MiB at 0x48000000, 2 vCPUs";
        let vm = VmCreated::parse(l).unwrap();
        assert_eq!(
            vm,
            VmCreated {
                id: 1,
                name: "domU1".into(),
                mib: 64,
                pa: 0x4800_0000,
                vcpus: 2
            }
        );
        assert_eq!(vm.range(), 0x4800_0000..0x4c00_0000);
        assert!(vm_created("domU1").is_match(l));
        assert!(!vm_created("domU0").is_match(l));
        assert!(VmCreated::parse("[hv] vm 1 'domU1': started").is_none());

        assert!(vm_started(0, "domU0").is_match("[hv] vm 0 'domU0': started"));
        assert!(vm_started(None, "domU0").is_match("[hv] vm 3 'domU0': started"));
        assert!(!vm_started(1, "domU0").is_match("[hv] vm 0 'domU0': started"));
        let resumed = "[hv] vm 1 'domU1': resumed, 64 MiB at 0x48000000, 1 vCPUs";
        assert!(vm_resumed(1, "domU1").is_match(resumed));
        assert!(vm_resumed_as(1, "domU1", 64, 1).is_match(resumed));
        assert!(!vm_resumed_as(1, "domU1", 64, 2).is_match(resumed));
        let running = "[hv] vm 0 'domU0': Running, 256 MiB at 0x50000000, 2 vCPUs";
        assert!(vm_running(0, "domU0").is_match(running));
        assert!(vm_running_as(0, "domU0", 256, 2).is_match(running));
        assert!(!vm_running(1, "domU0").is_match(running));
        assert!(vm_owns_interrupt(0, "domU0", 40)
            .is_match("[hv] vm 0 'domU0': owns physical interrupt 40"));
        assert!(vm_reset_requested(0, "domU0")
            .is_match("[hv] vm 0 'domU0': reset requested, restarting"));
        assert!(vm_restarted(0, "domU0", 2).is_match("[hv] vm 0 'domU0': restarted (boot 2)"));
        assert!(!vm_restarted(0, "domU0", 2).is_match("[hv] vm 0 'domU0': restarted (boot 12)"));
        assert!(vm_powered_off(None, "domU0").is_match("[hv] vm 0 'domU0': powered off"));
        assert!(vm_warning().is_match(
            "[hv] WARN: vm 1 'domU1': data abort outside its memory at IPA 0x0: abort injected"
        ));
        assert!(vm_config_error("domU1")
            .is_match("[hv] ERROR: /chosen/domU1: 64 vCPUs; VM not created"));
        assert!(vm_config_error_in("domU1").is_match("[hv] ERROR: /chosen/domU1/module@0: no reg"));
        assert!(!vm_config_error_in("domU1").is_match("[hv] ERROR: /chosen/domU10: no kernel"));
    }

    #[test]
    fn console_and_shell_lines() {
        assert!(console_help().is_match(
            "[hv] console: Ctrl-] then 0-9: focus a VM, h: hypervisor, ?: help, Ctrl-]: send Ctrl-]"
        ));
        assert!(input_to_shell()
            .is_match("[hv] console input now goes to the hypervisor shell (type 'help')"));
        assert!(input_to_vm(0).is_match("[hv] console input now goes to vm 0"));
        assert!(
            unknown_command("nonsense").is_match("[hv] unknown command 'nonsense' (try 'help')")
        );
        let s = "[hv] uptime 12 s, generation 3, heap 140 KiB used of 16384 KiB, 2 CPUs";
        assert_eq!(
            Status::parse(s),
            Some(Status {
                uptime_s: 12,
                generation: 3,
                heap_used_kib: 140,
                heap_total_kib: 16384,
                ncpus: 2
            })
        );
        assert!(status_line(3, 2).is_match(s));
        assert!(!status_line(3, 1).is_match(s));
        assert!(status_generation(3).is_match(s));
        assert!(!status_generation(1).is_match(s));
        let a = "[hv] aging: image up 5 s, generation 1 (1 warm reloads since the cold boot), heap 143360 bytes in use (120000 bytes requested), largest free block 8192 KiB";
        assert_eq!(
            Aging::parse(a),
            Some(Aging {
                image_up_s: 5,
                generation: 1,
                warm_reloads: 1,
                heap_used: 143360,
                heap_requested: 120000,
                largest_free_kib: 8192
            })
        );
        assert!(leaked(4096).is_match("[hv] debug-leak: leaked 4096 KiB of hypervisor heap"));
        assert!(leak_refused(100000000)
            .is_match("[hv] debug-leak: 100000000 KiB refused: at most 12000 KiB may be leaked"));
        assert!(
            exits_report().is_match("[hv] exits at counter 1 freq 62500000: total=5 hvc_psci=1")
        );
    }

    #[test]
    fn exception_report_lines() {
        assert!(el2_data_abort(0).is_match("[hv] FATAL: unexpected exception at EL2 on cpu 0: synchronous (translation fault), ESR=0x96000044 (EC 0x25: data abort at EL2, ISS 0x44)"));
        assert!(el2_fault_registers(0x0000_dead_0000_0000)
            .is_match("[hv]   ELR=0x0000000040081234 FAR=0x0000dead00000000 SPSR=0x3c9"));
        assert!(el2_fault_gprs().is_match(
            "[hv]   x0 =0x0000000000000001 x1 =0x0000000000000002 x2 =0x0000000000000003 x3 =0x0000000000000004"
        ));
        assert!(cpu_stopped(0).is_match("[hv] cpu 0 stopped"));
    }

    #[test]
    fn reload_lines() {
        let up = "[hv] upgrade: image slot 1 holds 'blink 0.1.0+next' (123456 bytes, checksum ok); this is 'blink 0.1.0'";
        assert!(upgrade_to("blink 0.1.0+next", "blink 0.1.0").is_match(up));
        assert!(!upgrade_to("blink 0.1.0", "blink 0.1.0+next").is_match(up));
        let sus = "[hv] rejuvenate: suspending 2 VMs for a warm reload (generation 1)";
        assert!(suspending(2, 1).is_match(sus));
        assert!(reload_begins().is_match(up));
        assert!(reload_begins().is_match(sus));
        assert!(!reload_begins().is_match("[hv] rejuvenate: periodic reload (every 3000 ms)"));
        assert!(!reload_begins().is_match(
            "[hv] ERROR: rejuvenate: image slot 1: no image (no BLINKIMG header); nothing changes, VMs keep running"
        ));
        assert!(periodic_reload(3000).is_match("[hv] rejuvenate: periodic reload (every 3000 ms)"));
        assert!(slot_refused(1, r"no image \(no BLINKIMG header\)").is_match(
            "[hv] ERROR: rejuvenate: image slot 1: no image (no BLINKIMG header); nothing changes, VMs keep running"
        ));
        assert!(corrupting_handoff().is_match(
            "[hv] rejuvenate: debug: flipping one byte in the middle of the handoff block"
        ));
        assert!(secondaries_released(1)
            .is_match("[hv] 1 secondary CPU(s) released from the holding pen"));
        assert!(warm_entry().is_match("[hv] warm entry: handoff block at 0x43f00000"));
        assert!(handoff_read(0, "blink 0.1.0", 0, "blink 0.1.0+next", 1).is_match(
            "[hv] handoff: format 1.0 written by 'blink 0.1.0' (generation 0); this is 'blink 0.1.0+next', format 1.1"
        ));
        assert!(handoff_refused(".*checksum.*").is_match(
            "[hv] ERROR: handoff block refused: header checksum mismatch; cold-booting the VMs from their configuration"
        ));
        let r = "[hv] reload: generation 4, 3 VMs resumed; request to resume 2500 us, VMs paused for 1300 us; requested->quiesced 10 us, quiesced->saved 20 us";
        assert!(reload_report(4, 3).is_match(r));
        assert!(!reload_report(4, 2).is_match(r));
        assert_eq!(
            ReloadReport::parse(r),
            Some(ReloadReport {
                generation: 4,
                vms: 3,
                request_to_resume_us: 2500,
                paused_us: 1300
            })
        );
        let slot = "[hv] image slot 0 at 0x44000000 (8192 KiB): 'blink 0.1.0', 654321 bytes, for qemu-virt, checksum 0x1234abcd ok [running]";
        assert!(image_slot(0, "blink 0.1.0", "qemu-virt", SlotRole::Running).is_match(slot));
        assert!(!image_slot(0, "blink 0.1.0", "qemu-virt", SlotRole::Other).is_match(slot));
        assert!(image_slot_holding(0, "blink 0.1.0", SlotRole::Running).is_match(slot));
        assert!(!image_slot_holding(0, "blink 0.1.0", SlotRole::Previous).is_match(slot));
    }

    #[test]
    fn tags() {
        assert!(re(FATAL).is_match("[hv] FATAL: unexpected exception"));
        assert!(re(FATAL).is_match("[hv] PANIC on cpu 0: at foo.rs:1"));
        let warn_or_error = tagged(&[Tag::Warn, Tag::Error]);
        assert_eq!(warn_or_error.as_str(), r"^\[hv\] (WARN|ERROR)");
        assert!(warn_or_error.is_match("[hv] WARN: vm 1 'domU1': x"));
        assert!(!warn_or_error.is_match("[domU0] WARN: x"));
    }
}
