//! Console input: the escape sequence moves input focus to the hypervisor
//! shell, whose commands answer on the console; an unexpected exception at
//! EL2 (forced with `debug-fault`) is reported decoded and stops only the CPU
//! it happened on, while the VM on the other CPU keeps running.

use std::time::Duration;

use tests::*;

fn console(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat", "timer"])?;
    // domU0 runs on CPU 0 (which takes console input), domU1 on CPU 1.
    let s = scenario(
        gic,
        [
            VmSpec::guest("domU0", "timer"),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    );
    let mut run = QemuRun::start(&s)?;
    run.expect(&hv::vm_started(1, "domU1"), DEADLINE)?;
    run.expect(&re(r"^\[domU1\] heartbeat: n=1 "), DEADLINE)?;

    run.send(b"\x1d?")?;
    run.expect(&hv::console_help(), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"status\r")?;
    run.expect(&hv::status_line(0, 2), DEADLINE)?;
    run.expect(&hv::vm_running_as(0, "domU0", 64, 1), DEADLINE)?;
    run.send(b"nonsense\r")?;
    run.expect(&hv::unknown_command("nonsense"), DEADLINE)?;

    run.send(b"debug-fault\r")?;
    run.expect(&hv::el2_data_abort(0), DEADLINE)?;
    run.expect(&hv::el2_fault_registers(0x0000_dead_0000_0000), DEADLINE)?;
    run.expect(&hv::el2_fault_gprs(), DEADLINE)?;
    run.expect(&hv::cpu_stopped(0), DEADLINE)?;
    // CPU 1 and its VM carry on.
    let seen = run
        .lines()
        .iter()
        .filter(|l| l.starts_with("[domU1] heartbeat: n="))
        .count();
    run.wait_until(
        DEADLINE,
        "heartbeat continuing after cpu 0 stopped",
        |lines| {
            (lines
                .iter()
                .filter(|l| l.starts_with("[domU1] heartbeat: n="))
                .count()
                >= seen + 2)
                .then_some(())
        },
    )?;
    std::thread::sleep(Duration::from_millis(100));
    run.assert_absent(&re(r"PANIC"))?;
    Ok(())
}

on_both_gics!(console);
