//! uartpass: drives a PL011 the hypervisor passed through to this VM (the
//! host's second UART, at its host address 0x0904_0000, SPI 8), by
//! interrupt: a physical device interrupt routed to the VM that owns it.
//!
//! Prints on its console `uartpass: ready gic=v<n>`, writes
//! `uartpass: hello on my own UART` to the passed-through UART, then for
//! every received byte (taken in the interrupt handler) prints
//! `uartpass: irq <n> got 0x<byte>` on the console and echoes `<byte>` back
//! on the passed-through UART.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::ptr::{read_volatile, write_volatile};
    use core::sync::atomic::{AtomicU32, Ordering};

    use guests::println;
    use guests::rt::{self, exception, gic};

    const UART: usize = 0x0904_0000;
    const INTID: u32 = 32 + 8;
    const DR: usize = 0x00;
    const FR: usize = 0x18;
    const IMSC: usize = 0x38;
    const ICR: usize = 0x44;
    const FR_RXFE: u32 = 1 << 4;
    const FR_TXFF: u32 = 1 << 5;

    static IRQS: AtomicU32 = AtomicU32::new(0);

    fn reg(off: usize) -> *mut u32 {
        (UART + off) as *mut u32
    }

    fn put(b: u8) {
        // SAFETY: the passed-through PL011 is mapped at its host address.
        unsafe {
            while read_volatile(reg(FR)) & FR_TXFF != 0 {}
            write_volatile(reg(DR), b as u32);
        }
    }

    fn on_irq() {
        let iar = gic::ack();
        if gic::intid(iar) == INTID {
            let n = IRQS.fetch_add(1, Ordering::Relaxed) + 1;
            // SAFETY: as in `put`.
            unsafe {
                while read_volatile(reg(FR)) & FR_RXFE == 0 {
                    let b = read_volatile(reg(DR)) as u8;
                    println!("uartpass: irq {n} got {b:#04x}");
                    put(b);
                }
                write_volatile(reg(ICR), 0x7ff);
            }
        } else {
            println!("uartpass: unexpected interrupt {}", gic::intid(iar));
        }
        gic::eoi(iar);
    }

    pub fn main(_dtb: usize) -> ! {
        let v = match gic::init() {
            Ok(v) => v,
            Err(e) => {
                println!("uartpass: ERROR: GIC: {e}");
                rt::halt()
            }
        };
        exception::set_irq_handler(on_irq);
        gic::enable_spi(INTID);
        // SAFETY: as in `put`. RX and RX-timeout interrupts on.
        unsafe {
            write_volatile(reg(ICR), 0x7ff);
            write_volatile(reg(IMSC), (1 << 4) | (1 << 6));
        }
        for &b in b"uartpass: hello on my own UART\r\n" {
            put(b);
        }
        println!("uartpass: ready gic=v{}", v.number());
        rt::enable_irqs();
        loop {
            rt::wait_for_interrupt();
        }
    }
}
