//! A host device given to one VM: the second PL011 (0x0904_0000, SPI 8) is
//! passed through to the `uartpass` guest with `blink,passthrough`. Bytes
//! sent to that UART raise its physical interrupt, which the hypervisor
//! delivers to the owning VM as a hardware-linked virtual interrupt; the
//! guest reads them in its handler and echoes them on the device. A second
//! VM keeps running throughout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tests::*;

fn passthrough(gic: u32) -> anyhow::Result<()> {
    require_images(&["uartpass", "heartbeat"])?;
    let dir = xtask::target_dir().join("xtask");
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join(format!("passthrough-{}-v{gic}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let mut s = scenario(
        gic,
        [
            VmSpec::guest("domU0", "uartpass")
                .prop("blink,passthrough", b"/pl011@9040000\0".to_vec()),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    );
    s.extra_args = vec![
        "-chardev".into(),
        format!("socket,id=pt,path={},server=on,wait=off", sock.display()),
        "-serial".into(),
        "chardev:pt".into(),
    ];
    let mut run = start(&s)?;
    run.expect(&hv::vm_owns_interrupt(0, "domU0", 40), DEADLINE)?;
    // That UART is the board's maintenance UART: the VM has it, the link
    // rides on the console.
    run.expect(
        &re(r"^\[hv\] maintenance link on the console \(vm 0 'domU0' owns its UART /pl011@9040000 \(blink,passthrough\)\): "),
        DEADLINE,
    )?;
    run.expect(&re(r"^\[domU0\] uartpass: ready gic=v\d$"), DEADLINE)?;

    let deadline = Instant::now() + DEADLINE;
    let mut uart = loop {
        match UnixStream::connect(&sock) {
            Ok(u) => break u,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => anyhow::bail!(
                "cannot connect to the passed-through UART at {}: {e}",
                sock.display()
            ),
        }
    };
    uart.write_all(b"hi")?;
    run.expect(&re(r"^\[domU0\] uartpass: irq \d+ got 0x68$"), DEADLINE)?;
    run.expect(&re(r"^\[domU0\] uartpass: irq \d+ got 0x69$"), DEADLINE)?;

    // The echo comes back on the device itself.
    uart.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut echoed = Vec::new();
    let mut buf = [0u8; 64];
    while !echoed.ends_with(b"hi") {
        let n = uart.read(&mut buf)?;
        anyhow::ensure!(
            n > 0,
            "passed-through UART closed; got {:?}",
            String::from_utf8_lossy(&echoed)
        );
        echoed.extend_from_slice(&buf[..n]);
    }

    // The other VM was never disturbed.
    run.expect(&re(r"^\[domU1\] heartbeat: n=2 "), DEADLINE)?;
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Warn,
        hv::Tag::Error,
    ]))?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

on_both_gics!(passthrough);
