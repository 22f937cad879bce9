//! The catalog suite: every operation, once on SQLite and once on a real PostgreSQL
//! (a server of the test process on a free loopback port, or `TRIBUTARY_TEST_PG_URL`),
//! asserting the same results on both. The pipeline's tests run whole ingests, gc and
//! rebuilds on both backends; this suite covers the operations they reach only
//! indirectly: jobs, logs, pauses, leases, the change feed, failed items and retries,
//! listings, vectors, store state, and the migration state.

use std::time::Duration;

use tributary_catalog::{
    Catalog, ChunkRef, CommitBatch, Compression, Hash, ItemFilter, JobFilter, LogLine, NewVersion,
    PgSettings,
    api_connectors::{ChangeRefused, ConnectorWrite},
    audit::{self, AuditEntry, AuditFilter},
    now_ns,
    signals::{FleetSignals, Signal},
    vectors::NewPassage,
};

async fn sqlite() -> (Catalog, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open_sqlite(&dir.path().join("catalog.db"))
        .await
        .unwrap();
    (cat, Some(dir))
}

async fn postgres() -> (Catalog, Option<tempfile::TempDir>) {
    let url = tributary_testkit::postgres::fresh_database();
    (
        Catalog::open_postgres(&PgSettings::new(url)).await.unwrap(),
        None,
    )
}

/// `name_sqlite` and `name_postgres` tests running `name(catalog)`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (cat, _dir) = super::sqlite().await;
                    assert_eq!(cat.backend(), "sqlite");
                    super::$name(cat).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (cat, _dir) = super::postgres().await;
                    assert_eq!(cat.backend(), "postgres");
                    super::$name(cat).await;
                }
            )*
        }
    };
}

on_both!(
    migrations_are_applied_once,
    jobs_queue_run_finish_and_list,
    job_logs_are_replaced_whole,
    pauses_survive_and_clear,
    leases_exclude_other_holders,
    commits_feed_the_change_feed_in_order,
    feed_pruning_keeps_the_newest_change,
    failed_items_count_retries_and_clear_on_commit,
    items_list_by_status_prefix_and_page,
    versions_and_content_read_back,
    passages_store_replace_and_search,
    store_state_is_kept_until_cleared,
    instances_register_beat_stop_and_own_their_jobs,
    commits_of_many_files_match_row_by_row_commits,
    a_catalog_copies_into_another_backend_with_every_row,
    a_feed_reader_sees_every_change_once_while_writers_commit_at_once,
    a_connector_has_one_active_job_across_instances,
    instances_claim_queued_jobs_under_leases_that_fence_their_commits,
    concurrent_claims_take_each_queued_job_once,
    the_vectorizer_of_each_instance_indexes_versions_no_other_holds,
    instances_hear_each_others_signals_and_not_their_own,
    the_audit_trail_records_filters_pages_and_prunes,
    api_connectors_are_stored_under_revisions_that_refuse_stale_writes,
);

fn hash(n: u8) -> Hash {
    let mut h = [0u8; 32];
    h[0] = n;
    h[31] = 0xa5;
    h
}

fn chunk(n: u8, size: u64) -> ChunkRef {
    ChunkRef {
        hash: hash(n),
        size,
        stored_size: size / 2,
        compression: Compression::Zstd,
        packed: None,
    }
}

fn file(path: &str, size: u64, chunks: Vec<ChunkRef>) -> NewVersion {
    NewVersion {
        source_id: path.as_bytes().to_vec(),
        path: path.as_bytes().to_vec(),
        size,
        mtime_ns: 1_700_000_000_000_000_000,
        inode: Some(42),
        change_tag: Some(format!("tag-{path}")),
        digest: Some(hash(200)),
        chunks,
        committed_at: now_ns(),
        ..Default::default()
    }
}

fn tombstone(path: &str) -> NewVersion {
    NewVersion {
        source_id: path.as_bytes().to_vec(),
        path: path.as_bytes().to_vec(),
        deleted: true,
        committed_at: now_ns(),
        ..Default::default()
    }
}

async fn commit(cat: &Catalog, connector: &str, versions: &[NewVersion]) -> Vec<i64> {
    cat.commit_batch(&CommitBatch {
        connector,
        job_id: None,
        versions,
        checkpoint: None,
        manifest: None,
        conflicts: &[],
    })
    .await
    .unwrap()
}

async fn migrations_are_applied_once(cat: Catalog) {
    let (at, pending) = cat.migration_state().await.unwrap();
    assert!(pending.is_empty(), "pending after open: {pending:?}");
    let info = cat.info().await.unwrap();
    assert_eq!(info.schema_version, at);
    assert_eq!(info.schema_version, info.binary_schema_version);
    assert!(!info.server_version.is_empty());
    assert!(
        cat.migrate().await.unwrap().is_empty(),
        "a second migrate applies nothing"
    );
    assert!(cat.is_empty().await.unwrap());
    cat.ping().await.unwrap();
}

async fn jobs_queue_run_finish_and_list(cat: Catalog) {
    let a = cat
        .create_queued_job("docs", "incremental", "schedule")
        .await
        .unwrap();
    let queued = cat.job(a).await.unwrap().unwrap();
    assert_eq!(queued.status, "queued");
    assert!(queued.queued_at.is_some() && queued.started_at.is_none());
    cat.start_job(a).await.unwrap();
    assert_eq!(cat.job(a).await.unwrap().unwrap().status, "running");
    cat.finish_job(a, "succeeded", r#"{"files_done":3}"#, 0, None)
        .await
        .unwrap();
    let b = cat.create_job("docs", "full", "api").await.unwrap();
    cat.finish_job(b, "failed", "{}", 2, Some("share unreachable"))
        .await
        .unwrap();
    let c = cat
        .create_job("wiki", "incremental", "start")
        .await
        .unwrap();
    assert!(a < b && b < c, "job ids grow: {a} {b} {c}");

    let done = cat.job(a).await.unwrap().unwrap();
    assert_eq!(done.status, "succeeded");
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    assert!(done.stats.contains("files_done"));
    let failed = cat.job(b).await.unwrap().unwrap();
    assert_eq!(
        (failed.error_count, failed.last_error.as_deref()),
        (2, Some("share unreachable"))
    );
    assert!(cat.job(c + 1000).await.unwrap().is_none());

    assert_eq!(cat.last_job("docs").await.unwrap().unwrap().id, b);
    assert_eq!(cat.last_success("docs").await.unwrap(), done.finished_at);
    assert_eq!(cat.last_success("wiki").await.unwrap(), None);

    let (page, total) = cat
        .list_jobs(
            &JobFilter {
                connector: Some("docs".into()),
                ..Default::default()
            },
            1,
            1,
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(page.len(), 1, "one per page");
    let (page2, _) = cat
        .list_jobs(
            &JobFilter {
                connector: Some("docs".into()),
                ..Default::default()
            },
            2,
            1,
        )
        .await
        .unwrap();
    assert_ne!(page[0].id, page2[0].id, "pages do not overlap");
    let (failed_only, n) = cat
        .list_jobs(
            &JobFilter {
                status: Some("failed".into()),
                ..Default::default()
            },
            1,
            50,
        )
        .await
        .unwrap();
    assert_eq!((n, failed_only[0].id), (1, b));
    let (future, n) = cat
        .list_jobs(
            &JobFilter {
                since: Some(now_ns() + 3_600_000_000_000),
                ..Default::default()
            },
            1,
            50,
        )
        .await
        .unwrap();
    assert_eq!((n, future.len()), (0, 0));

    let counts = cat.job_status_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![
            ("failed".to_string(), 1),
            ("running".into(), 1),
            ("succeeded".into(), 1)
        ]
    );
    // a restart: what was running is interrupted, per connector; what is queued
    // stays queued (any instance claims it)
    let q = cat
        .create_queued_job("mail", "incremental", "api")
        .await
        .unwrap();
    assert_eq!(
        cat.interrupt_unfinished_jobs(Duration::from_secs(30))
            .await
            .unwrap(),
        vec!["wiki".to_string()]
    );
    assert_eq!(cat.job(c).await.unwrap().unwrap().status, "interrupted");
    assert_eq!(cat.job(q).await.unwrap().unwrap().status, "queued");
    assert!(
        cat.interrupt_unfinished_jobs(Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn job_logs_are_replaced_whole(cat: Catalog) {
    let id = cat.create_job("docs", "incremental", "api").await.unwrap();
    let line = |at, level: &str, message: &str| LogLine {
        at,
        level: level.into(),
        message: message.into(),
    };
    cat.write_job_log(
        id,
        &[
            line(1, "info", "listing"),
            line(2, "warn", "skipped ünïcode.txt"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(cat.job_log(id).await.unwrap().len(), 2);
    let lines = vec![
        line(1, "info", "listing"),
        line(2, "warn", "skipped ünïcode.txt"),
        line(3, "error", "gone"),
    ];
    cat.write_job_log(id, &lines).await.unwrap();
    assert_eq!(
        cat.job_log(id).await.unwrap(),
        lines,
        "in order, not appended twice"
    );
    assert!(cat.job_log(id + 1).await.unwrap().is_empty());
}

async fn pauses_survive_and_clear(cat: Catalog) {
    assert!(cat.paused_connectors().await.unwrap().is_empty());
    cat.set_paused("docs", true).await.unwrap();
    cat.set_paused("wiki", true).await.unwrap();
    cat.set_paused("wiki", false).await.unwrap();
    let paused = cat.paused_connectors().await.unwrap();
    assert_eq!(
        paused.into_iter().collect::<Vec<_>>(),
        vec!["docs".to_string()]
    );
    // a commit of a paused connector keeps it paused
    commit(&cat, "docs", &[file("a.txt", 10, vec![chunk(1, 10)])]).await;
    assert!(cat.paused_connectors().await.unwrap().contains("docs"));
}

async fn leases_exclude_other_holders(cat: Catalog) {
    let long = Duration::from_secs(60);
    assert!(cat.try_lock("gc", "a", long).await.unwrap());
    assert!(!cat.try_lock("gc", "b", long).await.unwrap(), "held by a");
    assert!(cat.try_lock("gc", "a", long).await.unwrap(), "a renews");
    assert_eq!(cat.lock_holder("gc").await.unwrap().as_deref(), Some("a"));
    assert!(
        !cat.take_lock_from("gc", "c", "b", long).await.unwrap(),
        "c does not hold it"
    );
    assert!(cat.take_lock_from("gc", "a", "b", long).await.unwrap());
    assert_eq!(cat.lock_holder("gc").await.unwrap().as_deref(), Some("b"));
    cat.unlock("gc", "a").await.unwrap();
    assert_eq!(
        cat.lock_holder("gc").await.unwrap().as_deref(),
        Some("b"),
        "only its holder unlocks"
    );
    cat.unlock("gc", "b").await.unwrap();
    assert_eq!(cat.lock_holder("gc").await.unwrap(), None);
    // an expired lease is anyone's
    assert!(
        cat.try_lock("scrub", "a", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(cat.try_lock("scrub", "b", long).await.unwrap());
    assert_eq!(
        cat.lock_holder("scrub").await.unwrap().as_deref(),
        Some("b")
    );
}

async fn commits_feed_the_change_feed_in_order(cat: Catalog) {
    assert_eq!(cat.latest_change().await.unwrap(), 0);
    let first = commit(
        &cat,
        "docs",
        &[
            file("a.txt", 10, vec![chunk(1, 10)]),
            file("b/c.txt", 20, vec![chunk(2, 20)]),
        ],
    )
    .await;
    let second = commit(&cat, "docs", &[tombstone("a.txt")]).await;
    let mut held = file("held.txt", 5, vec![chunk(3, 5)]);
    held.held = true;
    commit(&cat, "wiki", &[held]).await;
    let all = cat.changes(0, 100).await.unwrap();
    let ops: Vec<(&str, &[u8], i64)> = all
        .iter()
        .map(|c| (c.op.as_str(), c.path.as_slice(), c.version_id))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("upsert", &b"a.txt"[..], first[0]),
            ("upsert", b"b/c.txt", first[1]),
            ("delete", b"a.txt", second[0])
        ],
        "held versions stay out of the feed"
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(cat.latest_change().await.unwrap(), all[2].seq);
    let after = cat.changes(all[0].seq, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, all[1].seq);
    assert!(cat.changes(all[2].seq, 10).await.unwrap().is_empty());
}

async fn feed_pruning_keeps_the_newest_change(cat: Catalog) {
    commit(&cat, "docs", &[file("a.txt", 10, vec![chunk(1, 10)])]).await;
    commit(&cat, "docs", &[file("b.txt", 10, vec![chunk(2, 10)])]).await;
    commit(&cat, "docs", &[file("c.txt", 10, vec![chunk(3, 10)])]).await;
    let newest = cat.latest_change().await.unwrap();
    assert_eq!(cat.pruned_through().await.unwrap(), 0);
    assert_eq!(
        cat.prune_changes(now_ns() + 1_000_000_000).await.unwrap(),
        2
    );
    assert_eq!(cat.pruned_through().await.unwrap(), newest - 1);
    let left = cat.changes(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, newest);
    assert_eq!(
        cat.prune_changes(now_ns()).await.unwrap(),
        0,
        "the newest is always kept"
    );
    commit(&cat, "docs", &[file("d.txt", 10, vec![chunk(4, 10)])]).await;
    assert!(
        cat.latest_change().await.unwrap() > newest,
        "sequence numbers are not reused"
    );
}

async fn failed_items_count_retries_and_clear_on_commit(cat: Catalog) {
    cat.record_item_error(
        "docs",
        b"sid-1",
        b"a.txt",
        None,
        "read: connection reset",
        Some("fp1"),
    )
    .await
    .unwrap();
    cat.record_item_error(
        "docs",
        b"sid-2",
        b"b.txt",
        None,
        "open: access denied",
        None,
    )
    .await
    .unwrap();
    cat.record_item_error(
        "docs",
        b"sid-1",
        b"a.txt",
        None,
        "read: connection reset again",
        Some("fp2"),
    )
    .await
    .unwrap();
    let errors = cat.item_errors("docs").await.unwrap();
    let a = errors.iter().find(|e| e.path == b"a.txt").unwrap();
    assert_eq!(
        (a.retry_count, a.error.as_str()),
        (1, "read: connection reset again")
    );
    let mut failed = cat.failed_source_ids("docs").await.unwrap();
    failed.sort();
    assert_eq!(failed, vec![b"sid-1".to_vec(), b"sid-2".to_vec()]);

    let due = cat.due_retries(3, Duration::ZERO).await.unwrap();
    assert_eq!(
        (due.len(), due[0].connector.as_str(), due[0].count),
        (1, "docs", 2)
    );
    assert!(
        cat.due_retries(3, Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty(),
        "backoff not over"
    );
    let exhausted = cat.exhausted_failures("docs", 1).await.unwrap();
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted.get(&b"sid-1"[..]), Some(&Some("fp2".to_string())));

    let (rows, total) = cat
        .list_items(
            &ItemFilter {
                status: Some("failed".into()),
                ..Default::default()
            },
            1,
            10,
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert!(
        rows.iter()
            .all(|r| r.status == "failed" && r.id.is_none() && r.last_error.is_some())
    );

    // a successful commit of the item clears its error; forgetting clears the other
    let mut v = file("b.txt", 3, vec![chunk(9, 3)]);
    v.source_id = b"sid-2".to_vec();
    commit(&cat, "docs", &[v]).await;
    assert_eq!(
        cat.failed_source_ids("docs").await.unwrap(),
        vec![b"sid-1".to_vec()]
    );
    assert_eq!(
        cat.forget_item_errors("docs", &[b"sid-1".to_vec(), b"nope".to_vec()])
            .await
            .unwrap(),
        1
    );
    assert!(cat.item_errors("docs").await.unwrap().is_empty());
}

async fn items_list_by_status_prefix_and_page(cat: Catalog) {
    let mut versions: Vec<NewVersion> = (0..25)
        .map(|i| {
            file(
                &format!("dir/{i:02}.txt"),
                i,
                vec![chunk(i as u8, i.max(1))],
            )
        })
        .collect();
    versions.push(file("other/x.txt", 7, vec![chunk(100, 7)]));
    commit(&cat, "docs", &versions).await;
    commit(&cat, "docs", &[tombstone("dir/03.txt")]).await;
    commit(&cat, "wiki", &[file("dir/w.txt", 1, vec![chunk(101, 1)])]).await;

    let docs = |status: Option<&str>, prefix: Option<&[u8]>| ItemFilter {
        connector: Some("docs".into()),
        prefix: prefix.map(<[u8]>::to_vec),
        status: status.map(str::to_string),
    };
    let (page1, total) = cat
        .list_items(&docs(None, Some(b"dir/")), 1, 10)
        .await
        .unwrap();
    assert_eq!((total, page1.len()), (25, 10));
    assert_eq!(page1[0].path, "dir/00.txt");
    let (page3, _) = cat
        .list_items(&docs(None, Some(b"dir/")), 3, 10)
        .await
        .unwrap();
    assert_eq!(page3.len(), 5);
    assert_eq!(page3[4].path, "dir/24.txt", "ordered by path");
    let (deleted, n) = cat
        .list_items(&docs(Some("deleted"), None), 1, 10)
        .await
        .unwrap();
    assert_eq!((n, deleted[0].path.as_str()), (1, "dir/03.txt"));
    let (_, n) = cat
        .list_items(&docs(Some("completed"), None), 1, 10)
        .await
        .unwrap();
    assert_eq!(n, 25);
    let (all, n) = cat
        .list_items(&ItemFilter::default(), 1, 100)
        .await
        .unwrap();
    assert_eq!((n, all.len()), (27, 27));

    let states = cat.items("docs").await.unwrap();
    assert_eq!(states.len(), 26);
    let s = states.iter().find(|s| s.path == b"dir/05.txt").unwrap();
    assert_eq!(
        (s.size, s.inode, s.change_tag.as_deref(), s.deleted),
        (5, Some(42), Some("tag-dir/05.txt"), false)
    );
    assert!(
        states
            .iter()
            .find(|s| s.path == b"dir/03.txt")
            .unwrap()
            .deleted
    );
    assert_eq!(
        cat.item_ids_under(b"dir/").await.unwrap().len(),
        25,
        "both connectors, live only"
    );
}

async fn versions_and_content_read_back(cat: Catalog) {
    let chunks = vec![chunk(1, 100), chunk(2, 50), chunk(1, 100)];
    let v1 = commit(&cat, "docs", &[file("a.txt", 250, chunks.clone())]).await[0];
    let mut edited = file("a.txt", 100, vec![chunk(3, 100)]);
    edited.digest = Some(hash(201));
    let v2 = commit(&cat, "docs", &[edited]).await[0];
    assert!(v2 > v1);
    let between = now_ns();
    tokio::time::sleep(Duration::from_millis(2)).await;

    let current = cat
        .current_content("docs", b"a.txt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (current.size, current.chunks.len(), current.digest),
        (100, 1, Some(hash(201)))
    );
    let old = cat.version_content(v1).await.unwrap().unwrap();
    assert_eq!(old.chunks, chunks, "chunk order and repeats kept");
    assert_eq!(old.size, 250);
    let known = cat
        .known_chunks(&[hash(1), hash(2), hash(77)])
        .await
        .unwrap();
    assert_eq!(known.len(), 2);
    assert_eq!(known[&hash(2)].stored_size, 25);

    let id = cat.items("docs").await.unwrap()[0].id;
    let (row, versions) = cat.item(id).await.unwrap().unwrap();
    assert_eq!(
        (row.current_version, row.status.as_str()),
        (Some(v2), "completed")
    );
    assert_eq!(versions.iter().map(|v| v.id).collect::<Vec<_>>().len(), 2);
    let tomb = commit(&cat, "docs", &[tombstone("a.txt")]).await[0];
    assert!(
        cat.version_content(tomb).await.unwrap().is_none(),
        "a tombstone has no content"
    );
    assert!(
        cat.current_content("docs", b"a.txt")
            .await
            .unwrap()
            .is_none()
    );
    let (live, versions_n, chunks_n) = cat.counts().await.unwrap();
    assert_eq!((live, versions_n, chunks_n), (0, 3, 3));
    // restore sets see the path as it was
    assert!(
        cat.restore_set(b"", None).await.unwrap().is_empty(),
        "deleted now"
    );
    let then = cat.restore_set(b"a", Some(between)).await.unwrap();
    assert_eq!(
        (then.len(), then[0].size, then[0].digest),
        (1, 100, Some(hash(201)))
    );
    assert!(
        cat.restore_set(b"b", Some(between))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn passages_store_replace_and_search(cat: Catalog) {
    commit(
        &cat,
        "docs",
        &[
            file("a.txt", 10, vec![chunk(1, 10)]),
            file("b.txt", 10, vec![chunk(2, 10)]),
        ],
    )
    .await;
    let connectors = vec!["docs".to_string()];
    let queue = cat
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap();
    assert_eq!(queue.len(), 2);
    let counts = cat.index_counts(&connectors).await.unwrap();
    assert_eq!((counts.pending, counts.indexed), (2, 0));

    let passage = |t: &str, x: f32| NewPassage {
        location: Some("p1".into()),
        text: t.into(),
        embedding: vec![x, 1.0 - x, 0.25],
    };
    let (ids, removed) = cat
        .store_passages(
            &queue[0],
            "text/plain",
            &[passage("alpha", 0.1), passage("beta", 0.9)],
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ids.len(), removed.len()), (2, 0));
    cat.set_index_state(&queue[1], "failed", Some("extract: bad zip"), None)
        .await
        .unwrap();
    let counts = cat.index_counts(&connectors).await.unwrap();
    assert_eq!((counts.indexed, counts.failed, counts.passages), (1, 1, 2));
    assert!(
        cat.index_queue(&connectors, 3, 0, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "failed retry not yet due"
    );
    assert_eq!(
        cat.index_queue(&connectors, 3, now_ns() + 1, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let vectors = cat.passage_vectors(0, 10).await.unwrap();
    assert_eq!(vectors.len(), 2);
    let emb = cat.passage_embeddings(&ids).await.unwrap();
    assert_eq!(
        emb[0].1,
        vec![0.1, 0.9, 0.25],
        "f32 vectors round-trip exactly"
    );
    let hits = cat.passage_hits(&ids).await.unwrap();
    assert!(hits.iter().all(|h| h.current && h.path == b"a.txt"));
    assert_eq!(
        cat.passage_span().await.unwrap().1,
        ids.iter().max().copied()
    );
    let (_, found) = cat
        .passages_by_digest(&hash(200), -1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.len(), 2, "same digest: passages reusable");

    // the item changes: its passages go stale, and are replaced by the next store
    let mut edited = file("a.txt", 11, vec![chunk(3, 11)]);
    edited.digest = Some(hash(202));
    commit(&cat, "docs", &[edited]).await;
    let task = cat
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.path == b"a.txt")
        .unwrap();
    let (_, removed) = cat
        .store_passages(&task, "text/plain", &[passage("gamma", 0.5)], None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed, vec![queue[0].version_id]);
    assert_eq!(cat.index_counts(&connectors).await.unwrap().passages, 1);
    assert!(
        cat.store_passages(&queue[0], "text/plain", &[passage("old", 0.2)], None)
            .await
            .unwrap()
            .is_none(),
        "not current any more"
    );
    assert_eq!(cat.drop_passages(&[task.version_id]).await.unwrap(), 1);
    assert_eq!(cat.reset_vectors("model-b", 3).await.unwrap() as usize, 0);
    assert_eq!(
        cat.vector_meta("embedder").await.unwrap().as_deref(),
        Some("model-b")
    );
    assert_eq!(cat.vector_meta("dim").await.unwrap().as_deref(), Some("3"));
    assert_eq!(
        cat.index_counts(&connectors).await.unwrap().pending,
        2,
        "all to index again"
    );
}

async fn store_state_is_kept_until_cleared(cat: Catalog) {
    assert_eq!(cat.store_state("rechunk").await.unwrap(), None);
    commit(&cat, "docs", &[file("a.txt", 10, vec![chunk(1, 10)])]).await;
    let page = cat.content_versions_page(0, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    cat.replace_version_chunks(
        &[(page[0].id, vec![chunk(5, 4), chunk(6, 6)])],
        "rechunk",
        page[0].id,
    )
    .await
    .unwrap();
    assert_eq!(
        cat.store_state("rechunk").await.unwrap(),
        Some(page[0].id.to_string())
    );
    let back = cat
        .current_content("docs", b"a.txt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.chunks, vec![chunk(5, 4), chunk(6, 6)]);
    assert_eq!(cat.content_versions_after(page[0].id).await.unwrap(), 0);
    cat.clear_store_state("rechunk").await.unwrap();
    assert_eq!(cat.store_state("rechunk").await.unwrap(), None);
}

async fn instances_register_beat_stop_and_own_their_jobs(cat: Catalog) {
    use tributary_catalog::instance_state;
    cat.register_instance("host-a-1f2e3d", "host-a", "0.1.0")
        .await
        .unwrap();
    let mine = cat.for_instance("host-a-1f2e3d");
    assert_eq!(mine.instance(), Some("host-a-1f2e3d"));
    let ttl = Duration::from_secs(30);
    // queued, a job is anyone's; claimed, it names its instance
    let job = mine.create_queued_job("docs", "full", "api").await.unwrap();
    assert_eq!(cat.job(job).await.unwrap().unwrap().instance, None);
    let claim = |c: Catalog, connector: &'static str| async move {
        c.claim_job(&[connector.to_string()], ttl, None)
            .await
            .unwrap()
            .unwrap()
            .id
    };
    assert_eq!(claim(mine.clone(), "docs").await, job);
    assert_eq!(
        cat.job(job).await.unwrap().unwrap().instance.as_deref(),
        Some("host-a-1f2e3d")
    );
    let other = cat.create_job("other", "full", "cli").await.unwrap();
    assert_eq!(cat.job(other).await.unwrap().unwrap().instance, None);

    let listed = cat.instances().await.unwrap();
    assert_eq!(listed.len(), 1);
    let (row, running) = &listed[0];
    assert_eq!(
        (row.hostname.as_str(), row.version.as_str()),
        ("host-a", "0.1.0")
    );
    assert_eq!(running, &vec![job]);
    assert_eq!(instance_state(row, now_ns(), 30_000_000_000), "up");
    assert_eq!(
        instance_state(row, row.heartbeat_at + 31_000_000_000, 30_000_000_000),
        "down"
    );

    tokio::time::sleep(Duration::from_millis(2)).await;
    cat.heartbeat("host-a-1f2e3d").await.unwrap();
    let (beat, _) = &cat.instances().await.unwrap()[0];
    assert!(beat.heartbeat_at > row.heartbeat_at);

    cat.finish_job(job, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    cat.instance_stopped("host-a-1f2e3d").await.unwrap();
    let (stopped, running) = &cat.instances().await.unwrap()[0];
    assert!(running.is_empty());
    assert_eq!(instance_state(stopped, now_ns(), 30_000_000_000), "stopped");
    cat.register_instance("host-a-1f2e3d", "host-a", "0.2.0")
        .await
        .unwrap();
    let (again, _) = &cat.instances().await.unwrap()[0];
    assert_eq!((again.stopped_at, again.version.as_str()), (None, "0.2.0"));

    // at start an instance interrupts what it left unfinished and what a stopped,
    // silent or renamed instance left — never the jobs of an instance that is up
    cat.register_instance("live", "h", "0").await.unwrap();
    cat.register_instance("gone", "h", "0").await.unwrap();
    cat.instance_stopped("gone").await.unwrap();
    let mut ids = Vec::new();
    for (instance, connector) in [("live", "a"), ("gone", "b"), ("old-name", "c")] {
        cat.create_queued_job(connector, "full", "api")
            .await
            .unwrap();
        ids.push(claim(cat.for_instance(instance), connector).await);
    }
    let [live, gone, renamed] = ids[..] else {
        unreachable!()
    };
    mine.create_queued_job("d", "full", "api").await.unwrap();
    let own = claim(mine.clone(), "d").await;
    assert_eq!(
        mine.interrupt_unfinished_jobs(Duration::from_secs(30))
            .await
            .unwrap(),
        vec!["b", "c", "d", "other"],
        "other: the job above that names no instance"
    );
    let cat = &cat;
    let status = |id| async move { cat.job(id).await.unwrap().unwrap().status };
    assert_eq!(status(live).await, "running");
    for id in [gone, renamed, own] {
        assert_eq!(status(id).await, "interrupted");
    }
}

/// Large batches (set-based on PostgreSQL), a batch naming an item twice (row by row
/// everywhere), held and displaced versions: the same items, references, chunk lists,
/// principals and feed on both backends.
async fn commits_of_many_files_match_row_by_row_commits(cat: Catalog) {
    cat.record_item_error("docs", b"f3", b"f3", None, "locked", None)
        .await
        .unwrap();
    let files: Vec<NewVersion> = (0..300u32)
        .map(|i| {
            let (a, b) = ((i % 7) as u8, 100 + (i % 3) as u8);
            let mut v = file(
                &format!("f{i}"),
                i as u64,
                vec![chunk(a, 70), chunk(b, 30), chunk(a, 70)],
            );
            if i % 5 == 0 {
                v.principals = Some(vec!["user:x".into(), "group:y".into(), "user:x".into()]);
            }
            v
        })
        .collect();
    let ids = commit(&cat, "docs", &files).await;
    assert_eq!(ids.len(), 300);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "numbered in order");

    let items = cat.items("docs").await.unwrap();
    assert_eq!(items.len(), 300);
    let f10 = items.iter().find(|i| i.path == b"f10").unwrap();
    assert_eq!(
        (f10.size, f10.change_tag.as_deref(), f10.deleted, f10.held),
        (10, Some("tag-f10"), false, false)
    );
    assert_eq!(f10.acl.as_deref(), Some("group:y\nuser:x"));
    assert_eq!(items.iter().find(|i| i.path == b"f11").unwrap().acl, None);
    assert_eq!(
        cat.version_principals(ids[10]).await.unwrap(),
        vec!["group:y".to_string(), "user:x".to_string()]
    );
    assert_eq!(
        cat.version_content(ids[12]).await.unwrap().unwrap().chunks,
        vec![chunk(5, 70), chunk(100, 30), chunk(5, 70)],
        "chunk order and repeats kept"
    );
    let cat = &cat;
    let refs = |h| async move { cat.chunk_states(&[h]).await.unwrap()[&h].0 };
    for k in 0..7u8 {
        let n = (0..300u32).filter(|i| (i % 7) as u8 == k).count() as i64;
        assert_eq!(refs(hash(k)).await, 2 * n, "chunk {k}");
    }
    assert_eq!(refs(hash(101)).await, 100);
    assert!(
        cat.item_errors("docs").await.unwrap().is_empty(),
        "a stored file is no longer failing"
    );
    let feed = cat.changes(0, 1000).await.unwrap();
    assert_eq!(feed.len(), 300);
    assert!(
        feed.iter()
            .zip(&ids)
            .enumerate()
            .all(|(i, (c, v))| c.version_id == *v && c.path == format!("f{i}").as_bytes()),
        "the feed in the batch's order"
    );

    // one item twice in a batch: each version sees the one before it
    let twice = [file("f0", 1, vec![chunk(50, 10)]), tombstone("f0")];
    let ids2 = commit(cat, "docs", &twice).await;
    assert_eq!(refs(hash(50)).await, 1);
    let f0 = cat
        .items("docs")
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.path == b"f0")
        .unwrap();
    assert!(f0.deleted);
    let tail: Vec<(String, i64)> = cat
        .changes(feed[299].seq, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.op, c.version_id))
        .collect();
    assert_eq!(
        tail,
        vec![("upsert".into(), ids2[0]), ("delete".into(), ids2[1])]
    );

    // a held claim and a displaced owner in one set-based batch
    let mut held = file("f1", 999, vec![chunk(60, 10)]);
    held.held = true;
    let mut displaced = tombstone("f2");
    displaced.displaced = true;
    let mut other = file("g", 5, vec![chunk(61, 10)]);
    other.connector = Some("wiki".into());
    let ids3 = commit(cat, "docs", &[held, displaced, other]).await;
    let items = cat.items("docs").await.unwrap();
    let f1 = items.iter().find(|i| i.path == b"f1").unwrap();
    assert_eq!((f1.held, f1.deleted, f1.size), (true, false, 999));
    let f2 = items.iter().find(|i| i.path == b"f2").unwrap();
    assert!(f2.held && f2.deleted);
    assert_eq!(
        cat.items("wiki").await.unwrap().len(),
        1,
        "the displaced owner's connector"
    );
    let tail: Vec<i64> = cat
        .changes(feed[299].seq, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.version_id)
        .collect();
    assert_eq!(
        tail,
        vec![ids2[0], ids2[1], ids3[1], ids3[2]],
        "held versions stay out"
    );
}

async fn a_catalog_copies_into_another_backend_with_every_row(cat: Catalog) {
    use tributary_catalog::conflicts::{ClaimRef, NewConflict};
    // a little of everything
    let job = cat.create_job("docs", "full", "api").await.unwrap();
    cat.write_job_log(
        job,
        &[LogLine {
            at: 1,
            level: "INFO".into(),
            message: "listed".into(),
        }],
    )
    .await
    .unwrap();
    let mut a = file("a.txt", 10, vec![chunk(1, 10), chunk(2, 10)]);
    a.principals = Some(vec!["user:x".into()]);
    cat.commit_batch(&CommitBatch {
        connector: "docs",
        job_id: Some(job),
        versions: &[a, file("b.txt", 20, vec![chunk(2, 10)])],
        checkpoint: Some("delta-token-42"),
        manifest: Some("manifests/1"),
        conflicts: &[],
    })
    .await
    .unwrap();
    cat.finish_job(job, "succeeded", "{\"files_done\":2}", 0, None)
        .await
        .unwrap();
    cat.record_item_error("docs", b"c.txt", b"c.txt", Some(job), "locked", None)
        .await
        .unwrap();
    let (conflict, _) = cat
        .raise(NewConflict::open(
            "path_claim",
            "wiki",
            b"a.txt".to_vec(),
            "two claims".into(),
            vec![ClaimRef {
                role: "incoming",
                connector: "wiki".into(),
                source_id: b"a.txt".to_vec(),
                path: b"a.txt".to_vec(),
                fingerprint: Some("fp".into()),
            }],
        ))
        .await
        .unwrap();
    cat.reset_vectors("local test", 3).await.unwrap();
    let connectors = vec!["docs".to_string()];
    let queue = cat
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap();
    cat.store_passages(
        &queue[0],
        "text/plain",
        &[NewPassage {
            location: None,
            text: "alpha".into(),
            embedding: vec![0.5, 0.25, 0.125],
        }],
        None,
    )
    .await
    .unwrap()
    .unwrap();
    cat.replace_version_chunks(&[], "rechunk", 7).await.unwrap();
    cat.prune_changes(0).await.unwrap();
    assert!(
        cat.try_lock("gc", "me", Duration::from_secs(60))
            .await
            .unwrap()
    );
    cat.register_instance("i-1", "h", "0").await.unwrap();
    cat.set_requested_by(job, "alice").await.unwrap();
    cat.record_audit(&audit_entry("alice", "connector.run", 202, 1))
        .await
        .unwrap();

    let (to, _dir) = if cat.backend() == "sqlite" {
        postgres().await
    } else {
        sqlite().await
    };
    let mut heard = Vec::new();
    let report = cat
        .copy_to(&to, |t| heard.push(t.table.clone()))
        .await
        .unwrap();
    assert_eq!(heard.len(), tributary_catalog::copy::TABLES.len());
    for t in &report {
        assert_eq!(t.source_rows, t.copied_rows, "{t:?}");
    }
    let rows = |name: &str| report.iter().find(|t| t.table == name).unwrap().copied_rows;
    for (name, n) in [
        ("items", 2),
        ("versions", 2),
        ("chunks", 2),
        ("version_chunks", 3),
        ("version_principals", 1),
        ("changes", 2),
        ("jobs", 1),
        ("job_logs", 1),
        ("item_errors", 1),
        ("conflicts", 1),
        ("conflict_claims", 1),
        ("passages", 1),
        ("index_state", 1),
        ("store_state", 1),
        ("feed_state", 1),
        ("audit", 1),
    ] {
        assert_eq!(rows(name), n, "{name}");
    }
    assert!(rows("vector_meta") >= 1 && rows("connectors") >= 1);

    // the destination reads as the source did
    assert_eq!(
        to.checkpoint("docs").await.unwrap().as_deref(),
        Some("delta-token-42")
    );
    assert_eq!(
        to.items("docs").await.unwrap(),
        cat.items("docs").await.unwrap()
    );
    assert_eq!(
        to.changes(0, 10).await.unwrap(),
        cat.changes(0, 10).await.unwrap()
    );
    assert_eq!(to.job(job).await.unwrap(), cat.job(job).await.unwrap());
    assert_eq!(
        to.job(job).await.unwrap().unwrap().requested_by.as_deref(),
        Some("alice")
    );
    assert_eq!(
        to.list_audit(&Default::default(), 1, 10).await.unwrap(),
        cat.list_audit(&Default::default(), 1, 10).await.unwrap()
    );
    assert_eq!(
        to.job_log(job).await.unwrap(),
        cat.job_log(job).await.unwrap()
    );
    assert_eq!(
        serde_json::to_value(to.conflict(conflict).await.unwrap()).unwrap(),
        serde_json::to_value(cat.conflict(conflict).await.unwrap()).unwrap()
    );
    assert_eq!(
        to.item_errors("docs").await.unwrap(),
        cat.item_errors("docs").await.unwrap()
    );
    assert_eq!(
        to.index_counts(&connectors).await.unwrap(),
        cat.index_counts(&connectors).await.unwrap()
    );
    assert_eq!(to.passage_vectors(0, 10).await.unwrap().len(), 1);
    assert_eq!(
        to.store_state("rechunk").await.unwrap().as_deref(),
        Some("7")
    );
    assert_eq!(
        to.pruned_through().await.unwrap(),
        cat.pruned_through().await.unwrap()
    );
    assert_eq!(
        to.lock_holder("gc").await.unwrap(),
        None,
        "leases stay with the source"
    );
    assert!(to.instances().await.unwrap().is_empty());

    // new rows are numbered after the copied ones
    let next = commit(&to, "docs", &[file("c.txt", 1, vec![chunk(3, 1)])]).await[0];
    let latest = cat.changes(0, 10).await.unwrap().last().unwrap().version_id;
    assert!(next > latest);
    assert!(to.create_job("docs", "full", "api").await.unwrap() > job);

    // a destination that holds data is refused, and left as it was
    let e = cat.copy_to(&to, |_| {}).await.unwrap_err().to_string();
    assert!(e.contains("already holds data"), "{e}");
    assert_eq!(to.items("docs").await.unwrap().len(), 3);
}

/// Three writers commit at once (on PostgreSQL, on three connections) while a reader
/// follows the feed with a cursor: it must receive every change exactly once, in
/// increasing order — a row numbered before another but committed after it would be
/// passed by the cursor and never seen (the feed lock prevents it).
async fn a_feed_reader_sees_every_change_once_while_writers_commit_at_once(cat: Catalog) {
    const WRITERS: usize = 3;
    const BATCHES: usize = 30;
    const FILES: usize = 8;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let cat = cat.clone();
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    let files: Vec<NewVersion> = (0..FILES)
                        .map(|i| {
                            let n = ((w * 31 + b * 7 + i) % 200) as u8;
                            file(&format!("w{w}/b{b}/f{i}"), 1, vec![chunk(n, 1)])
                        })
                        .collect();
                    commit(&cat, &format!("c{w}"), &files).await;
                }
            })
        })
        .collect();
    let reader = {
        let cat = cat.clone();
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            while seen.len() < WRITERS * BATCHES * FILES {
                let page = cat.changes(cursor, 37).await.unwrap();
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                for c in page {
                    cursor = c.seq;
                    seen.push((c.seq, c.path));
                }
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader missed changes: a cursor passed a row that committed later")
        .unwrap();
    assert!(
        seen.windows(2).all(|p| p[0].0 < p[1].0),
        "in increasing order"
    );
    let paths: std::collections::HashSet<_> = seen.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(paths.len(), WRITERS * BATCHES * FILES, "each change once");
    assert_eq!(cat.latest_change().await.unwrap(), seen.last().unwrap().0);
}

async fn a_connector_has_one_active_job_across_instances(cat: Catalog) {
    use tributary_catalog::CatalogError;
    cat.register_instance("a", "h", "0").await.unwrap();
    cat.register_instance("b", "h", "0").await.unwrap();
    let (a, b) = (cat.for_instance("a"), cat.for_instance("b"));
    let first = a
        .create_queued_job("docs", "full", "schedule")
        .await
        .unwrap();
    // another instance's schedule, an API run, `tributary once`: the first job holds
    for e in [
        b.create_queued_job("docs", "full", "schedule").await,
        b.create_queued_job("docs", "incremental", "api").await,
        b.create_job("docs", "full", "cli").await,
    ] {
        match e {
            Err(CatalogError::JobActive { connector, job }) => {
                assert_eq!((connector.as_str(), job), ("docs", first))
            }
            other => panic!("{other:?}"),
        }
    }
    let other = b
        .create_queued_job("wiki", "full", "schedule")
        .await
        .unwrap();
    a.start_job(first).await.unwrap();
    a.finish_job(first, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    let next = b
        .create_queued_job("docs", "incremental", "api")
        .await
        .unwrap();
    assert!(next > other);

    // a running job whose instance is gone no longer holds the connector for `once`
    let ttl = Duration::from_secs(30);
    let claimed = b.claim_job(&["docs".into()], ttl, None).await.unwrap();
    assert_eq!(claimed.unwrap().id, next);
    b.instance_stopped("b").await.unwrap();
    let once = cat.create_job("docs", "full", "cli").await.unwrap();
    let left = cat.job(next).await.unwrap().unwrap();
    assert_eq!(left.status, "interrupted");
    cat.finish_job(once, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    // a queued job holds it while an instance is up to claim it, not once the fleet
    // is stopped (a stopping instance queues its connectors again)
    let handed_back = a
        .create_queued_job("docs", "incremental", "handoff")
        .await
        .unwrap();
    assert!(matches!(
        cat.create_job("docs", "full", "cli").await,
        Err(CatalogError::JobActive { job, .. }) if job == handed_back
    ));
    a.instance_stopped("a").await.unwrap();
    let once = cat.create_job("docs", "full", "cli").await.unwrap();
    assert_eq!(
        cat.job(handed_back).await.unwrap().unwrap().status,
        "interrupted"
    );
    assert_eq!(cat.job(once).await.unwrap().unwrap().status, "running");
    cat.finish_job(once, "succeeded", "{}", 0, None)
        .await
        .unwrap();

    // two instances starting together see the same latest job: the first to queue on
    // that sight runs, the other's job is not queued even once the first has ended
    let seen = cat.last_job("docs").await.unwrap().map(|j| j.id);
    assert_eq!(seen, Some(once));
    let resumed = a
        .create_queued_job_after("docs", "incremental", "startup", seen)
        .await
        .unwrap();
    a.finish_job(resumed, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    match b
        .create_queued_job_after("docs", "incremental", "startup", seen)
        .await
    {
        Err(CatalogError::JobSuperseded { connector, job }) => {
            assert_eq!((connector.as_str(), job), ("docs", resumed))
        }
        other => panic!("{other:?}"),
    }
    // a connector never seen with a job: a first job anywhere supersedes the sight
    let first = b
        .create_queued_job_after("new", "full", "startup", None)
        .await
        .unwrap();
    assert!(matches!(
        a.create_queued_job_after("new", "full", "startup", None).await,
        Err(CatalogError::JobSuperseded { job, .. }) if job == first
    ));
    let fresh = a
        .create_queued_job_after("fresh", "full", "startup", None)
        .await
        .unwrap();
    a.finish_job(fresh, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    assert!(matches!(
        b.create_queued_job_after("fresh", "full", "startup", None).await,
        Err(CatalogError::JobSuperseded { job, .. }) if job == fresh
    ));
}

/// The fleet's queue: claims, leases, fencing of commits, reaping, cancels, drains and
/// schedule firings.
async fn instances_claim_queued_jobs_under_leases_that_fence_their_commits(cat: Catalog) {
    use tributary_catalog::CatalogError;
    use tributary_catalog::queue::{CancelOutcome, Reaped};
    let ttl = Duration::from_secs(30);
    cat.register_instance("a", "h", "0").await.unwrap();
    cat.register_instance("b", "h", "0").await.unwrap();
    let (a, b) = (cat.for_instance("a"), cat.for_instance("b"));
    let queue = |c: &'static str| {
        let cat = cat.clone();
        async move { cat.create_queued_job(c, "full", "schedule").await.unwrap() }
    };
    let (docs, wiki, mail) = (
        queue("docs").await,
        queue("wiki").await,
        queue("mail").await,
    );
    let both = ["docs".to_string(), "wiki".to_string()];
    let claimed = a.claim_job(&both, ttl, None).await.unwrap().unwrap();
    assert_eq!(
        (
            claimed.id,
            claimed.status.as_str(),
            claimed.instance.as_deref()
        ),
        (docs, "running", Some("a")),
        "the oldest queued job first"
    );
    assert_eq!(
        b.claim_job(&both, ttl, None).await.unwrap().unwrap().id,
        wiki
    );
    assert!(b.claim_job(&both, ttl, None).await.unwrap().is_none());
    // a busier instance leaves fresh jobs to others for a while
    let mail_row = cat.job(mail).await.unwrap().unwrap();
    let only_mail = ["mail".to_string()];
    let fresh = Some(mail_row.queued_at.unwrap() - 1);
    assert!(a.claim_job(&only_mail, ttl, fresh).await.unwrap().is_none());
    assert_eq!(
        a.claim_job(&only_mail, ttl, None)
            .await
            .unwrap()
            .unwrap()
            .id,
        mail
    );

    // fencing: a job's batch commits only under its own, unexpired lease
    let batch = |job| {
        let v = vec![file("/x.txt", 10, vec![chunk(1, 10)])];
        (v, job)
    };
    let try_commit = |c: Catalog, connector: &'static str, job: i64| async move {
        let (v, job) = batch(job);
        c.commit_batch(&CommitBatch {
            connector,
            job_id: Some(job),
            versions: &v,
            checkpoint: None,
            manifest: None,
            conflicts: &[],
        })
        .await
    };
    assert_eq!(try_commit(a.clone(), "docs", docs).await.unwrap().len(), 1);
    match try_commit(b.clone(), "docs", docs).await {
        Err(CatalogError::LeaseLost { job, why }) => {
            assert_eq!((job, why.as_str()), (docs, "instance a runs it"))
        }
        other => panic!("{other:?}"),
    }
    let mut renewed = a.renew_leases(ttl).await.unwrap();
    renewed.sort();
    assert_eq!(renewed, vec![docs, mail]);

    // b stops renewing (frozen): its lease runs out, it can neither renew nor commit
    assert_eq!(
        b.renew_leases(Duration::from_millis(1)).await.unwrap(),
        vec![wiki]
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(b.renew_leases(ttl).await.unwrap().is_empty());
    match try_commit(b.clone(), "wiki", wiki).await {
        Err(CatalogError::LeaseLost { why, .. }) => {
            assert!(why.starts_with("the lease expired"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // any instance reaps it: interrupted, and the connector queued again (at the
    // first poll after the refused commit's transaction is rolled back: until then
    // its row lock makes the reaper leave the row for the next poll)
    let mut reaped = Vec::new();
    for _ in 0..50 {
        reaped = a.reap_expired_leases().await.unwrap();
        if !reaped.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    let Reaped {
        job,
        connector,
        instance,
        next,
    } = reaped[0].clone();
    assert_eq!(
        (job, connector.as_str(), instance.as_deref()),
        (wiki, "wiki", Some("b"))
    );
    let gone = cat.job(wiki).await.unwrap().unwrap();
    assert_eq!(gone.status, "interrupted");
    assert!(
        gone.last_error
            .unwrap()
            .contains("lease of instance b expired")
    );
    let next = cat.job(next.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (
            next.status.as_str(),
            next.kind.as_str(),
            next.trigger.as_str(),
            next.instance
        ),
        ("queued", "incremental", "failover", None)
    );
    assert!(a.reap_expired_leases().await.unwrap().is_empty(), "once");
    // the woken instance's late end does not overwrite the interruption
    b.finish_job(wiki, "succeeded", "{}", 0, None)
        .await
        .unwrap();
    assert_eq!(cat.job(wiki).await.unwrap().unwrap().status, "interrupted");
    match try_commit(b.clone(), "wiki", wiki).await {
        Err(CatalogError::LeaseLost { why, .. }) => assert_eq!(why, "the job is interrupted"),
        other => panic!("{other:?}"),
    }
    let (items, _) = cat
        .list_items(
            &ItemFilter {
                connector: Some("wiki".into()),
                ..Default::default()
            },
            1,
            50,
        )
        .await
        .unwrap();
    assert!(items.is_empty(), "nothing of the fenced job was committed");

    // cancels: a queued job at once, a running one by a flag its instance reads
    assert_eq!(
        b.request_cancel(next.id).await.unwrap(),
        CancelOutcome::Dequeued
    );
    assert_eq!(cat.job(next.id).await.unwrap().unwrap().status, "cancelled");
    assert_eq!(
        b.request_cancel(docs).await.unwrap(),
        CancelOutcome::Requested {
            instance: Some("a".into())
        }
    );
    assert_eq!(
        b.request_cancel(wiki).await.unwrap(),
        CancelOutcome::NotActive
    );
    cat.set_paused("mail", true).await.unwrap();
    let view = a.fleet_view().await.unwrap();
    let active: Vec<(i64, &str, Option<&str>, i64)> = view
        .jobs
        .iter()
        .map(|j| {
            (
                j.id,
                j.status.as_str(),
                j.instance.as_deref(),
                j.cancel_requested,
            )
        })
        .collect();
    assert_eq!(
        active,
        vec![
            (docs, "running", Some("a"), 1),
            (mail, "running", Some("a"), 0)
        ]
    );
    assert!(view.paused.contains("mail") && !view.draining);
    assert_eq!(view.available, vec!["a".to_string(), "b".into()]);
    // a draining instance is told so, and is no longer available to others
    assert!(cat.set_draining("b", true).await.unwrap());
    assert!(!cat.set_draining("nobody", true).await.unwrap());
    assert!(b.fleet_view().await.unwrap().draining);
    assert_eq!(
        a.fleet_view().await.unwrap().available,
        vec!["a".to_string()]
    );

    // progress saved for other instances' APIs
    a.save_progress(&[(docs, r#"{"files_done":7}"#.into())])
        .await
        .unwrap();
    assert!(
        cat.job(docs)
            .await
            .unwrap()
            .unwrap()
            .stats
            .contains("\"files_done\":7")
    );

    // a schedule's firing is claimed once for the fleet
    assert!(a.claim_fire("docs", 1_000).await.unwrap());
    assert!(!b.claim_fire("docs", 1_000).await.unwrap());
    assert!(b.claim_fire("wiki", 1_000).await.unwrap());
    assert_eq!(cat.prune_fires(2_000).await.unwrap(), 2);
    assert!(a.claim_fire("docs", 1_000).await.unwrap());
}

/// Several instances claiming at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL): each
/// queued job is claimed by exactly one of them.
async fn concurrent_claims_take_each_queued_job_once(cat: Catalog) {
    let connectors: Vec<String> = (0..24).map(|i| format!("c{i:02}")).collect();
    for c in &connectors {
        cat.create_queued_job(c, "full", "startup").await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..4 {
        let me = cat.for_instance(&format!("i{i}"));
        let connectors = connectors.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = me
                .claim_job(&connectors, Duration::from_secs(30), None)
                .await
                .unwrap()
            {
                mine.push(j.id);
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (24, 24), "every job once");
    let (running, _) = cat
        .list_jobs(
            &JobFilter {
                status: Some("running".into()),
                ..Default::default()
            },
            1,
            100,
        )
        .await
        .unwrap();
    assert_eq!(running.len(), 24);
    assert!(running.iter().all(|j| j.instance.is_some()));
}

/// Two instances' vectorizers: what one has claimed the other neither lists nor
/// claims, until it is given back (or the claim runs out).
async fn the_vectorizer_of_each_instance_indexes_versions_no_other_holds(cat: Catalog) {
    let files: Vec<NewVersion> = (0..6)
        .map(|i| file(&format!("f{i}.txt"), 10, vec![chunk(i as u8 + 1, 10)]))
        .collect();
    commit(&cat, "docs", &files).await;
    let connectors = vec!["docs".to_string()];
    let (a, b) = (cat.for_instance("a"), cat.for_instance("b"));
    let ttl = Duration::from_secs(600);
    let listed_a = a.index_queue(&connectors, 3, now_ns(), 0, 4).await.unwrap();
    let listed_b = b
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap();
    assert_eq!(
        (listed_a.len(), listed_b.len()),
        (4, 6),
        "nothing claimed yet"
    );
    let held_a = a.claim_index_tasks(listed_a, ttl).await.unwrap();
    assert_eq!(held_a.len(), 4);
    // b listed before a claimed: its claim gets only the two a does not hold
    let held_b = b.claim_index_tasks(listed_b, ttl).await.unwrap();
    let ids = |t: &[tributary_catalog::vectors::IndexTask]| -> Vec<i64> {
        t.iter().map(|t| t.item_id).collect()
    };
    assert_eq!(held_b.len(), 2);
    assert!(ids(&held_b).iter().all(|i| !ids(&held_a).contains(i)));
    // and lists only its own from now on
    let again = b
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&held_b));
    // claiming again what it holds keeps it (a round that lists its own claims)
    assert_eq!(
        a.claim_index_tasks(held_a.clone(), ttl)
            .await
            .unwrap()
            .len(),
        4
    );
    a.release_index_claims(&ids(&held_a)).await.unwrap();
    assert_eq!(
        b.index_queue(&connectors, 3, now_ns(), 0, 10)
            .await
            .unwrap()
            .len(),
        6,
        "given back"
    );
    // a claim that ran out is anyone's
    let short = a
        .claim_index_tasks(held_b.clone(), Duration::ZERO)
        .await
        .unwrap();
    assert!(short.is_empty(), "b holds them");
    b.release_index_claims(&ids(&held_b)).await.unwrap();
    let brief = a
        .claim_index_tasks(held_b.clone(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(brief.len(), 2);
    assert_eq!(b.claim_index_tasks(held_b, ttl).await.unwrap().len(), 2);
    // a handle of no instance claims nothing and keeps every task it lists (it lists
    // none that an instance holds)
    let all = cat
        .index_queue(&connectors, 3, now_ns(), 0, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(cat.claim_index_tasks(all, ttl).await.unwrap().len(), 4);
}

/// The next signal `s` hears, waiting at most `secs`.
async fn heard(s: &mut FleetSignals, secs: u64) -> Option<Signal> {
    tokio::time::timeout(Duration::from_secs(secs), s.next())
        .await
        .ok()
        .map(|r| r.unwrap())
}

async fn instances_hear_each_others_signals_and_not_their_own(cat: Catalog) {
    cat.register_instance("a", "h", "0").await.unwrap();
    cat.register_instance("b", "h", "0").await.unwrap();
    let (a, b) = (cat.for_instance("a"), cat.for_instance("b"));
    let Some(mut at_b) = b.fleet_signals().await.unwrap() else {
        // one process on SQLite: nobody to tell, and telling nobody costs nothing
        assert_eq!(cat.backend(), "sqlite");
        a.create_queued_job("docs", "incremental", "api")
            .await
            .unwrap();
        a.set_paused("docs", true).await.unwrap();
        return;
    };
    assert_eq!(cat.backend(), "postgres");
    // b's own changes are not signalled back to b: the first signal it hears is a's
    b.set_paused("docs", true).await.unwrap();
    b.create_queued_job("wiki", "incremental", "api")
        .await
        .unwrap();
    a.create_queued_job("docs", "incremental", "schedule")
        .await
        .unwrap();
    assert_eq!(heard(&mut at_b, 10).await, Some(Signal::Queued));
    a.set_paused("docs", false).await.unwrap();
    assert_eq!(heard(&mut at_b, 10).await, Some(Signal::Changed));
    assert!(a.set_draining("b", true).await.unwrap());
    assert_eq!(heard(&mut at_b, 10).await, Some(Signal::Changed));
    // an instance that is not known changes nothing and says nothing
    assert!(!a.set_draining("nobody", true).await.unwrap());
    assert_eq!(heard(&mut at_b, 1).await, None);
}

fn audit_entry(principal: &str, action: &str, status: i64, at: i64) -> AuditEntry {
    AuditEntry {
        at,
        source: "api".into(),
        principal: Some(principal.into()),
        role: Some("operator".into()),
        client: "127.0.0.1".into(),
        method: "POST".into(),
        route: "/api/v1/connectors/{id}/runs".into(),
        action: action.into(),
        resource: Some("connectors/docs".into()),
        outcome: audit::outcome_of_status(status as u16).into(),
        status,
        request_id: format!("req-{at}"),
        duration_us: 1500,
    }
}

async fn the_audit_trail_records_filters_pages_and_prunes(cat: Catalog) {
    let a = cat.for_instance("node-a");
    for i in 1..=5 {
        a.record_audit(&audit_entry("alice", "connector.run", 202, i * 10))
            .await
            .unwrap();
    }
    a.record_audit(&audit_entry("bob", "connector.pause", 403, 60))
        .await
        .unwrap();
    let mut anonymous = audit_entry("x", "config.reload", 401, 70);
    anonymous.principal = None;
    anonymous.role = None;
    anonymous.resource = None;
    a.record_audit(&anonymous).await.unwrap();

    let all = AuditFilter::default();
    let (rows, total) = cat.list_audit(&all, 1, 3).await.unwrap();
    assert_eq!(total, 7);
    // newest first, every field as recorded, and the instance that answered
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].at, 70);
    assert_eq!(rows[0].principal, None);
    assert_eq!(rows[0].outcome, "permission_denied");
    assert_eq!(rows[1].principal.as_deref(), Some("bob"));
    assert_eq!(rows[2].action, "connector.run");
    assert_eq!(rows[2].resource.as_deref(), Some("connectors/docs"));
    assert_eq!(rows[2].instance.as_deref(), Some("node-a"));
    assert_eq!(rows[2].duration_us, 1500);
    assert_eq!(rows[2].request_id, "req-50");
    let (page3, _) = cat.list_audit(&all, 3, 3).await.unwrap();
    assert_eq!(page3.iter().map(|r| r.at).collect::<Vec<_>>(), vec![10]);

    let count = |f: AuditFilter| {
        let cat = cat.clone();
        async move { cat.list_audit(&f, 1, 100).await.unwrap().1 }
    };
    assert_eq!(
        count(AuditFilter {
            principal: Some("alice".into()),
            ..Default::default()
        })
        .await,
        5
    );
    assert_eq!(
        count(AuditFilter {
            outcome: Some("permission_denied".into()),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(AuditFilter {
            action: Some("connector.pause".into()),
            resource: Some("connectors/docs".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(AuditFilter {
            since: Some(20),
            until: Some(50),
            ..Default::default()
        })
        .await,
        3,
        "since is inclusive, until exclusive"
    );

    // retention: everything before the cut goes
    assert_eq!(cat.prune_audit(35).await.unwrap(), 3);
    assert_eq!(cat.list_audit(&all, 1, 100).await.unwrap().1, 4);
}

async fn api_connectors_are_stored_under_revisions_that_refuse_stale_writes(cat: Catalog) {
    let w = |spec: &'static str, by: &'static str| ConnectorWrite {
        spec,
        secrets: Some(b"sealed"),
        key_id: Some("k1"),
        by,
    };
    let c = cat
        .insert_api_connector("docs", &w(r#"{"id":"docs"}"#, "alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.revision, 1);
    assert_eq!(c.secrets.as_deref(), Some(&b"sealed"[..]));
    assert_eq!(c.created_by.as_deref(), Some("alice"));
    assert_eq!(
        cat.insert_api_connector("docs", &w("{}", "bob"))
            .await
            .unwrap(),
        Err(ChangeRefused::Exists)
    );
    // a write naming the revision it read goes through once; the second is stale
    let c2 = cat
        .update_api_connector("docs", 1, &w(r#"{"id":"docs","watch":true}"#, "bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.revision, 2);
    assert_eq!(c2.spec, r#"{"id":"docs","watch":true}"#);
    assert_eq!(c2.created_by.as_deref(), Some("alice"));
    assert_eq!(c2.updated_by.as_deref(), Some("bob"));
    assert_eq!(
        cat.update_api_connector("docs", 1, &w("{}", "carol"))
            .await
            .unwrap(),
        Err(ChangeRefused::Stale(2))
    );
    assert_eq!(
        cat.update_api_connector("nope", 1, &w("{}", "carol"))
            .await
            .unwrap(),
        Err(ChangeRefused::NotFound)
    );
    cat.insert_api_connector("alpha", &w("{}", "alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cat.api_connector_revisions().await.unwrap(),
        [("alpha".to_string(), 1), ("docs".to_string(), 2)]
    );
    assert_eq!(
        cat.delete_api_connector("docs", 1).await.unwrap(),
        Err(ChangeRefused::Stale(2))
    );
    cat.delete_api_connector("docs", 2).await.unwrap().unwrap();
    assert_eq!(
        cat.delete_api_connector("docs", 2).await.unwrap(),
        Err(ChangeRefused::NotFound)
    );
    let left = cat.list_api_connectors().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "alpha");
    assert!(cat.get_api_connector("docs").await.unwrap().is_none());
}
