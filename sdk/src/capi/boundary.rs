//! The C ABI's one panic boundary and its argument helpers.
//!
//! Every `extern "C"` function runs its body through [`boundary`] (directly, or through
//! [`guard`] for status-returning bodies). A panic is caught there, never unwinds into C, and is
//! not printed: the library must not write to the host's stderr. The panic hook that keeps it
//! quiet is installed once, the first time a C function is called, and only silences panics
//! raised inside a boundary on the panicking thread; any other panic of the process still goes
//! to the previous hook. Failures are kept as the thread's last error message.

use crate::error::{Error, Result, Status};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// The thread's last error message (empty if none), valid until the next failure on the thread.
pub(super) fn last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

thread_local! {
    /// Depth of `boundary` calls on this thread (a callback could nest them).
    static IN_BOUNDARY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Where the quiet hook puts the location of the last caught panic.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BOUNDARY.with(|d| d.get()) > 0 {
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs the body of an `extern "C"` function: its value, or `fallback` when it panicked (the
/// panic's message and location are then the thread's last error message).
pub(super) fn boundary<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    install_quiet_hook();
    IN_BOUNDARY.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(body));
    IN_BOUNDARY.with(|d| d.set(d.get() - 1));
    match outcome {
        Ok(value) => value,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let at = PANIC_AT.with(|p| std::mem::take(&mut *p.borrow_mut()));
            set_last_error(&format!("internal error (panic caught at the C boundary): {what}{at}"));
            fallback
        }
    }
}

/// [`boundary`] for a body returning `Result<()>`: errors become their status (and the
/// thread's last error message), a panic `SEMPART_STATUS_INTERNAL`.
pub(super) fn guard(body: impl FnOnce() -> Result<()>) -> Status {
    boundary(Status::Internal, || match body() {
        Ok(()) => Status::Ok,
        Err(e) => {
            set_last_error(e.message());
            e.status()
        }
    })
}

/// Writes each `value` through its pointer, skipping NULL pointers (optional outputs).
pub(super) fn write_optional<T: Copy>(outputs: &[(*mut T, T)]) {
    for &(ptr, value) in outputs {
        // SAFETY: NULL is allowed and skipped; otherwise the caller provides writable memory.
        if let Some(slot) = unsafe { ptr.as_mut() } {
            *slot = value;
        }
    }
}

/// The object behind a pointer the caller promises valid, or `NULL_ARGUMENT` naming `what`.
pub(super) fn non_null<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: the caller promises that a non-NULL pointer points to a valid object.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::new(Status::NullArgument, format!("{what} is NULL")))
}

/// An optional path argument: NULL is `None`; otherwise a NUL-terminated UTF-8 string.
pub(super) fn c_path(ptr: *const c_char, what: &str) -> Result<Option<PathBuf>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let text =
        unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))?;
    Ok(Some(PathBuf::from(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message_with_its_location() {
        let status = guard(|| panic!("boom {}", 7));
        assert_eq!(status, Status::Internal);
        let msg = unsafe { CStr::from_ptr(last_error_message()) }.to_string_lossy().into_owned();
        assert!(msg.contains("internal error (panic caught at the C boundary): boom 7"), "{msg}");
        assert!(msg.contains("boundary.rs:"), "the location is in the message: {msg}");
        assert_eq!(boundary(-1i64, || panic!("accessor")), -1);
        // Outside a boundary the previous hook still runs (the process's own panics stay visible):
        // the hook only silences panics while the thread is inside one.
        assert_eq!(IN_BOUNDARY.with(|d| d.get()), 0);
    }
}
