//! For wasm32 (the edge Worker), compiles `wasm32/libc.c`: the C library functions libaom
//! needs that no Worker has. Elsewhere the system's C library provides them.
fn main() {
    println!("cargo:rerun-if-changed=wasm32/libc.c");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        cc::Build::new()
            .file("wasm32/libc.c")
            // Its own definitions of strcmp and friends must not become calls to themselves.
            .flag("-fno-builtin")
            .compile("rampart_wasm32_libc");
    }
}
