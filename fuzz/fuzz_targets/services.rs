#![no_main]
//! Shim: the check lives in `echo_server::model_check::services`, where
//! `cargo test` runs it on random scripts too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = echo_server::model_check::services::check_services(data) {
        panic!("{violation}");
    }
});
