//! [`uart_at`]: the board's maintenance UART looked up in real QEMU trees.
use super::*;

static QEMU_V3: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv3.dtb");
/// Two `-serial`: a second PL011 at 0x0904_0000 (testdata/README.md).
static QEMU_V3_TWO_UARTS: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv3-passthrough.dtb");

#[test]
fn maintenance_uart_found_with_its_interrupt() {
    let u = uart_at(QEMU_V3_TWO_UARTS, 0x0904_0000).unwrap().unwrap();
    assert_eq!(u.base, 0x0904_0000);
    assert_eq!(u.size, 0x1000);
    assert_eq!(u.spi, Some(8));
    assert_eq!(u.intid(), Some(40));
    assert_eq!(u.path, "/pl011@9040000");
}

#[test]
fn maintenance_uart_absent_without_a_second_serial() {
    assert_eq!(uart_at(QEMU_V3, 0x0904_0000).unwrap(), None);
    // The console is found at its own address, and nothing elsewhere.
    let c = uart_at(QEMU_V3, 0x0900_0000).unwrap().unwrap();
    assert_eq!(c.intid(), Some(33));
    assert_eq!(uart_at(QEMU_V3, 0x0904_1000).unwrap(), None);
}

#[test]
fn unreadable_tree_is_an_error() {
    assert!(uart_at(&[0u8; 64], 0x0904_0000).is_err());
}
