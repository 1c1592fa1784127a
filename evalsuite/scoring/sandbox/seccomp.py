"""The system calls a sandboxed program may make: an allowlist, compiled to BPF in the scorer.

Why an allowlist: the first hole found this way was the kernel keyring. ``add_key`` and
``keyctl`` are not namespaced by PID, mount or IPC namespaces, and a key outlives the
program that made it, so one program could leave "my answer to input 11 was wrong" for the
next one. Chasing such channels one by one (keyrings, then the next kernel object) loses;
refusing every call a Python program does not need closes the ones nobody has found yet.

What is refused (``EPERM``, so Python raises ``PermissionError``): everything not listed in
``ALLOWED``, among them the keyring calls, ``unshare``/``setns``/``mount`` and the other
namespace and filesystem-tree calls, ``ptrace`` and ``process_vm_*``, ``bpf``,
``perf_event_open``, ``userfaultfd``, ``io_uring``, module and clock calls, and uid/gid
changes, and ``flock`` (it needs no write access, so two programs could signal through a
lock on a shared read-only file, or learn that the other died). ``clone`` is allowed only
without namespace flags; ``clone3`` cannot be inspected
(its flags live in memory), so it fails with ``ENOSYS`` and libc falls back to ``clone``.
``socket`` is allowed for ``AF_UNIX`` only, and SysV IPC at all, only where each program
has network and IPC namespaces of its own (so an abstract socket name or a shared memory
segment reaches nobody else); without them (basic mode) both are refused and only
``socketpair`` remains. A call from another
architecture's ABI (32-bit ``int 0x80`` on x86-64) kills the process.

Where: the BPF program is built here, in the scorer, with libseccomp (``ctypes``; Debian's
``libseccomp2``), and travels as bytes to the zygote; each child loads it as the very last
step before untrusted code runs (``child._confine``), after it has used ``unshare``,
``mount`` and ``setresuid`` for itself. Inside the jail there is no ``ldconfig`` to find a
library with, and the zygote needs those calls, so neither builds nor loads it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import socket
import struct

INSTALL_HINT = "install libseccomp (Debian/Ubuntu: apt-get install libseccomp2)"

ACT_ALLOW = 0x7FFF0000
ACT_KILL_PROCESS = 0x80000000
CMP_EQ, CMP_MASKED_EQ = 4, 7
FILTER_ATTR_ACT_BADARCH = 2
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SOCK_FILTER = struct.Struct("<HBBI")  # struct sock_filter: code, jt, jf, k

NAMESPACE_FLAGS = (  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}, CLONE_NEWTIME
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
) | 0x00000080

_GROUPS = {  # why each group is safe to allow: the key says
    "files and descriptors (only what the jail's filesystem lets through is reachable)": (
        "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 open openat "
        "openat2 creat close close_range lseek stat fstat lstat newfstatat statx statfs "
        "fstatfs access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd "
        "chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link "
        "linkat symlink symlinkat chmod fchmod fchmodat chown fchown lchown fchownat truncate "
        "ftruncate fsync fdatasync fallocate fcntl dup dup2 dup3 pipe pipe2 umask utime "
        "utimes utimensat futimesat sendfile copy_file_range splice tee fadvise64 readahead "
        "getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr ioctl memfd_create"
    ),
    "waiting and events": (
        "select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait "
        "epoll_pwait epoll_pwait2 eventfd eventfd2 timerfd_create timerfd_settime "
        "timerfd_gettime signalfd signalfd4 futex futex_waitv nanosleep clock_nanosleep pause"
    ),
    "memory": (
        "brk mmap munmap mprotect mremap msync mincore madvise membarrier get_mempolicy "
        "set_mempolicy pkey_alloc pkey_free pkey_mprotect map_shadow_stack"
    ),
    "processes (inside the program's own PID namespace) and signals": (
        "fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill getpid "
        "getppid gettid getpgid getpgrp setpgid getsid setsid getuid geteuid getgid getegid "
        "getresuid getresgid getgroups capget set_tid_address set_robust_list get_robust_list "
        "rseq arch_prctl prctl sched_yield sched_getaffinity sched_setaffinity sched_getparam "
        "sched_getscheduler sched_getattr sched_get_priority_max sched_get_priority_min "
        "getpriority setpriority rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend "
        "rt_sigtimedwait rt_sigpending rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack alarm "
        "getitimer setitimer timer_create timer_settime timer_gettime timer_getoverrun "
        "timer_delete restart_syscall"
    ),
    "time, limits, facts about the machine": (
        "clock_gettime clock_getres gettimeofday time times getrusage getrlimit setrlimit "
        "prlimit64 sysinfo uname getrandom getcpu"
    ),
    "sockets: only what socket()/socketpair() below let a program create": (
        "connect bind listen accept accept4 sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg "
        "shutdown getsockname getpeername setsockopt getsockopt"
    ),
}
ALLOWED = tuple(name for calls in _GROUPS.values() for name in calls.split())
# only where every program has an IPC namespace of its own (its objects die with it)
SYSV_IPC = ("shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl")
SYSV_IPC += ("msgget", "msgsnd", "msgrcv", "msgctl")


class SeccompUnavailable(FileNotFoundError):
    """libseccomp is not installed here: the filter cannot be built."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@functools.cache
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise SeccompUnavailable(f"libseccomp not found: {INSTALL_HINT}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@functools.cache
def build_filter(private_namespaces: bool) -> bytes:
    """The BPF program (``struct sock_filter`` array) for this machine's architecture.

    ``private_namespaces``: each program has network and IPC namespaces of its own, so
    ``AF_UNIX`` sockets (abstract names included) and SysV IPC objects reach only the
    program itself; without them (basic mode) both are refused.
    """
    lib = _library()
    ctx = lib.seccomp_init(act_errno(errno.EPERM))
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, FILTER_ATTR_ACT_BADARCH, ACT_KILL_PROCESS)

        def rule(action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # not a call of this architecture (e.g. open on aarch64)
                return
            args = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
            result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), args)
            if result != 0:
                raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")

        for name in ALLOWED:
            rule(ACT_ALLOW, name)
        rule(ACT_ALLOW, "clone", (0, CMP_MASKED_EQ, NAMESPACE_FLAGS, 0))
        rule(act_errno(errno.ENOSYS), "clone3")
        rule(ACT_ALLOW, "socketpair", (0, CMP_EQ, socket.AF_UNIX, 0))
        if private_namespaces:
            rule(ACT_ALLOW, "socket", (0, CMP_EQ, socket.AF_UNIX, 0))
            for name in SYSV_IPC:
                rule(ACT_ALLOW, name)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    read_end, write_end = os.pipe()
    try:
        result = lib.seccomp_export_bpf(ctx, write_end)
        os.close(write_end)
        write_end = -1
        if result != 0:
            raise OSError(-result, f"seccomp_export_bpf: {os.strerror(-result)}")
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    program = b"".join(chunks)
    if not program or len(program) % SOCK_FILTER.size:
        raise OSError(f"seccomp_export_bpf gave {len(program)} bytes, not a BPF program")
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_filter(program: bytes) -> None:
    """Install ``program`` on the calling thread (with no_new_privs already set).

    Needs no library: a plain ``prctl``. It must be the last privileged step, and it holds
    for every process and thread the caller starts afterwards.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // SOCK_FILTER.size, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_SECCOMP): {os.strerror(code)}")
