//! `cargo +nightly fuzz run request_decoding` (from apiserver/): arbitrary bytes through
//! every request decoder and validator of the API server.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    phoenix_apiserver::fuzzing::decode_and_validate(data);
});
