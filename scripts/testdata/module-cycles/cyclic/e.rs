// e -> c through a grouped use (and e -> leaf, which is no loop)
use crate::{c::{self, C}, leaf::Leaf};

pub fn third(x: u32) -> u32 {
    let _ = (C, Leaf, c::first);
    x
}
