// Test code may use anything: this file is `#[cfg(test)] mod tests;` and is skipped.
use crate::b;
use super::inner::Thing;

#[test]
fn uses_everything() {
    let _ = (b::describe(), Thing);
}
