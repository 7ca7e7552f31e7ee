//! Errors of the SDK, and the stable status codes the C ABI reports for them.

use std::fmt;

/// Stable numeric status of an SDK call. The values are part of the C ABI
/// (`sempart_status` in `sempart.h`) and never change meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range: a zero or too large size, a stride smaller than a row,
    /// a buffer too small for the frame, an unknown pixel format or option value.
    InvalidArgument = 2,
    /// The model file does not exist or cannot be read.
    ModelNotFound = 3,
    /// The model file is not a readable ONNX file (truncated or corrupt).
    ModelCorrupt = 4,
    /// The file is a valid ONNX model but not a Sempart model (metadata missing or wrong).
    ModelForeign = 5,
    /// The Sempart model format version of the file is not supported by this SDK.
    ModelUnsupportedVersion = 6,
    /// The requested execution provider is not available and fallback was not allowed.
    ProviderUnavailable = 7,
    /// The ONNX Runtime library could not be found or loaded.
    RuntimeUnavailable = 8,
    /// Inference failed inside ONNX Runtime.
    InferenceFailed = 9,
    /// An input or output file could not be read or written, or an image could not be decoded.
    Io = 10,
    /// An internal error (a bug in the SDK); the message says more.
    Internal = 11,
    /// The model file's content does not match the digest it carries: it was altered or
    /// damaged after export (format version 2 files; see `sempart_options.verify_integrity`).
    ModelIntegrity = 12,
}

impl Status {
    /// The status with the given ABI value, if any.
    pub fn from_raw(value: i32) -> Option<Status> {
        use Status::*;
        [
            Ok,
            NullArgument,
            InvalidArgument,
            ModelNotFound,
            ModelCorrupt,
            ModelForeign,
            ModelUnsupportedVersion,
            ProviderUnavailable,
            RuntimeUnavailable,
            InferenceFailed,
            Io,
            Internal,
            ModelIntegrity,
        ]
        .get(usize::try_from(value).ok()?)
        .copied()
    }

    /// A short, static description of the status.
    pub fn describe(self) -> &'static str {
        self.describe_c().to_str().expect("static ASCII text")
    }

    /// [`Status::describe`] as a NUL-terminated C string.
    pub fn describe_c(self) -> &'static std::ffi::CStr {
        match self {
            Status::Ok => c"success",
            Status::NullArgument => c"a required pointer argument was NULL",
            Status::InvalidArgument => c"invalid argument",
            Status::ModelNotFound => c"model file not found or not readable",
            Status::ModelCorrupt => c"model file is not a valid ONNX file (truncated or corrupt)",
            Status::ModelForeign => c"ONNX file is not a Sempart model",
            Status::ModelUnsupportedVersion => c"unsupported Sempart model format version",
            Status::ProviderUnavailable => c"requested execution provider is not available",
            Status::RuntimeUnavailable => c"ONNX Runtime library could not be loaded",
            Status::InferenceFailed => c"inference failed",
            Status::Io => c"input/output error",
            Status::Internal => c"internal error",
            Status::ModelIntegrity => c"model file content does not match its digest (altered or damaged)",
        }
    }
}

/// An SDK error: a status plus a message that says precisely what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// Makes an error of the given status.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error { status, message: message.into() }
    }

    /// Shorthand for [`Status::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Status::InvalidArgument, message)
    }

    /// The stable status code.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result of SDK calls.
pub type Result<T> = std::result::Result<T, Error>;
