//! Console input: the escape sequence moves input focus to the hypervisor
//! shell, whose commands answer on the console; an unexpected exception at
//! EL2 (forced with `debug-fault`) is reported decoded and stops only the CPU
//! it happened on, while the VM on the other CPU keeps running.

use std::time::Duration;

use tests::*;

fn console(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat", "timer"])?;
    // domU0 runs on CPU 0 (which takes console input), domU1 on CPU 1.
    let s = scenario(gic, [VmSpec::guest("domU0", "timer"), VmSpec::guest("domU1", "heartbeat")]);
    let mut run = QemuRun::start(&s)?;
    run.expect(&re(r"^\[hv\] vm 1 'domU1': started$"), DEADLINE)?;
    run.expect(&re(r"^\[domU1\] heartbeat: n=1 "), DEADLINE)?;

    run.send(b"\x1d?")?;
    run.expect(&re(r"^\[hv\] console: Ctrl-\] then 0-9"), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"status\r")?;
    run.expect(&re(r"^\[hv\] uptime \d+ s, generation 0, heap \d+ KiB used of \d+ KiB, 2 CPUs$"), DEADLINE)?;
    run.expect(&re(r"^\[hv\] vm 0 'domU0': Running, 64 MiB at 0x[0-9a-f]+, 1 vCPUs$"), DEADLINE)?;
    run.send(b"nonsense\r")?;
    run.expect(&re(r"^\[hv\] unknown command 'nonsense' \(try 'help'\)$"), DEADLINE)?;

    run.send(b"debug-fault\r")?;
    run.expect(&re(r"^\[hv\] FATAL: unexpected exception at EL2 on cpu 0: synchronous \(translation fault\), ESR=0x9[0-9a-f]+ \(EC 0x25: data abort at EL2"), DEADLINE)?;
    run.expect(&re(r"^\[hv\]   ELR=0x[0-9a-f]{16} FAR=0x0000dead00000000 SPSR=0x[0-9a-f]+$"), DEADLINE)?;
    run.expect(&re(r"^\[hv\]   x0 +=0x[0-9a-f]{16}"), DEADLINE)?;
    run.expect(&re(r"^\[hv\] cpu 0 stopped$"), DEADLINE)?;
    // CPU 1 and its VM carry on.
    let seen = run.lines().iter().filter(|l| l.starts_with("[domU1] heartbeat: n=")).count();
    run.wait_until(DEADLINE, "heartbeat continuing after cpu 0 stopped", |lines| {
        (lines.iter().filter(|l| l.starts_with("[domU1] heartbeat: n=")).count() >= seen + 2).then_some(())
    })?;
    std::thread::sleep(Duration::from_millis(100));
    run.assert_absent(&re(r"PANIC"))?;
    Ok(())
}

on_both_gics!(console);
