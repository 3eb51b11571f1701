//! `kargs_edit()`, `cmdline_edit()` and `parse_cmdline()`: kernel arguments in boot
//! configurations and on a bare command line (nestcore::bootloader, nestcore::cmdline). Pure text
//! in, text out: nothing touches the host.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use nestcore::bootloader::ArgsEdit;
use nestcore::cmdline::Cmdline;

use crate::errors::to_pyerr;

/// The configuration text with kernel arguments edited, grubby-compatibly, as `nestcore kargs`
/// prints it. loader: "grub" (legacy grub.conf/menu.lst), "grub2" (/etc/default/grub), "bls",
/// "extlinux" or "kernel-cmdline"; update_kernel: "ALL", "DEFAULT", an index list or a kernel
/// path; args: `k=v` replaces an existing `k` in place or is appended; remove_args: `k` removes
/// any value, `k=v` only that one; boot_filesystem: where the kernels live relative to the
/// configuration (grubby's --boot-filesystem).
///
/// Raises NestcoreInvalidInput for an unknown loader or bad arguments, NestcoreParseError for a
/// configuration that cannot be edited safely, NestcoreUnsupported for what the format cannot
/// express.
#[pyfunction]
#[pyo3(signature = (config_text, loader, update_kernel="ALL", args=None, remove_args=None, boot_filesystem=None))]
pub(crate) fn kargs_edit(
    py: Python<'_>,
    config_text: &str,
    loader: &str,
    update_kernel: &str,
    args: Option<&str>,
    remove_args: Option<&str>,
    boot_filesystem: Option<&str>,
) -> PyResult<String> {
    nestcore::bootloader::kargs_cli(
        config_text,
        loader,
        update_kernel,
        args,
        remove_args,
        boot_filesystem,
    )
    .map_err(|e| to_pyerr(py, &e))
}

/// A bare kernel command line with grubby's --args (replace in place, else append; `-` equals
/// `_` in names) then --remove-args applied; every other byte stays.
///
/// Raises NestcoreInvalidInput for arguments with a bare `--`, an unbalanced quote or no name,
/// NestcoreParseError when the line itself has an unbalanced quote.
#[pyfunction]
#[pyo3(signature = (line, args=None, remove_args=None))]
pub(crate) fn cmdline_edit(
    py: Python<'_>,
    line: &str,
    args: Option<&str>,
    remove_args: Option<&str>,
) -> PyResult<String> {
    let edit = ArgsEdit {
        add: args.map(str::to_string),
        remove: remove_args.map(str::to_string),
        ..ArgsEdit::default()
    };
    edit.apply_to(line).map_err(|e| to_pyerr(py, &e))
}

/// The kernel's parameters of a command line as (name, value) pairs, by the kernel's rules:
/// white space separates, `"` quotes (a value's surrounding quotes are dropped), value None for a
/// bare name; names as written (the kernel compares them with `-` equal to `_`); what follows a
/// bare `--` belongs to init and is left out. Never fails.
#[pyfunction]
pub(crate) fn parse_cmdline<'py>(py: Python<'py>, line: &str) -> PyResult<Bound<'py, PyTuple>> {
    let params = Cmdline::parse(line)
        .params
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect::<Vec<_>>();
    PyTuple::new(py, params)
}
