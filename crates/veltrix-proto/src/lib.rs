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
