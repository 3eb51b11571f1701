//! The host that every API function takes: `root=None` is the live machine, a folder is a recorded
//! one; `cpuid=` adds a recorded CPUID dump. Shared by `check()` and the APIs to come (nested
//! plans, guest CPU configuration), so that they all accept the same arguments.

use std::path::Path;

use nestcore::Host;

/// The host for `root` (None: the live machine) and an optional CPUID dump.
///
/// Runs without the GIL: touches no Python object.
pub(crate) fn host(root: Option<&Path>, cpuid: Option<&Path>) -> nestcore::Result<Host> {
    let host = match root {
        Some(r) => Host::from_root(r)?,
        None => Host::live(),
    };
    match cpuid {
        Some(c) => host.with_cpuid_file(c),
        None => Ok(host),
    }
}
