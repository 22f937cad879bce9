//! Operator commands of the CLI in the audit trail ([`tributary_catalog::audit`]):
//! the commands that change the catalog, the store or the files of a restore are
//! recorded in the configured catalog when they end, with the operating-system user
//! and host that ran them and their exit status. Read-only commands are not; `ctl`
//! commands act through the API, which records them itself.

use std::path::Path;
use std::time::Instant;

use tributary_catalog::Catalog;
use tributary_catalog::audit::AuditEntry;

use super::args::{Command, KeyCommand};

/// The audit action of a command, the command as recorded, and the configuration it
/// runs with; `None` for a command that changes nothing (or is recorded elsewhere).
pub fn audited(cmd: &Command) -> Option<(&'static str, &'static str, &Path)> {
    Some(match cmd {
        Command::Migrate {
            config,
            dry_run: false,
        } => ("cli.migrate", "tributary migrate", config),
        Command::Once { config, .. } => ("cli.once", "tributary once", config),
        Command::Restore { config, .. } => ("cli.restore", "tributary restore", config),
        Command::Gc {
            config,
            dry_run: false,
            ..
        } => ("cli.gc", "tributary gc", config),
        Command::Prune { config, .. } => ("cli.prune", "tributary prune", config),
        Command::RebuildCatalog { config, .. } => {
            ("cli.rebuild_catalog", "tributary rebuild-catalog", config)
        }
        Command::MigrateStore {
            config,
            encrypt: false,
            ..
        } => ("cli.migrate_store", "tributary migrate-store", config),
        Command::MigrateStore {
            config,
            encrypt: true,
            ..
        } => (
            "cli.encrypt_store",
            "tributary migrate-store --encrypt",
            config,
        ),
        Command::Reindex { config } => ("cli.reindex", "tributary reindex", config),
        Command::Key { command } => match command {
            KeyCommand::Add { config, .. } => ("cli.key_add", "tributary key add", config),
            KeyCommand::Remove { config, .. } => ("cli.key_remove", "tributary key remove", config),
            KeyCommand::Rotate { config, .. } => ("cli.key_rotate", "tributary key rotate", config),
            KeyCommand::Generate { .. } | KeyCommand::List { .. } => return None,
        },
        _ => return None,
    })
}

/// What names a command's target in the trail: the connector of `once`.
pub fn resource(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Once { connector, .. } => Some(format!("connectors/{connector}")),
        _ => None,
    }
}

/// The operator running this process: `user@host`.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid{}", nix_uid()));
    format!("{user}@{}", crate::instance::hostname())
}

#[allow(unsafe_code)]
fn nix_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A command's row: `ok` whether it exited with success.
pub fn entry(
    action: &'static str,
    command: &str,
    resource: Option<String>,
    ok: bool,
    started: Instant,
) -> AuditEntry {
    AuditEntry {
        at: tributary_catalog::now_ns(),
        source: "cli".into(),
        principal: Some(operator()),
        role: None,
        client: "local".into(),
        method: "CLI".into(),
        route: command.into(),
        action: action.into(),
        resource,
        outcome: if ok { "success" } else { "error" }.into(),
        status: i64::from(!ok),
        request_id: format!("{:016x}", rand::random::<u64>()),
        duration_us: started.elapsed().as_micros().min(i64::MAX as u128) as i64,
    }
}

/// Records a command's row in the catalog of `config`; a row that cannot be recorded
/// (an unreachable catalog) is said on stderr and changes nothing of the command's
/// outcome. Nothing is recorded when the configuration does not load.
pub async fn record(config: &Path, e: AuditEntry) {
    // a configuration that does not load was the command's own error, already shown;
    // there is no catalog to record in
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let Ok(cfg) = tributary_config::load(config, &env).map(|l| l.config) else {
        return;
    };
    let written = async {
        let catalog: Catalog = crate::wiring::open_catalog(&cfg).await?;
        catalog.record_audit(&e).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = written {
        eprintln!(
            "warning: the audit trail did not record `{}`: {}",
            e.route,
            super::shown(format!("{err:#}"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cmd(args: &[&str]) -> Command {
        let mut all = vec!["tributary"];
        all.extend_from_slice(args);
        super::super::Cli::parse_from(all).command
    }

    #[test]
    fn commands_that_change_something_are_audited() {
        let c = |args: &[&str]| audited(&cmd(args)).map(|(a, _, p)| (a, p.to_path_buf()));
        assert_eq!(
            c(&["gc", "-c", "t.yaml"]),
            Some(("cli.gc", "t.yaml".into()))
        );
        assert_eq!(c(&["gc", "-c", "t.yaml", "--dry-run"]), None);
        assert_eq!(
            c(&["once", "-c", "t.yaml", "docs"]).map(|x| x.0),
            Some("cli.once")
        );
        assert_eq!(
            resource(&cmd(&["once", "-c", "t.yaml", "docs"])).as_deref(),
            Some("connectors/docs")
        );
        assert_eq!(
            c(&["migrate-store", "-c", "t.yaml", "--encrypt"]).map(|x| x.0),
            Some("cli.encrypt_store")
        );
        assert_eq!(
            c(&["key", "rotate", "-c", "t.yaml", "--new-key-file", "k"]).map(|x| x.0),
            Some("cli.key_rotate")
        );
        assert_eq!(c(&["migrate", "-c", "t.yaml", "--dry-run"]), None);
        assert_eq!(c(&["verify", "-c", "t.yaml"]), None);
        assert_eq!(c(&["status", "-c", "t.yaml"]), None);
        assert_eq!(c(&["key", "generate", "--out", "k"]), None);
        assert_eq!(c(&["run", "-c", "t.yaml"]), None);
    }

    #[test]
    fn a_row_says_who_ran_what_and_how_it_ended() {
        let e = entry("cli.gc", "tributary gc", None, false, Instant::now());
        assert_eq!(e.source, "cli");
        assert_eq!(e.outcome, "error");
        assert_eq!(e.status, 1);
        assert!(e.principal.unwrap().contains('@'));
        assert_eq!(
            entry("cli.gc", "tributary gc", None, true, Instant::now()).outcome,
            "success"
        );
    }
}
