//! Unit tests of the device tree reader: lookups, `reg` decoding and
//! translation, the cell helpers, and malformed blobs of every kind (which
//! must be refused, never panic). `assemble` builds a blob from raw blocks.

use super::*;
use alloc::vec;
use vm_fdt::FdtWriter;

/// A small tree exercising most of the reader.
fn sample() -> Vec<u8> {
    let mut w =
        FdtWriter::new_with_mem_reserv(&[
            vm_fdt::FdtReserveEntry::new(0x4800_0000, 0x10_0000).unwrap()
        ])
        .unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let aliases = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/soc/serial@7e201000")
        .unwrap();
    w.end_node(aliases).unwrap();
    let gic = w.begin_node("intc@8000000").unwrap();
    w.property_u32("phandle", 5).unwrap();
    w.end_node(gic).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32("ranges", &[0x7e00_0000, 0x0, 0xfe00_0000, 0x0180_0000])
        .unwrap();
    w.property_u32("interrupt-parent", 5).unwrap();
    let uart = w.begin_node("serial@7e201000").unwrap();
    w.property_string_list(
        "compatible",
        vec!["arm,pl011".into(), "arm,primecell".into()],
    )
    .unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.property_string("status", "okay").unwrap();
    w.end_node(uart).unwrap();
    let off = w.begin_node("serial@7e215040").unwrap();
    w.property_string("status", "disabled").unwrap();
    w.end_node(off).unwrap();
    w.end_node(soc).unwrap();
    let nomap = w.begin_node("bus").unwrap();
    let dev = w.begin_node("dev@10").unwrap();
    w.property_array_u32("reg", &[0, 0x10, 0x1]).unwrap();
    w.end_node(dev).unwrap();
    w.end_node(nomap).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn lookup_paths_aliases_phandles() {
    let blob = sample();
    let dt = Dtb::parse(&blob).unwrap();
    assert_eq!(dt.mem_reserve(), &[(0x4800_0000, 0x10_0000)]);
    let root = dt.root();
    assert_eq!(root.path(), "/");
    assert_eq!(
        root.children().map(|c| c.name()).collect::<Vec<_>>(),
        ["aliases", "intc@8000000", "soc", "bus"]
    );
    let uart = dt.find("/soc/serial@7e201000").unwrap();
    assert_eq!(uart.path(), "/soc/serial@7e201000");
    assert_eq!(dt.find("/soc/serial"), Some(uart)); // base-name match, first one
    assert_eq!(dt.find("serial0:115200n8"), Some(uart));
    assert_eq!(dt.find("/soc/serial@7e201000:115200"), Some(uart));
    assert!(dt.find("serial1").is_none());
    assert!(dt.find("/nope").is_none());
    assert!(uart.is_compatible("arm,primecell"));
    assert!(!uart.is_compatible("arm,pl01"));
    assert!(uart.is_enabled());
    assert!(!dt.find("/soc/serial@7e215040").unwrap().is_enabled());
    assert_eq!(
        uart.interrupt_parent().map(|n| n.name()),
        Some("intc@8000000")
    );
    assert_eq!(dt.find_compatible(&["arm,pl011"]), Some(uart));
    assert_eq!(uart.parent().unwrap().name(), "soc");
    assert_eq!(dt.by_phandle(5).unwrap().name(), "intc@8000000");
    assert!(dt.by_phandle(6).is_none());
}

#[test]
fn reg_and_translation() {
    let blob = sample();
    let dt = Dtb::parse(&blob).unwrap();
    let uart = dt.find("serial0").unwrap();
    assert_eq!(uart.reg().unwrap(), Some(vec![(0x7e20_1000, 0x200)]));
    assert_eq!(
        uart.reg_translated().unwrap(),
        Some(vec![(0xfe20_1000, 0x200)])
    );
    // Address outside the bus window.
    assert!(uart.translate(0x1000).is_err());
    // A bus without `ranges` does not map its children.
    let dev = dt.find("/bus/dev@10").unwrap();
    assert_eq!(dev.reg().unwrap(), Some(vec![(0x10, 0x1)])); // defaults 2/1
    assert!(dev.reg_translated().is_err());
}

#[test]
fn cell_helpers() {
    assert_eq!(
        read_cells(&[0, 0, 0, 1, 0, 0, 0, 2], 2),
        Some(0x1_0000_0002)
    );
    assert_eq!(
        read_cells(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2], 3),
        Some(0x1_0000_0002)
    );
    assert_eq!(read_cells(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2], 3), None);
    assert_eq!(read_cells(&[0, 0, 0, 1], 2), None);
    assert_eq!(read_cells(&[], 0), Some(0));
    assert_eq!(cell_u32(&[0, 0, 1, 0]), Some(256));
    assert_eq!(cell_u32(&[0, 0, 1]), None);
    assert_eq!(
        str_list(b"a\0bc\0").unwrap().collect::<Vec<_>>(),
        ["a", "bc"]
    );
    assert!(str_list(b"abc").is_none());
    assert!(str_list(b"").is_none());
    assert!(str_list(b"\xff\0").is_none());
    assert_eq!(
        decode_reg(&[0; 8], 0, 0),
        Err("#address-cells and #size-cells are both 0")
    );
    assert!(decode_reg(&[0; 12], 2, 2).is_err());
    assert_eq!(
        decode_reg(&[0, 0, 0, 1, 0, 0, 0, 2], 1, 1),
        Ok(vec![(1, 2)])
    );
    assert!(decode_reg(&[0; 8], 5, 0).is_err());
    assert_eq!(
        cells(&[0, 0, 0, 1, 0, 0, 0, 2])
            .unwrap()
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(cells(&[0]).is_none());
}

fn set_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn rejects_malformed_headers() {
    let good = sample();
    assert!(Dtb::parse(&good[..39]).is_err());
    assert!(Dtb::parse(&good[..good.len() - 1]).is_err()); // totalsize > blob
    let cases: &[(usize, u32)] = &[
        (0, 0xdeadbeef),   // magic
        (4, 8),            // totalsize below the header
        (8, 0xffff_fff0),  // struct offset huge
        (12, 0xffff_fff0), // strings offset: would overflow u32 arithmetic
        (32, 0xffff_ffff), // strings size
        (36, 0xffff_ffff), // struct size
        (16, 0x4),         // memreserve inside the header
        (16, 0x2c),        // memreserve misaligned
        (20, 16),          // version
        (24, 18),          // last compatible version
    ];
    for &(off, v) in cases {
        let mut b = good.clone();
        set_be32(&mut b, off, v);
        let e = Dtb::parse(&b);
        assert!(e.is_err(), "header field {off:#x} = {v:#x} accepted");
    }
}

#[test]
fn rejects_malformed_structure() {
    let good = sample();
    let off_struct = be32(&good, 8).unwrap() as usize;
    let size_struct = be32(&good, 36).unwrap() as usize;
    // Every word of the structure block replaced by each token value or
    // garbage must never panic (and mostly errors).
    for word in (off_struct..off_struct + size_struct).step_by(4) {
        for v in [0, 1, 2, 3, 4, 9, 0x7fff_ffff, 0xffff_ffff, 0x100] {
            let mut b = good.clone();
            set_be32(&mut b, word, v);
            let _ = Dtb::parse(&b).map(|dt| {
                // Exercise queries on whatever was accepted.
                for n in dt.nodes() {
                    let _ = (n.path(), n.reg(), n.reg_translated(), n.interrupt_parent());
                }
                let _ = dt.find("serial0");
            });
        }
    }
    // Truncating the structure block anywhere is an error.
    for cut in (4..size_struct).step_by(4) {
        let mut b = good.clone();
        set_be32(&mut b, 36, cut as u32);
        assert!(Dtb::parse(&b).is_err(), "struct cut at {cut}");
    }
}

#[test]
fn property_after_subnode_and_depth() {
    // Hand-built structure: root { sub {}; prop }.
    let mut s: Vec<u8> = Vec::new();
    let mut tok = |v: u32| s.extend_from_slice(&v.to_be_bytes());
    tok(TOKEN_BEGIN_NODE);
    tok(0);
    tok(TOKEN_BEGIN_NODE);
    tok(u32::from_be_bytes(*b"sub\0"));
    tok(TOKEN_END_NODE);
    tok(TOKEN_PROP);
    tok(0);
    tok(0);
    tok(TOKEN_END_NODE);
    tok(TOKEN_END);
    let blob = assemble(&s, b"x\0");
    assert_eq!(
        Dtb::parse(&blob).unwrap_err().what,
        "property after a subnode"
    );

    // 100 nested nodes exceed MAX_DEPTH.
    let mut s: Vec<u8> = Vec::new();
    for _ in 0..100 {
        s.extend_from_slice(&TOKEN_BEGIN_NODE.to_be_bytes());
        s.extend_from_slice(b"n\0\0\0");
    }
    for _ in 0..100 {
        s.extend_from_slice(&TOKEN_END_NODE.to_be_bytes());
    }
    s.extend_from_slice(&TOKEN_END.to_be_bytes());
    assert_eq!(
        Dtb::parse(&assemble(&s, b"")).unwrap_err().what,
        "nodes nested too deeply"
    );
}

/// Builds a blob from a raw structure block and strings block.
pub(crate) fn assemble(structs: &[u8], strings: &[u8]) -> Vec<u8> {
    let rsv = HEADER_SIZE; // 40, 8-aligned
    let off_struct = rsv + 16;
    let off_strings = off_struct + structs.len();
    let total = off_strings + strings.len();
    let mut b = vec![0u8; total];
    for (i, v) in [
        FDT_MAGIC,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        rsv as u32,
        17,
        16,
        0,
        strings.len() as u32,
        structs.len() as u32,
    ]
    .into_iter()
    .enumerate()
    {
        set_be32(&mut b, i * 4, v);
    }
    b[off_struct..off_strings].copy_from_slice(structs);
    b[off_strings..].copy_from_slice(strings);
    b
}

#[test]
fn unterminated_memreserve() {
    let mut s: Vec<u8> = Vec::new();
    for v in [TOKEN_BEGIN_NODE, 0, TOKEN_END_NODE, TOKEN_END] {
        s.extend_from_slice(&u32::to_be_bytes(v));
    }
    let mut b = assemble(&s, b"");
    assert!(Dtb::parse(&b).is_ok());
    // Point the reservation map at the structure block (non-zero words
    // all the way to the end): no terminator within the blob.
    let len = b.len() as u32;
    set_be32(&mut b, 16, len - 8);
    b[len as usize - 8..].fill(0xff);
    assert_eq!(
        Dtb::parse(&b).unwrap_err().what,
        "memory reservation block is not terminated"
    );
}
