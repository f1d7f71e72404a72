//! Which board this is, chosen at boot (`platform` holds every board's
//! data): first by the address the image was loaded at, before anything
//! can be read, so that even a FATAL line reaches the right console; then
//! checked against the device tree's root `compatible` once it is parsed.
use platform::Board;
use spin::Once;

static SELECTED: Once<&'static Board> = Once::new();

extern "C" {
    static __image_start: u8;
}

/// Where this image runs: the address of `_start` (the image is position
/// independent, linked at 0 and relocated by boot.S for this address).
pub fn image_base() -> u64 {
    // SAFETY: only the address of the linker symbol is taken; it is
    // PC-relative (or relocated), so it is where the image actually runs.
    unsafe { &__image_start as *const u8 as u64 }
}

/// The board whose boot loader loads images where this one runs (the
/// first board if none does: the image was loaded somewhere unexpected,
/// and the first board's console is the best guess left).
fn by_load_address() -> &'static Board {
    platform::by_load_address(image_base()).unwrap_or(platform::BOARDS[0])
}

/// This machine's board.
pub fn board() -> &'static Board {
    SELECTED.call_once(by_load_address)
}

/// After the device tree is parsed: the board its root `compatible` names
/// must be the one chosen by load address. Err(why) if it names another
/// board; a tree naming no known board keeps the choice (it is reported).
pub fn confirm(
    compatible: &[alloc::string::String],
) -> Result<&'static Board, alloc::string::String> {
    let chosen = board();
    match platform::by_compatible(compatible.iter().map(|s| s.as_str())) {
        // By name: a board's data may exist in several copies (constants).
        Some(b) if b.name == chosen.name => Ok(chosen),
        Some(b) => Err(alloc::format!(
            "the image was loaded where '{}' loads it, but the device tree describes '{}' (compatible {:?})",
            chosen.name,
            b.name,
            compatible
        )),
        None => {
            log::warn!(
                "device tree: root compatible {:?} names no known board; going on as '{}' (where the image was loaded)",
                compatible,
                chosen.name
            );
            Ok(chosen)
        }
    }
}
