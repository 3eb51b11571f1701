#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nestcore_fuzz::grub2::run(data));
