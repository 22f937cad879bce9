//! Test-only helpers: a SeaweedFS (`weed mini`) launcher on loopback and generators of
//! file trees. Never a dependency of production code.

pub mod tree;
pub mod weed;
