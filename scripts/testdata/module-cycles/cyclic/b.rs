use crate::a::Y;

pub struct X;

pub fn make() -> Y {
    Y
}
