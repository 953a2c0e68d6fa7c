//! llama.cpp and ggml log to stderr unless told otherwise; a library must not print.
//! Their log lines are captured instead, and the last warnings and errors are kept: when
//! llama.cpp refuses a file or a batch, the reason is only in its log, and keel puts it
//! into the error message.

use std::collections::VecDeque;
use std::ffi::{CStr, c_char, c_void};
use std::sync::{Mutex, Once};

const KEEP: usize = 16;

static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static INSTALL: Once = Once::new();

unsafe extern "C" fn capture(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    let important = level == llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR
        || level == llama_cpp_sys_2::GGML_LOG_LEVEL_WARN;
    if !important {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for this call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    if let Ok(mut recent) = RECENT.lock() {
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(line.to_string());
    }
}

/// Routes llama.cpp's and ggml's logs into keel's buffer (once per process).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `capture` is a plain function that lives for the whole process.
        unsafe {
            llama_cpp_sys_2::llama_log_set(Some(capture), std::ptr::null_mut());
            llama_cpp_sys_2::ggml_log_set(Some(capture), std::ptr::null_mut());
        }
    });
}

/// Forgets what was logged so far (call before an operation whose failure is explained
/// by [`reason`]).
pub(crate) fn clear() {
    if let Ok(mut recent) = RECENT.lock() {
        recent.clear();
    }
}

/// The warnings and errors logged since the last [`clear`], or `fallback`.
pub(crate) fn reason(fallback: &str) -> String {
    let recent = RECENT.lock().map(|r| r.iter().cloned().collect::<Vec<_>>());
    match recent {
        Ok(lines) if !lines.is_empty() => format!("{fallback}: {}", lines.join("; ")),
        _ => fallback.to_string(),
    }
}
