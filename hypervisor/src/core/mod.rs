pub mod console;
pub mod heap;
