//! Opening a file beneath a root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//! the kernel refuses any resolution that leaves the root, so a symlink swapped in
//! after [`crate::Workspace::resolve`] checked the path cannot redirect the open.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL"))
}

fn openat2(
    dir: Option<&OwnedFd>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = cstring(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    loop {
        // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the size
        // passed; the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EAGAIN) && error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// Opens `relative` beneath `root` with `flags` (`O_RDONLY`, `O_WRONLY | O_CREAT |
/// O_TRUNC`, …). An escape is `PermissionDenied`.
pub(crate) fn open(root: &Path, relative: &Path, flags: i32) -> std::io::Result<File> {
    let dir = openat2(None, root, libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    // openat2 insists on a zero mode unless the call may create the file.
    let mode = if flags & libc::O_CREAT != 0 { 0o644 } else { 0 };
    match openat2(
        Some(&dir),
        relative,
        flags,
        mode,
        RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e)
            if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the path leads outside the workspace",
            ))
        }
        Err(e) => Err(e),
    }
}
