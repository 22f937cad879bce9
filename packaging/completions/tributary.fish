# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tributary_global_optspecs
    string join \n log= h/help V/version
end

function __fish_tributary_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tributary_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tributary_using_subcommand
    set -l cmd (__fish_tributary_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tributary -n "__fish_tributary_needs_command" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_needs_command" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_needs_command" -s V -l version -d 'Print version'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "run" -d 'Run the daemon: schedules, watches, the admin API'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "check" -d 'Validate a configuration file (offline unless --connect)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "migrate" -d 'Apply the catalog\'s pending schema migrations (`run` applies them at start too)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "config" -d 'Configuration helpers'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "key" -d 'Key files of an encrypted store (object_store.encryption.key_file)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "once" -d 'Run one job of a connector in the foreground'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "restore" -d 'Write stored files back to a folder'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "verify" -d 'Re-read every referenced chunk and check its hash'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "gc" -d 'Delete packs, chunks and manifests that no committed version references, and repack packs that are mostly unreferenced'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "prune" -d 'Apply version retention now: drop superseded versions and tombstones older than this (the daemon does it hourly with daemon.version_retention); then `gc` removes their data'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "rebuild-catalog" -d 'Rebuild an empty catalog from the object store alone (its manifests and packs)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "migrate-store" -d 'Rewrite a format 1 store (one object per chunk) as format 2 (packs), or with --encrypt a clear store as an encrypted one (object_store.encryption.key_file). Stop the daemon first; an interrupted run carries on where it stopped when run again'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "status" -d 'Connectors, recent jobs and failed items, from the catalog (daemon running or not)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "conflicts" -d 'Conflicts waiting for an operator (resolve them with `ctl resolve` or the API)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "extract-worker" -d 'Internal: a text-extraction worker process, started by the daemon for one file (a request and the bytes on stdin, the text on stdout)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "search" -d 'Search the documents of vectorized connectors by meaning: directly on the catalog and the vector store with the configured embedder (the daemon running or not), or through the running daemon\'s API when a token is given'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "reindex" -d 'Drop the vector index and embed every document again with the configured embedder (after changing the model). Stop the daemon first'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "health" -d 'Probe the running daemon\'s liveness endpoint (for container health checks)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "catalog" -d 'Catalog tools: `catalog copy` moves an installation\'s catalog (SQLite to PostgreSQL, or between servers)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "connectors" -d 'Connectors created over the API'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "completions" -d 'Print a shell completion script for bash, zsh or fish (the Debian package installs them)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "man" -d 'Internal: write the man pages (one per command) into a folder; the package ships them from packaging/man'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "ctl" -d 'Ask the running daemon to act, through its API (needs a token)'
complete -c tributary -n "__fish_tributary_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand run" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand run" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand run" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand check" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand check" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand check" -l connect -d 'Also try the object store and every connector'
complete -c tributary -n "__fish_tributary_using_subcommand check" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand migrate" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand migrate" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand migrate" -l dry-run -d 'Only list the migrations that would be applied'
complete -c tributary -n "__fish_tributary_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -f -a "schema" -d 'Print the JSON Schema of the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -f -a "reference" -d 'Print the configuration reference (Markdown: every key, its type and what it does; docs/configuration.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -f -a "errors" -d 'Print the error-code catalog (Markdown: every API error code with its status, meaning and fix, and the WebSocket close codes; docs/errors.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand config; and not __fish_seen_subcommand_from schema reference errors help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from schema" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from schema" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from reference" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from reference" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from errors" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from errors" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "schema" -d 'Print the JSON Schema of the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "reference" -d 'Print the configuration reference (Markdown: every key, its type and what it does; docs/configuration.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "errors" -d 'Print the error-code catalog (Markdown: every API error code with its status, meaning and fix, and the WebSocket close codes; docs/errors.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "generate" -d 'Write a new key file (mode 0600; an existing file is never overwritten)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "list" -d 'The key files that open the store, by id'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "add" -d 'Let another key file open the store too (an operator\'s recovery key, say). The file is created when it does not exist'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "remove" -d 'Stop a key file from opening the store (the last one is never removed)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "rotate" -d 'Replace the configured key file with a new one (created when it does not exist): the store\'s data key is re-wrapped, no data is rewritten. Point object_store.encryption.key_file at the new file afterwards'
complete -c tributary -n "__fish_tributary_using_subcommand key; and not __fish_seen_subcommand_from generate list add remove rotate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from generate" -l out -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from generate" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from list" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from list" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from list" -l json
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from add" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from add" -l new-key-file -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from add" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from remove" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from remove" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from rotate" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from rotate" -l new-key-file -r -F
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from rotate" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Write a new key file (mode 0600; an existing file is never overwritten)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "list" -d 'The key files that open the store, by id'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "add" -d 'Let another key file open the store too (an operator\'s recovery key, say). The file is created when it does not exist'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Stop a key file from opening the store (the last one is never removed)'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Replace the configured key file with a new one (created when it does not exist): the store\'s data key is re-wrapped, no data is rewritten. Point object_store.encryption.key_file at the new file afterwards'
complete -c tributary -n "__fish_tributary_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand once" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand once" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand once" -l incremental -d 'Incremental (changes only, no delete reconciliation) instead of full'
complete -c tributary -n "__fish_tributary_using_subcommand once" -l allow-mass-delete -d 'Allow this job to delete more than the connector\'s max_delete_percent'
complete -c tributary -n "__fish_tributary_using_subcommand once" -l dry-run -d 'List and plan only: report what a run would read, delete and relocate, the conflicts it would meet and whether the mass-delete guard would hold, and store nothing'
complete -c tributary -n "__fish_tributary_using_subcommand once" -l no-vectorize -d 'Do not vectorize what the job stored, although the connector has `vectorize: true` (the daemon does it later)'
complete -c tributary -n "__fish_tributary_using_subcommand once" -l json -d 'Print the summary as JSON on stdout'
complete -c tributary -n "__fish_tributary_using_subcommand once" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand restore" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand restore" -l at -d 'Restore as of this moment (RFC 3339, e.g. 2026-11-01T12:00:00Z, or Unix seconds)' -r
complete -c tributary -n "__fish_tributary_using_subcommand restore" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand restore" -l json
complete -c tributary -n "__fish_tributary_using_subcommand restore" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand verify" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand verify" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand verify" -l json
complete -c tributary -n "__fish_tributary_using_subcommand verify" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand gc" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l grace -d 'Objects younger than this are kept (they may belong to a running ingest)' -r
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l max-unused -d 'Repack a pack when more than this share of its bytes is unreferenced' -r
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l max-repack-size -d 'Repack at most this many bytes of packs in one run (e.g. `10GiB`)' -r
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l dry-run -d 'Report what would be deleted and repacked; change nothing'
complete -c tributary -n "__fish_tributary_using_subcommand gc" -l json
complete -c tributary -n "__fish_tributary_using_subcommand gc" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand prune" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand prune" -l older-than -r
complete -c tributary -n "__fish_tributary_using_subcommand prune" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand prune" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand rebuild-catalog" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand rebuild-catalog" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand rebuild-catalog" -l json
complete -c tributary -n "__fish_tributary_using_subcommand rebuild-catalog" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand migrate-store" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand migrate-store" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand migrate-store" -l encrypt -d 'Seal everything the store holds with the configured key file: content is read back, cut and named with the store\'s keys, written sealed, and the clear objects deleted'
complete -c tributary -n "__fish_tributary_using_subcommand migrate-store" -l json
complete -c tributary -n "__fish_tributary_using_subcommand migrate-store" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand status" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand status" -l jobs -d 'How many recent jobs to show' -r
complete -c tributary -n "__fish_tributary_using_subcommand status" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand status" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -l connector -d 'Only conflicts involving this connector' -r
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -l all -d 'Include resolved conflicts'
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -l json
complete -c tributary -n "__fish_tributary_using_subcommand conflicts" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand extract-worker" -l memory -d 'Address-space limit in bytes' -r
complete -c tributary -n "__fish_tributary_using_subcommand extract-worker" -l cpu-seconds -d 'CPU-time limit in seconds' -r
complete -c tributary -n "__fish_tributary_using_subcommand extract-worker" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand extract-worker" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand search" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand search" -l token -d 'Bearer token (also TRIBUTARY_TOKEN)' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l token-file -d 'A file holding the bearer token' -r -F
complete -c tributary -n "__fish_tributary_using_subcommand search" -s k -d 'Number of passages to return' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l connector -d 'Only this connector\'s documents' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l path-prefix -d 'Only documents under this path' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l principal -d 'Only documents readable by this principal (repeatable): user:<id>, group:<id>, siteGroup:<id>, anyone, organization' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand search" -l json -d 'Print the API\'s JSON'
complete -c tributary -n "__fish_tributary_using_subcommand search" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand reindex" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand reindex" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand reindex" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand health" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand health" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand health" -l ready -d 'Also require /health/ready (catalog and object store reachable)'
complete -c tributary -n "__fish_tributary_using_subcommand health" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and not __fish_seen_subcommand_from copy help" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and not __fish_seen_subcommand_from copy help" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and not __fish_seen_subcommand_from copy help" -f -a "copy" -d 'Copy every row of a catalog into an empty one and check the counts (items, versions, chunks, jobs, conflicts, the change feed, passages, checkpoints): an installation moves without re-ingesting a byte. The source may be in use (it is read as of one moment); point the daemon at the destination afterwards. A PostgreSQL password comes from the password file, PGPASSWORD or ~/.pgpass'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and not __fish_seen_subcommand_from copy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l from -d '`sqlite://PATH` (e.g. sqlite:///var/lib/tributary/catalog.db) or `postgres://USER@HOST:PORT/DB`' -r
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l to -d 'The destination, as --from; an empty database (its schema is created)' -r
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l from-password-file -d 'A file holding the password of --from\'s PostgreSQL user' -r -F
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l to-password-file -d 'A file holding the password of --to\'s PostgreSQL user' -r -F
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -l json
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from copy" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from help" -f -a "copy" -d 'Copy every row of a catalog into an empty one and check the counts (items, versions, chunks, jobs, conflicts, the change feed, passages, checkpoints): an installation moves without re-ingesting a byte. The source may be in use (it is read as of one moment); point the daemon at the destination afterwards. A PostgreSQL password comes from the password file, PGPASSWORD or ~/.pgpass'
complete -c tributary -n "__fish_tributary_using_subcommand catalog; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and not __fish_seen_subcommand_from export help" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and not __fish_seen_subcommand_from export help" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and not __fish_seen_subcommand_from export help" -f -a "export" -d 'Print the connectors created over the API as the `connectors:` section of a configuration file, for keeping them in git. Secrets are never printed: a connector that has some says so in a comment'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and not __fish_seen_subcommand_from export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from export" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from export" -l id -d 'Only this connector' -r
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from export" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from help" -f -a "export" -d 'Print the connectors created over the API as the `connectors:` section of a configuration file, for keeping them in git. Secrets are never printed: a connector that has some says so in a comment'
complete -c tributary -n "__fish_tributary_using_subcommand connectors; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand completions" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand completions" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand man" -l out -r -F
complete -c tributary -n "__fish_tributary_using_subcommand man" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand man" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -s c -l config -r -F
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -l token -d 'Bearer token (also TRIBUTARY_TOKEN)' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -l token-file -d 'A file holding the bearer token' -r -F
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "add" -d 'Create a connector from a YAML file holding one connector as it is written under `connectors:` (`-`: standard input)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "edit" -d 'Edit a connector created over the API in $VISUAL or $EDITOR; it is replaced only if nobody changed it meanwhile'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "delete" -d 'Delete a connector created over the API; what it stored is kept unless --delete-data'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "test" -d 'Reach a connector\'s source (log-on, share or site, the root listed), or that of the connector in `--file`, without storing anything'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "run" -d 'Queue a job now'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "pause" -d 'Pause a connector: no job of it starts (scheduled, watched or asked for) until it is resumed'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "resume" -d 'Resume a paused connector'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "cancel" -d 'Cancel a queued or running job, by its id (`tributary status` shows them)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "drain" -d 'Make an instance claim no new job (its running jobs finish; queued jobs go to the other instances), e.g. before an upgrade. Default: the instance the configuration\'s API address reaches'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "undrain" -d 'Let a drained instance claim jobs again'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "reload" -d 'Re-read the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "resolve" -d 'Resolve a conflict: keep_source, keep_existing, keep_both (claims and torn reads), allow or reject (mass deletes)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and not __fish_seen_subcommand_from add edit delete test run pause resume cancel drain undrain reload resolve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from add" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from edit" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from delete" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from delete" -l delete-data -d 'Delete its data too: every stored item gets a tombstone (the change feed says so; a restore as of an earlier moment still sees it)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from delete" -l allow-mass-delete -d 'With --delete-data: deleting more than the connector\'s max_delete_percent of its items is meant'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from test" -l file -r -F
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from test" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from run" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from run" -l full
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from run" -l dry-run -d 'List and plan only: the job stores nothing; its progress (`GET /api/v1/jobs/{id}`) says what a real run would do'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from pause" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from resume" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from cancel" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from cancel" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from drain" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from undrain" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from undrain" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from reload" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from reload" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from resolve" -l log -d 'Log filter (tracing EnvFilter syntax); also RUST_LOG' -r
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from resolve" -s h -l help -d 'Print help'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create a connector from a YAML file holding one connector as it is written under `connectors:` (`-`: standard input)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Edit a connector created over the API in $VISUAL or $EDITOR; it is replaced only if nobody changed it meanwhile'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a connector created over the API; what it stored is kept unless --delete-data'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "test" -d 'Reach a connector\'s source (log-on, share or site, the root listed), or that of the connector in `--file`, without storing anything'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "run" -d 'Queue a job now'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Pause a connector: no job of it starts (scheduled, watched or asked for) until it is resumed'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Resume a paused connector'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "cancel" -d 'Cancel a queued or running job, by its id (`tributary status` shows them)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Make an instance claim no new job (its running jobs finish; queued jobs go to the other instances), e.g. before an upgrade. Default: the instance the configuration\'s API address reaches'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "undrain" -d 'Let a drained instance claim jobs again'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "reload" -d 'Re-read the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "resolve" -d 'Resolve a conflict: keep_source, keep_existing, keep_both (claims and torn reads), allow or reject (mass deletes)'
complete -c tributary -n "__fish_tributary_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "run" -d 'Run the daemon: schedules, watches, the admin API'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "check" -d 'Validate a configuration file (offline unless --connect)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "migrate" -d 'Apply the catalog\'s pending schema migrations (`run` applies them at start too)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "config" -d 'Configuration helpers'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "key" -d 'Key files of an encrypted store (object_store.encryption.key_file)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "once" -d 'Run one job of a connector in the foreground'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "restore" -d 'Write stored files back to a folder'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "verify" -d 'Re-read every referenced chunk and check its hash'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "gc" -d 'Delete packs, chunks and manifests that no committed version references, and repack packs that are mostly unreferenced'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "prune" -d 'Apply version retention now: drop superseded versions and tombstones older than this (the daemon does it hourly with daemon.version_retention); then `gc` removes their data'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "rebuild-catalog" -d 'Rebuild an empty catalog from the object store alone (its manifests and packs)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "migrate-store" -d 'Rewrite a format 1 store (one object per chunk) as format 2 (packs), or with --encrypt a clear store as an encrypted one (object_store.encryption.key_file). Stop the daemon first; an interrupted run carries on where it stopped when run again'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "status" -d 'Connectors, recent jobs and failed items, from the catalog (daemon running or not)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "conflicts" -d 'Conflicts waiting for an operator (resolve them with `ctl resolve` or the API)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "extract-worker" -d 'Internal: a text-extraction worker process, started by the daemon for one file (a request and the bytes on stdin, the text on stdout)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "search" -d 'Search the documents of vectorized connectors by meaning: directly on the catalog and the vector store with the configured embedder (the daemon running or not), or through the running daemon\'s API when a token is given'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "reindex" -d 'Drop the vector index and embed every document again with the configured embedder (after changing the model). Stop the daemon first'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "health" -d 'Probe the running daemon\'s liveness endpoint (for container health checks)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "catalog" -d 'Catalog tools: `catalog copy` moves an installation\'s catalog (SQLite to PostgreSQL, or between servers)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "connectors" -d 'Connectors created over the API'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "completions" -d 'Print a shell completion script for bash, zsh or fish (the Debian package installs them)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "man" -d 'Internal: write the man pages (one per command) into a folder; the package ships them from packaging/man'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "ctl" -d 'Ask the running daemon to act, through its API (needs a token)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and not __fish_seen_subcommand_from run check migrate config key once restore verify gc prune rebuild-catalog migrate-store status conflicts extract-worker search reindex health catalog connectors completions man ctl help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "schema" -d 'Print the JSON Schema of the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "reference" -d 'Print the configuration reference (Markdown: every key, its type and what it does; docs/configuration.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "errors" -d 'Print the error-code catalog (Markdown: every API error code with its status, meaning and fix, and the WebSocket close codes; docs/errors.md is this output)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "generate" -d 'Write a new key file (mode 0600; an existing file is never overwritten)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "list" -d 'The key files that open the store, by id'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "add" -d 'Let another key file open the store too (an operator\'s recovery key, say). The file is created when it does not exist'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "remove" -d 'Stop a key file from opening the store (the last one is never removed)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "rotate" -d 'Replace the configured key file with a new one (created when it does not exist): the store\'s data key is re-wrapped, no data is rewritten. Point object_store.encryption.key_file at the new file afterwards'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from catalog" -f -a "copy" -d 'Copy every row of a catalog into an empty one and check the counts (items, versions, chunks, jobs, conflicts, the change feed, passages, checkpoints): an installation moves without re-ingesting a byte. The source may be in use (it is read as of one moment); point the daemon at the destination afterwards. A PostgreSQL password comes from the password file, PGPASSWORD or ~/.pgpass'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from connectors" -f -a "export" -d 'Print the connectors created over the API as the `connectors:` section of a configuration file, for keeping them in git. Secrets are never printed: a connector that has some says so in a comment'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "add" -d 'Create a connector from a YAML file holding one connector as it is written under `connectors:` (`-`: standard input)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "edit" -d 'Edit a connector created over the API in $VISUAL or $EDITOR; it is replaced only if nobody changed it meanwhile'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "delete" -d 'Delete a connector created over the API; what it stored is kept unless --delete-data'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "test" -d 'Reach a connector\'s source (log-on, share or site, the root listed), or that of the connector in `--file`, without storing anything'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "run" -d 'Queue a job now'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "pause" -d 'Pause a connector: no job of it starts (scheduled, watched or asked for) until it is resumed'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "resume" -d 'Resume a paused connector'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "cancel" -d 'Cancel a queued or running job, by its id (`tributary status` shows them)'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "drain" -d 'Make an instance claim no new job (its running jobs finish; queued jobs go to the other instances), e.g. before an upgrade. Default: the instance the configuration\'s API address reaches'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "undrain" -d 'Let a drained instance claim jobs again'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "reload" -d 'Re-read the configuration file'
complete -c tributary -n "__fish_tributary_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "resolve" -d 'Resolve a conflict: keep_source, keep_existing, keep_both (claims and torn reads), allow or reject (mass deletes)'
