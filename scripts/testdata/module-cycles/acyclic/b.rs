use crate::X;

pub fn describe() -> &'static str {
    let _ = (X, crate::X);
    // Through m's glob re-export this lands in m::inner, not m.
    let _ = crate::m::Thing;
    // p glob-re-exports q, so this is b -> q (p -> b is real).
    let _ = crate::p::Q;
    "b"
}
