//! The `nestcore` command. Its definitions and code are the library's [`nestcore::cli`] module
//! (feature `cli`), which `python -m nestcore` runs too, so both are one program.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(nestcore::cli::main(std::env::args_os()))
}
