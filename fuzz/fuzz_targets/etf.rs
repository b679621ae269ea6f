#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    erlnode_fuzz::harness::etf(data);
});
