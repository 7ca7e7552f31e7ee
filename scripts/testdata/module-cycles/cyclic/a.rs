use crate::b::X;

pub struct Y;

pub fn make() -> X {
    X
}
