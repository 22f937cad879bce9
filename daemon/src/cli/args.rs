//! The command line: subcommands and their flags (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tributary",
    version,
    about = "Ingests file shares, SharePoint and local folders into deduplicated object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing EnvFilter syntax); also RUST_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: schedules, watches, the admin API.
    #[command(
        after_help = "Example:\n  tributary run -c /etc/tributary/tributary.yaml\n  (under systemd the unit runs it: systemctl enable --now tributary)"
    )]
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file (offline unless --connect).
    #[command(
        after_help = "Examples:\n  tributary check -c /etc/tributary/tributary.yaml\n  tributary check -c /etc/tributary/tributary.yaml --connect"
    )]
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Also try the object store and every connector.
        #[arg(long)]
        connect: bool,
    },
    /// Apply the catalog's pending schema migrations (`run` applies them at start too).
    #[command(
        after_help = "Examples:\n  tributary migrate -c /etc/tributary/tributary.yaml --dry-run\n  tributary migrate -c /etc/tributary/tributary.yaml"
    )]
    Migrate {
        #[arg(short, long)]
        config: PathBuf,
        /// Only list the migrations that would be applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Configuration helpers.
    #[command(
        after_help = "Examples:\n  tributary config schema > tributary.schema.json\n  tributary config reference | less"
    )]
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Key files of an encrypted store (object_store.encryption.key_file).
    #[command(
        after_help = "Examples:\n  tributary key generate --out /etc/tributary/store.key\n  tributary key list -c /etc/tributary/tributary.yaml"
    )]
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Run one job of a connector in the foreground.
    #[command(
        after_help = "Examples:\n  tributary once -c tributary.yaml scans\n  tributary once -c tributary.yaml scans --dry-run\n  tributary once -c tributary.yaml scans --incremental --no-vectorize --json"
    )]
    Once {
        #[arg(short, long)]
        config: PathBuf,
        /// The connector id.
        connector: String,
        /// Incremental (changes only, no delete reconciliation) instead of full.
        #[arg(long)]
        incremental: bool,
        /// Allow this job to delete more than the connector's max_delete_percent.
        #[arg(long)]
        allow_mass_delete: bool,
        /// List and plan only: report what a run would read, delete and relocate, the
        /// conflicts it would meet and whether the mass-delete guard would hold, and
        /// store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not vectorize what the job stored, although the connector has
        /// `vectorize: true` (the daemon does it later).
        #[arg(long)]
        no_vectorize: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write stored files back to a folder.
    #[command(
        after_help = "Examples:\n  tributary restore -c tributary.yaml /scans/reports ./out\n  tributary restore -c tributary.yaml / ./out --at 2026-11-01T12:00:00Z"
    )]
    Restore {
        #[arg(short, long)]
        config: PathBuf,
        /// Path prefix in the target namespace (e.g. `/docs/reports`; `/` for all).
        prefix: String,
        /// Destination folder.
        dest: PathBuf,
        /// Restore as of this moment (RFC 3339, e.g. 2026-11-01T12:00:00Z, or Unix seconds).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-read every referenced chunk and check its hash.
    #[command(
        after_help = "Examples:\n  tributary verify -c tributary.yaml\n  tributary verify -c tributary.yaml --json"
    )]
    Verify {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Delete packs, chunks and manifests that no committed version references, and
    /// repack packs that are mostly unreferenced.
    #[command(
        after_help = "Examples:\n  tributary gc -c tributary.yaml --dry-run\n  tributary gc -c tributary.yaml --max-unused 10% --max-repack-size 10GiB"
    )]
    Gc {
        #[arg(short, long)]
        config: PathBuf,
        /// Objects younger than this are kept (they may belong to a running ingest).
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Report what would be deleted and repacked; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Repack a pack when more than this share of its bytes is unreferenced.
        #[arg(long, default_value = "5%")]
        max_unused: String,
        /// Repack at most this many bytes of packs in one run (e.g. `10GiB`).
        #[arg(long)]
        max_repack_size: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply version retention now: drop superseded versions and tombstones older than
    /// this (the daemon does it hourly with daemon.version_retention); then `gc`
    /// removes their data.
    #[command(
        after_help = "Examples:\n  tributary prune -c tributary.yaml --older-than 30d\n  tributary gc -c tributary.yaml"
    )]
    Prune {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        older_than: String,
    },
    /// Rebuild an empty catalog from the object store alone (its manifests and packs).
    #[command(
        after_help = "Example:\n  tributary rebuild-catalog -c tributary.yaml\n  (the configured catalog must be empty: point catalog.url or state_dir at a new one)"
    )]
    RebuildCatalog {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rewrite a format 1 store (one object per chunk) as format 2 (packs), or with
    /// --encrypt a clear store as an encrypted one (object_store.encryption.key_file).
    /// Stop the daemon first; an interrupted run carries on where it stopped when run
    /// again.
    #[command(
        after_help = "Examples:\n  tributary migrate-store -c tributary.yaml\n  tributary migrate-store -c tributary.yaml --encrypt"
    )]
    MigrateStore {
        #[arg(short, long)]
        config: PathBuf,
        /// Seal everything the store holds with the configured key file: content is
        /// read back, cut and named with the store's keys, written sealed, and the clear
        /// objects deleted.
        #[arg(long)]
        encrypt: bool,
        #[arg(long)]
        json: bool,
    },
    /// Connectors, recent jobs and failed items, from the catalog (daemon running or not).
    #[command(
        after_help = "Examples:\n  tributary status -c tributary.yaml\n  tributary status -c tributary.yaml --jobs 30"
    )]
    Status {
        #[arg(short, long)]
        config: PathBuf,
        /// How many recent jobs to show.
        #[arg(long, default_value_t = 10)]
        jobs: i64,
    },
    /// Conflicts waiting for an operator (resolve them with `ctl resolve` or the API).
    #[command(
        after_help = "Examples:\n  tributary conflicts -c tributary.yaml\n  tributary conflicts -c tributary.yaml --connector scans --all --json"
    )]
    Conflicts {
        #[arg(short, long)]
        config: PathBuf,
        /// Only conflicts involving this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Include resolved conflicts.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Internal: a text-extraction worker process, started by the daemon for one file
    /// (a request and the bytes on stdin, the text on stdout).
    #[command(hide = true)]
    ExtractWorker {
        /// Address-space limit in bytes.
        #[arg(long)]
        memory: u64,
        /// CPU-time limit in seconds.
        #[arg(long)]
        cpu_seconds: u64,
    },
    /// Search the documents of vectorized connectors by meaning: directly on the
    /// catalog and the vector store with the configured embedder (the daemon running
    /// or not), or through the running daemon's API when a token is given.
    #[command(
        after_help = "Examples:\n  tributary search -c tributary.yaml 'how often is the filter cleaned'\n  tributary search -c tributary.yaml -k 3 --connector manuals --path-prefix /manuals/pumps 'filter cleaning'\n  tributary search -c tributary.yaml --token-file /etc/tributary/api-token --json 'filter cleaning'"
    )]
    Search {
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        auth: TokenArgs,
        /// Number of passages to return.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Only this connector's documents.
        #[arg(long)]
        connector: Option<String>,
        /// Only documents under this path.
        #[arg(long)]
        path_prefix: Option<String>,
        /// Only documents readable by this principal (repeatable): user:<id>,
        /// group:<id>, siteGroup:<id>, anyone, organization.
        #[arg(long)]
        principal: Vec<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        /// What to look for.
        query: String,
    },
    /// Drop the vector index and embed every document again with the configured
    /// embedder (after changing the model). Stop the daemon first.
    #[command(
        after_help = "Example:\n  tributary reindex -c /etc/tributary/tributary.yaml\n  (stop the daemon first: systemctl stop tributary)"
    )]
    Reindex {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Probe the running daemon's liveness endpoint (for container health checks).
    #[command(
        after_help = "Examples:\n  tributary health -c tributary.yaml\n  tributary health -c tributary.yaml --ready"
    )]
    Health {
        #[arg(short, long)]
        config: PathBuf,
        /// Also require /health/ready (catalog and object store reachable).
        #[arg(long)]
        ready: bool,
    },
    /// Catalog tools: `catalog copy` moves an installation's catalog (SQLite to
    /// PostgreSQL, or between servers).
    #[command(
        after_help = "Example:\n  tributary catalog copy --from sqlite:///var/lib/tributary/catalog.db --to postgres://tributary@db.example.com:5432/tributary"
    )]
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Connectors created over the API.
    #[command(
        after_help = "Example:\n  tributary connectors export -c tributary.yaml > connectors.yaml"
    )]
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Print a shell completion script for bash, zsh or fish (the Debian package
    /// installs them).
    #[command(
        after_help = "Examples:\n  tributary completions bash > /etc/bash_completion.d/tributary\n  tributary completions zsh > ~/.zfunc/_tributary\n  tributary completions fish > ~/.config/fish/completions/tributary.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Internal: write the man pages (one per command) into a folder; the package
    /// ships them from packaging/man.
    #[command(hide = true)]
    Man {
        #[arg(long)]
        out: PathBuf,
    },
    /// Ask the running daemon to act, through its API (needs a token).
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml --token-file /etc/tributary/api-token run scans\n  tributary ctl -c tributary.yaml resolve 12 keep_both\n  (the token: --token, --token-file or TRIBUTARY_TOKEN)"
    )]
    Ctl {
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        auth: TokenArgs,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Bearer token (also TRIBUTARY_TOKEN).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Copy every row of a catalog into an empty one and check the counts (items,
    /// versions, chunks, jobs, conflicts, the change feed, passages, checkpoints): an
    /// installation moves without re-ingesting a byte. The source may be in use (it is
    /// read as of one moment); point the daemon at the destination afterwards. A
    /// PostgreSQL password comes from the password file, PGPASSWORD or ~/.pgpass.
    #[command(
        after_help = "Example:\n  tributary catalog copy --from sqlite:///var/lib/tributary/catalog.db --to postgres://tributary@db.example.com:5432/tributary --to-password-file /etc/tributary/pg-password"
    )]
    Copy {
        /// `sqlite://PATH` (e.g. sqlite:///var/lib/tributary/catalog.db) or
        /// `postgres://USER@HOST:PORT/DB`.
        #[arg(long)]
        from: String,
        /// The destination, as --from; an empty database (its schema is created).
        #[arg(long)]
        to: String,
        /// A file holding the password of --from's PostgreSQL user.
        #[arg(long)]
        from_password_file: Option<PathBuf>,
        /// A file holding the password of --to's PostgreSQL user.
        #[arg(long)]
        to_password_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectorsCommand {
    /// Print the connectors created over the API as the `connectors:` section of a
    /// configuration file, for keeping them in git. Secrets are never printed: a
    /// connector that has some says so in a comment.
    #[command(
        after_help = "Examples:\n  tributary connectors export -c tributary.yaml > connectors.yaml\n  tributary connectors export -c tributary.yaml --id scans"
    )]
    Export {
        #[arg(short, long)]
        config: PathBuf,
        /// Only this connector.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CtlAction {
    /// Create a connector from a YAML file holding one connector as it is written
    /// under `connectors:` (`-`: standard input).
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml add scans.yaml\n  tributary ctl -c tributary.yaml add - < scans.yaml"
    )]
    Add { file: PathBuf },
    /// Edit a connector created over the API in $VISUAL or $EDITOR; it is replaced
    /// only if nobody changed it meanwhile.
    #[command(after_help = "Example:\n  tributary ctl -c tributary.yaml edit scans")]
    Edit { connector: String },
    /// Delete a connector created over the API; what it stored is kept unless
    /// --delete-data.
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml delete scans\n  tributary ctl -c tributary.yaml delete scans --delete-data --allow-mass-delete"
    )]
    Delete {
        connector: String,
        /// Delete its data too: every stored item gets a tombstone (the change feed
        /// says so; a restore as of an earlier moment still sees it).
        #[arg(long)]
        delete_data: bool,
        /// With --delete-data: deleting more than the connector's max_delete_percent
        /// of its items is meant.
        #[arg(long, requires = "delete_data")]
        allow_mass_delete: bool,
    },
    /// Reach a connector's source (log-on, share or site, the root listed), or that of
    /// the connector in `--file`, without storing anything.
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml test scans\n  tributary ctl -c tributary.yaml test --file new-share.yaml"
    )]
    Test {
        connector: Option<String>,
        #[arg(long, conflicts_with = "connector")]
        file: Option<PathBuf>,
    },
    /// Queue a job now.
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml run scans\n  tributary ctl -c tributary.yaml run scans --full --dry-run"
    )]
    Run {
        connector: String,
        #[arg(long)]
        full: bool,
        /// List and plan only: the job stores nothing; its progress
        /// (`GET /api/v1/jobs/{id}`) says what a real run would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Pause a connector: no job of it starts (scheduled, watched or asked for) until
    /// it is resumed.
    #[command(after_help = "Example:\n  tributary ctl -c tributary.yaml pause scans")]
    Pause { connector: String },
    /// Resume a paused connector.
    #[command(after_help = "Example:\n  tributary ctl -c tributary.yaml resume scans")]
    Resume { connector: String },
    /// Cancel a queued or running job, by its id (`tributary status` shows them).
    #[command(after_help = "Example:\n  tributary ctl -c tributary.yaml cancel 42")]
    Cancel { job: i64 },
    /// Make an instance claim no new job (its running jobs finish; queued jobs go to
    /// the other instances), e.g. before an upgrade. Default: the instance the
    /// configuration's API address reaches.
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml drain\n  tributary ctl -c tributary.yaml drain node-b"
    )]
    Drain { instance: Option<String> },
    /// Let a drained instance claim jobs again.
    #[command(after_help = "Example:\n  tributary ctl -c tributary.yaml undrain node-b")]
    Undrain { instance: Option<String> },
    /// Re-read the configuration file.
    #[command(
        after_help = "Example:\n  tributary ctl -c tributary.yaml reload\n  (systemctl reload tributary does the same)"
    )]
    Reload,
    /// Resolve a conflict: keep_source, keep_existing, keep_both (claims and torn
    /// reads), allow or reject (mass deletes).
    #[command(
        after_help = "Examples:\n  tributary ctl -c tributary.yaml resolve 12 keep_both\n  tributary ctl -c tributary.yaml resolve 13 allow"
    )]
    Resolve { conflict: i64, resolution: String },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a new key file (mode 0600; an existing file is never overwritten).
    #[command(after_help = "Example:\n  tributary key generate --out /etc/tributary/store.key")]
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// The key files that open the store, by id.
    #[command(after_help = "Example:\n  tributary key list -c tributary.yaml")]
    List {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Let another key file open the store too (an operator's recovery key, say). The
    /// file is created when it does not exist.
    #[command(
        after_help = "Example:\n  tributary key add -c tributary.yaml --new-key-file /root/recovery.key"
    )]
    Add {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        new_key_file: PathBuf,
    },
    /// Stop a key file from opening the store (the last one is never removed).
    #[command(after_help = "Example:\n  tributary key remove -c tributary.yaml 3f2a9c01")]
    Remove {
        #[arg(short, long)]
        config: PathBuf,
        /// Its id, as `key list` shows it.
        id: String,
    },
    /// Replace the configured key file with a new one (created when it does not
    /// exist): the store's data key is re-wrapped, no data is rewritten. Point
    /// object_store.encryption.key_file at the new file afterwards.
    #[command(
        after_help = "Example:\n  tributary key rotate -c tributary.yaml --new-key-file /etc/tributary/store-2027.key"
    )]
    Rotate {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the configuration file.
    #[command(after_help = "Example:\n  tributary config schema > tributary.schema.json")]
    Schema,
    /// Print the configuration reference (Markdown: every key, its type and what it
    /// does; docs/configuration.md is this output).
    #[command(after_help = "Example:\n  tributary config reference > docs/configuration.md")]
    Reference,
    /// Print the error-code catalog (Markdown: every API error code with its status,
    /// meaning and fix, and the WebSocket close codes; docs/errors.md is this output).
    #[command(after_help = "Example:\n  tributary config errors > docs/errors.md")]
    Errors,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The examples of a help text: its lines that are `tributary …` commands, cut
    /// before a shell redirection or pipe.
    fn examples(after_help: &str) -> Vec<String> {
        after_help
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("tributary "))
            .map(|l| {
                [" > ", " < ", " | ", " && "]
                    .iter()
                    .filter_map(|sep| l.find(sep))
                    .min()
                    .map_or(l, |i| &l[..i])
                    .to_string()
            })
            .collect()
    }

    /// Whether `words` holds `path`'s words in order (`tributary ctl run` in
    /// `tributary ctl -c x run scans`).
    fn names(path: &str, words: &[String]) -> bool {
        let mut rest = words.iter();
        path.split(' ').all(|w| rest.any(|x| x == w))
    }

    #[test]
    fn every_command_says_what_it_does_with_an_example_that_parses() {
        let mut stack = vec![("tributary".to_string(), Cli::command())];
        let mut checked = 0;
        while let Some((path, cmd)) = stack.pop() {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
            if path == "tributary" {
                continue;
            }
            assert!(cmd.get_about().is_some(), "`{path}` has no description");
            let after = cmd
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let examples = examples(&after);
            assert!(!examples.is_empty(), "`{path} --help` has no example");
            let mut own = false;
            for example in examples {
                let words = shlex::split(&example).expect("shell words");
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("`{path}`: the example `{example}` does not parse: {e}");
                }
                own |= names(&path, &words);
            }
            assert!(own, "`{path}`: no example runs `{path}` itself");
            checked += 1;
        }
        assert!(checked > 40, "only {checked} commands seen");
    }

    #[test]
    fn examples_are_cut_before_redirections() {
        assert_eq!(
            examples(
                "Examples:\n  tributary completions bash > x\n  (a note)\n  tributary a - < y | z"
            ),
            ["tributary completions bash", "tributary a -"]
        );
        let w = |s: &str| shlex::split(s).unwrap();
        assert!(names(
            "tributary ctl run",
            &w("tributary ctl -c x run scans")
        ));
        assert!(!names("tributary ctl run", &w("tributary run -c x")));
    }
}
