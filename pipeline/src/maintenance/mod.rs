//! Operations over what the pipeline stored: [`restore`], [`verify`], [`gc`],
//! [`rebuild_catalog`], [`migrate_store`] and [`encrypt_store`].

mod destination;
mod encrypt;
mod gc;
mod lease;
mod migrate;
mod rebuild;
mod restore;
mod verify;

pub use destination::safe_relative;
pub use encrypt::{EncryptReport, encrypt_store};
pub use gc::{GcOptions, GcReport, gc};
pub use migrate::{MigrateReport, migrate_store};
pub use rebuild::{RebuildReport, rebuild_catalog};
pub use restore::{RestoreReport, restore, restore_groups};
pub use verify::{VerifyReport, verify};
