// d -> e through an inline path in code
pub struct D;

pub fn second() -> u32 {
    crate::e::third(1)
}
