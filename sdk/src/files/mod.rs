//! Files the SDK and its tools read and write: the one image decoder ([`decode`]) and atomic
//! writes ([`atomic`]). The command, the evaluation and the trainer all go through these, so a
//! file decodes to the same pixels, and a write is complete or absent, wherever it happens. This
//! module uses only [`crate::error`].

pub mod atomic;
pub mod decode;
