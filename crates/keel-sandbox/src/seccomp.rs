//! The seccomp filter of the Landlock sandbox: with the network off, no IPv4/IPv6
//! socket can be made (Landlock covers TCP only; this also stops UDP, so DNS) and no
//! io_uring (whose socket operations bypass seccomp). Built in keel, installed in the
//! child just before `exec`.

/// BPF instruction classes and fields used here.
/// BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// `struct seccomp_data` offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0: u32 = 16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// The filter program.
pub(crate) fn no_network_filter() -> Vec<libc::sock_filter> {
    let deny = SECCOMP_RET_ERRNO | libc::EACCES as u32;
    vec![
        stmt(BPF_LD_W_ABS, ARCH),
        jump(AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, deny), // another architecture's calls: refuse
        stmt(BPF_LD_W_ABS, NR),
        jump(libc::SYS_io_uring_setup as u32, 5, 0),
        jump(libc::SYS_socket as u32, 0, 5),
        stmt(BPF_LD_W_ABS, ARG0),
        jump(libc::AF_INET as u32, 2, 0),
        jump(libc::AF_INET6 as u32, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, deny),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// Installs `filter` on the calling (child) process. Async-signal-safe; needs
/// `PR_SET_NO_NEW_PRIVS` (set by the Landlock step first).
pub(crate) fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `program` points at `filter`, alive for the call.
    let result = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const libc::sock_fprog,
            0,
            0,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let filter = no_network_filter();
        for (i, ins) in filter.iter().enumerate() {
            if ins.code == BPF_JMP_JEQ_K {
                assert!(i + 1 + (ins.jt as usize) < filter.len());
                assert!(i + 1 + (ins.jf as usize) < filter.len());
            }
        }
        assert_eq!(filter.last().unwrap().code, BPF_RET_K);
    }
}
