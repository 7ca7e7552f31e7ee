//! Fixture: nothing here is a loop, but every trap below would make one if it were counted.
mod a;
mod b;
mod m;
mod p;
mod q;

// A re-export is not an edge: `crate::X` in b resolves to a, so crate -> b is no loop.
pub use a::X;

pub fn describe() -> &'static str {
    b::describe()
}
