//! Generated protobuf and gRPC types of Veltrix Config (package
//! `veltrix.config.v1`), the file descriptor set for server reflection, and
//! the one place where wire types and domain types are converted. Conversions
//! from the wire validate, so a domain value built from a request is valid.

pub mod convert;

/// Generated types of `proto/veltrix/config/v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("veltrix.config.v1");
}

/// The encoded `FileDescriptorSet` of every `.proto` file, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/veltrix_descriptor.bin"));

/// The method names of `service` (e.g. `veltrix.config.v1.ConfigQuery`), read
/// from the descriptor set; empty for a service it does not define.
pub fn methods(service: &str) -> Vec<String> {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else { return Vec::new() };
    set.file
        .iter()
        .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
        .filter(|(package, s)| service.strip_prefix(package).and_then(|r| r.strip_prefix('.')) == Some(s.name()))
        .flat_map(|(_, s)| s.method.iter().map(|m| m.name().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_the_methods_of_a_service() {
        let methods = super::methods("veltrix.config.v1.ConfigCommand");
        assert!(methods.iter().any(|m| m == "Put") && methods.iter().any(|m| m == "Apply"), "{methods:?}");
        assert!(super::methods("veltrix.config.v1.Nope").is_empty());
    }
}
