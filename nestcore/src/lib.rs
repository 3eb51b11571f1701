//! nestcore: can this machine run virtual machines, can its guests run their own (nested
//! virtualization), and what exactly must change to get there.

pub mod bootloader;
pub mod cmdline;
pub mod cpu;
pub mod error;
pub mod host;
pub mod hypervisor;
pub mod kvm;
pub mod modprobe;
pub mod nested;
pub mod plan;
pub mod report;

pub use error::{Error, ErrorKind, Result};
pub use host::Host;

/// nestcore's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
