//! The functional probe: create a VM with one vCPU, run a few real-mode instructions to
//! completion (`add al, bl; out 0x10, al; hlt`) and check the result. Proves KVM really runs
//! guests, whatever the backend (kvm_intel, kvm_amd, kvm_pvm).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// True when the guest ran to `hlt` and wrote the expected value.
    pub ok: bool,
    /// Wall time of the whole probe (VM creation to teardown), microseconds.
    pub duration_us: u64,
    /// Guest instructions executed (3 when it worked).
    pub instructions: u32,
    /// The last stage reached: open, create_vm, memory, create_vcpu, registers, run, done.
    pub stage: &'static str,
    /// The failure, in words.
    pub error: Option<String>,
    /// The errno of the failed ioctl, when one failed (EBUSY from KVM_CREATE_VM: another
    /// hypervisor holds VT-x/AMD-V).
    pub errno: Option<i32>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the probe with a time limit (a vCPU that never exits must not hang `nestcore check`).
pub(crate) fn run(path: &Path) -> ProbeReport {
    let start = Instant::now();
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("nestcore-probe".into())
        .spawn(move || {
            let _ = tx.send(run_inner(&path));
        });
    if let Err(e) = spawned {
        return ProbeReport {
            ok: false,
            duration_us: 0,
            instructions: 0,
            stage: "open",
            error: Some(format!("cannot start probe thread: {e}")),
            errno: None,
        };
    }
    let mut r = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
        (
            "run",
            Err((
                format!("the vCPU did not exit within {} s", TIMEOUT.as_secs()),
                None,
            )),
            0,
        )
    });
    let duration_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (stage, res, n) = (r.0, std::mem::replace(&mut r.1, Ok(())), r.2);
    let (error, errno) = match res {
        Ok(()) => (None, None),
        Err((e, errno)) => (Some(e), errno),
    };
    ProbeReport {
        ok: error.is_none(),
        duration_us,
        instructions: n,
        stage,
        error,
        errno,
    }
}

/// Stage, result (the failure with its errno), instructions run.
type Outcome = (&'static str, Result<(), (String, Option<i32>)>, u32);

fn fail(stage: &'static str, e: impl std::fmt::Display) -> Outcome {
    (stage, Err((e.to_string(), None)), 0)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn fail_ioctl(stage: &'static str, e: &kvm_ioctls::Error) -> Outcome {
    (stage, Err((e.to_string(), Some(e.errno()))), 0)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn run_inner(path: &Path) -> Outcome {
    use kvm_ioctls::{Kvm, VcpuExit};
    use std::os::unix::ffi::OsStrExt;

    const MEM: usize = 0x1000;
    const GUEST: u64 = 0x1000;
    // add al, bl ; out 0x10, al ; hlt
    const CODE: [u8; 5] = [0x00, 0xd8, 0xe6, 0x10, 0xf4];

    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return fail("open", "path contains NUL");
    };
    let kvm = match Kvm::new_with_path(&cpath) {
        Ok(k) => k,
        Err(e) => return fail_ioctl("open", &e),
    };
    let vm = match kvm.create_vm() {
        Ok(v) => v,
        Err(e) => return fail_ioctl("create_vm", &e),
    };
    struct Map(*mut libc::c_void);
    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: self.0 was returned by a successful mmap of MEM bytes and is unmapped once.
            unsafe { libc::munmap(self.0, MEM) };
        }
    }
    // SAFETY: an anonymous private mapping with no address hint; the result is checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_SHARED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return fail("memory", std::io::Error::last_os_error());
    }
    let map = Map(addr);
    // SAFETY: the mapping is MEM bytes long, writable, and CODE is shorter.
    unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), map.0.cast::<u8>(), CODE.len()) };
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: GUEST,
        memory_size: MEM as u64,
        userspace_addr: map.0 as u64,
        flags: 0,
    };
    // SAFETY: the region points at our mapping, which outlives the VM (dropped after `vm`).
    if let Err(e) = unsafe { vm.set_user_memory_region(region) } {
        return fail_ioctl("memory", &e);
    }
    let mut vcpu = match vm.create_vcpu(0) {
        Ok(v) => v,
        Err(e) => return fail_ioctl("create_vcpu", &e),
    };
    let setup = (|| -> Result<(), kvm_ioctls::Error> {
        let mut sregs = vcpu.get_sregs()?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs)?;
        let mut regs = vcpu.get_regs()?;
        regs.rip = GUEST;
        regs.rax = 2;
        regs.rbx = 3;
        regs.rflags = 2;
        vcpu.set_regs(&regs)
    })();
    if let Err(e) = setup {
        return fail_ioctl("registers", &e);
    }
    let mut out = None;
    for _ in 0..16 {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(0x10, data)) => out = data.first().copied(),
            Ok(VcpuExit::Hlt) => {
                drop(vcpu);
                drop(vm);
                drop(map);
                return match out {
                    Some(5) => ("done", Ok(()), 3),
                    other => (
                        "run",
                        Err((format!("guest halted but wrote {other:?} instead of 5"), None)),
                        3,
                    ),
                };
            }
            Ok(exit) => return fail("run", format!("unexpected exit {exit:?}")),
            Err(e) => return ("run", Err((format!("KVM_RUN failed: {e}"), Some(e.errno()))), 0),
        }
    }
    fail("run", "no hlt after 16 exits")
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn run_inner(_path: &Path) -> Outcome {
    fail("open", "the probe is implemented for x86_64 only")
}
