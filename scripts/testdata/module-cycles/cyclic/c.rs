// c -> d through `use super::`
use super::d::D;

pub struct C;

pub fn first() -> D {
    D
}
