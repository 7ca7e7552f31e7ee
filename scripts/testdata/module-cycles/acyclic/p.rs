pub use crate::q::*;

pub fn call_b() -> &'static str {
    crate::b::describe()
}
