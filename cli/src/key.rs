//! `cdrchain key generate|inspect`.

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_chain_spec::keys::{KeyFile, KeyKind};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate a new key from the operating system's randomness and write it to a file with
    /// mode 0600 (never overwriting one). Prints the public key, and the libp2p peer id
    /// (ed25519) or the EVM address (secp256k1), for the chain spec.
    Generate {
        /// `ed25519` (operator signing key, votes and libp2p identity), `secp256k1` (RSK
        /// checkpoint signing) or `x25519` (the encryption key interconnect agreements are
        /// sealed to: the chain spec's `encryption_key`, the node's `--encryption-key`).
        #[arg(long, value_enum, default_value = "ed25519")]
        scheme: Scheme,
        /// Where to write the key file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public parts of a key file (never the secret).
    Inspect {
        /// The key file.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scheme {
    Ed25519,
    Secp256k1,
    X25519,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate { scheme, out } => {
            let mut secret = [0u8; 32];
            let file = loop {
                getrandom::getrandom(&mut secret).context("reading randomness from the operating system")?;
                match scheme {
                    Scheme::Ed25519 => break KeyFile::ed25519(&secret),
                    Scheme::X25519 => {
                        break KeyFile::x25519(&cdrchain_chain_spec::sealing::EncryptionSecret::from_bytes(
                            secret,
                        ))
                    }
                    Scheme::Secp256k1 => {
                        // A random 32-byte string is a valid scalar except with probability ~2^-128.
                        if let Ok(key) = k256::ecdsa::SigningKey::from_bytes(&secret.into()) {
                            break KeyFile::secp256k1(&key);
                        }
                    }
                }
            };
            file.write_new(&out)?;
            println!("wrote {} (mode 0600)", out.display());
            print_public(&file);
            Ok(())
        }
        Command::Inspect { file } => {
            let key = KeyFile::read(&file)?;
            print_public(&key);
            Ok(())
        }
    }
}

fn print_public(file: &KeyFile) {
    match file.kind {
        KeyKind::Ed25519 => {
            println!("scheme      ed25519");
            println!("public key  {}", file.public);
            if let Some(peer) = &file.peer_id {
                println!("peer id     {peer}");
            }
        }
        KeyKind::X25519 => {
            println!("scheme      x25519 (encryption)");
            println!("public key  {}", file.public);
        }
        KeyKind::Secp256k1 => {
            println!("scheme      secp256k1");
            println!("public key  {}", file.public);
            if let Some(address) = &file.evm_address {
                println!("evm address {address}");
            }
        }
    }
}
