//! Compiles the etcd API subset (client only) with a vendored `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_server(false).compile_with_config(
        config,
        &["proto/etcd.proto"],
        &["proto"],
    )?;
    Ok(())
}
