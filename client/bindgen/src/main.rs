//! `uniffi-bindgen generate --library <libmobile_sync.so> --language <lang> --out-dir <dir>`
fn main() {
    uniffi::uniffi_bindgen_main()
}
