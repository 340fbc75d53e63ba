//! Compiles `proto/dunning/v1/*.proto` with protox (pure Rust, no `protoc` needed) and writes
//! the descriptor set that server reflection serves.

use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = fs::read_dir(proto_dir.join("dunning/v1"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let descriptors = protox::Compiler::new([&proto_dir])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("dunning_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Prost's codec, with undecodable messages answered INVALID_ARGUMENT (src/grpc/codec.rs).
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
