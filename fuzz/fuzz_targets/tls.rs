#![no_main]
//! Shim: the check lives in `echo_server::model_check::tls`, where
//! `cargo test` runs it on random scripts too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = echo_server::model_check::tls::check_tls(data) {
        panic!("{violation}");
    }
});
