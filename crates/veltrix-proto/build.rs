//! Compiles `proto/` once for both services, with a vendored `protoc` so that
//! no system package is needed, and writes the descriptor set for reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;

    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "command.proto",
        "event.proto",
        "fleet.proto",
        "origin.proto",
        "query.proto",
        "readmodel.proto",
        "snapshot.proto",
        "rollout.proto",
    ]
    .map(|f| root.join("veltrix/config/v1").join(f));
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The protos live outside this package: cargo watches only the package
    // itself unless told.
    println!("cargo:rerun-if-changed=build.rs");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("veltrix_descriptor.bin"))
        // Values fanned out to many watchers are shared, not copied.
        .bytes(".veltrix.config.v1.KeyValue.value")
        .bytes(".veltrix.config.v1.KeyChange.value")
        .compile_with_config(config, &files, &[root.clone(), well_known])?;
    Ok(())
}
