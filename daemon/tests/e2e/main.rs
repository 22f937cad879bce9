//! The daemon's end-to-end tests: the real `tributary` binary (and, for SMB and
//! SharePoint, the connectors in process) against real servers — Samba, SeaweedFS,
//! PostgreSQL, an OpenID provider — and the fake Graph. One test binary, so one link;
//! every test starts its own daemon on its own port and folders, so they stay
//! independent of each other.

mod common;

mod api_docs;
mod audit;
mod catalog_copy;
mod catalog_outage;
mod cli;
mod conflicts;
mod connector_admin;
mod daemon;
mod dashboard;
mod dry_run;
mod encryption;
mod events;
mod fleet;
mod instances;
mod monitoring;
mod oidc_sign_in;
mod packaging;
mod postgres;
mod security;
mod sessions;
mod sharepoint;
#[cfg(feature = "smb")]
mod smb;
mod troubleshooting;
mod vectorize;
