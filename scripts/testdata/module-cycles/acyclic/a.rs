//! Mentions of crate::b in comments and strings are not edges (b -> a is real).
/* a block comment: crate::b::describe() /* nested crate::b */ still a comment */

/// Doc comment naming [`crate::b::describe`].
pub struct X;

pub fn text() -> (&'static str, &'static str, char, char) {
    let s = "crate::b::describe() \" crate::b";
    let raw = r#"crate::b::describe() "quoted" crate::b"#;
    (s, raw, '"', '\'')
}

// An inline module's contents belong to a; `super::X` is a itself.
pub mod helpers {
    use super::X;

    pub fn make() -> X {
        X
    }
}
