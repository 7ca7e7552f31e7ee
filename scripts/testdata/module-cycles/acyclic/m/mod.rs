//! A glob re-export of a child is not an edge m -> inner (inner -> m is real).
mod inner;

pub use inner::*;

pub struct Helper;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod more_tests {
    use super::*;
    use crate::b::describe;

    #[test]
    fn uses_everything() {
        let _ = (Thing, Helper, describe(), crate::b::describe());
    }
}
