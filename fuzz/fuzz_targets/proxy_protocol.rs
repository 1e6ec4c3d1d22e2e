#![no_main]
//! Shim: the check lives in `echo_server::model_check::proxy_protocol`, where
//! `cargo test` replays the seeds and past crashes through it too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = echo_server::model_check::proxy_protocol::check_proxy(data) {
        panic!("{violation}");
    }
});
