//! Test-only helpers: SeaweedFS (`weed mini`) and Samba (`smbd`) launchers on loopback
//! and generators of file trees. Never a dependency of production code.

pub mod embeddings;
pub mod graph;
pub mod oidc;
pub mod postgres;
pub mod proxy;
pub mod samba;
pub mod tree;
pub mod weed;
