#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nestcore_fuzz::libvirt_cpu::run(data));
