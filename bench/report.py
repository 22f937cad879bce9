#!/usr/bin/env python3
"""Turns bench/out/results.tsv into the side-by-side table with ratios."""
import csv
import sys

res, corpus, s1t, s1c, s1r, s2t, s2c, s2r, s1e, s2e = sys.argv[1], *map(int, sys.argv[2:])
rows = {}
for r in csv.DictReader(open(res), delimiter="\t"):
    rows[(r["phase"], r["tool"])] = r

def g(phase, tool, k):
    return float(rows[(phase, tool)][k])

mib = 1 << 20
print(f"corpus v1: {corpus / mib:.0f} MiB")
print(f"{'phase':10} {'tool':10} {'wall s':>8} {'cpu s':>8} {'RSS MiB':>8}")
for (phase, tool), r in rows.items():
    print(f"{phase:10} {tool:10} {float(r['wall_s']):8.2f} {float(r['cpu_s']):8.2f} {int(r['maxrss_kb']) / 1024:8.1f}")
print()
print(f"stored after v1 (MiB): tributary {s1t / mib:.1f}  encrypted {s1e / mib:.1f}  rclone {s1c / mib:.1f}  restic {s1r / mib:.1f}")
print(f"v2 increment (MiB):    tributary {(s2t - s1t) / mib:.1f}  encrypted {(s2e - s1e) / mib:.1f}  rclone {(s2c - s1c) / mib:.1f}  restic {(s2r - s1r) / mib:.1f}")
print()
def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"
print("ratios (tributary / peer; lower is better):")
print(f"  cold ingest wall      vs rclone copy : {ratio(g('cold', 'tributary', 'wall_s'), g('cold', 'rclone', 'wall_s'))}  (bar <= 0.7x)")
print(f"  cold ingest wall      vs restic      : {ratio(g('cold', 'tributary', 'wall_s'), g('cold', 'restic', 'wall_s'))}")
print(f"  cold ingest encrypted vs rclone copy : {ratio(g('cold', 'trib-enc', 'wall_s'), g('cold', 'rclone', 'wall_s'))}  (bar <= 0.8x)")
print(f"  encryption's cost     (cold wall)    : {ratio(g('cold', 'trib-enc', 'wall_s'), g('cold', 'tributary', 'wall_s'))} of the clear ingest  (bar <= 1.10x)")
print(f"  encrypted bytes       vs restic      : {ratio(s1e, s1r)}; v2 increment {ratio(s2e - s1e, s2r - s1r)}")
print(f"  cold ingest CPU       vs rclone/restic: {ratio(g('cold', 'tributary', 'cpu_s'), g('cold', 'rclone', 'cpu_s'))} / {ratio(g('cold', 'tributary', 'cpu_s'), g('cold', 'restic', 'cpu_s'))}")
print(f"  bytes stored after v1 vs restic      : {ratio(s1t, s1r)}  (bar <= 1.0x)")
print(f"  v2 increment          vs restic      : {ratio(s2t - s1t, s2r - s1r)}  (bar <= 1.0x)")
print(f"  no-change rerun wall  vs restic      : {ratio(g('nochange', 'tributary', 'wall_s'), g('nochange', 'restic', 'wall_s'))}  (bar <= 0.5x)")
print(f"  no-change rerun wall  vs rclone      : {ratio(g('nochange', 'tributary', 'wall_s'), g('nochange', 'rclone', 'wall_s'))}")
print(f"  peak RSS (cold)       vs restic      : {ratio(g('cold', 'tributary', 'maxrss_kb'), g('cold', 'restic', 'maxrss_kb'))}  (bar <= 0.5x)")
if ("restore", "tributary") in rows:
    print(f"  restore of the corpus vs restic      : {ratio(g('restore', 'tributary', 'wall_s'), g('restore', 'restic', 'wall_s'))}  (bar <= 1.0x)")
    print(f"  restore, encrypted    vs restic      : {ratio(g('restore', 'trib-enc', 'wall_s'), g('restore', 'restic', 'wall_s'))}  (bar <= 1.0x; restic encrypts too)")
    if ("restore", "restic+sync") in rows:
        # tributary's restore ends with its files on disk (syncfs); restic's leaves them
        # in the page cache: the same durability is restic's restore followed by `sync`
        print(f"  restore vs restic + sync (on disk)   : {ratio(g('restore', 'tributary', 'wall_s'), g('restore', 'restic+sync', 'wall_s'))}")
        print(f"  restore, encrypted, vs restic + sync : {ratio(g('restore', 'trib-enc', 'wall_s'), g('restore', 'restic+sync', 'wall_s'))}")
import os
objects = os.path.join(os.path.dirname(res), "objects.tsv")
if os.path.exists(objects):
    files, ot, oc, orr = map(int, open(objects).read().split())
    print(f"  objects after cold    : tributary {ot}, rclone {oc}, restic {orr} for {files} files: tributary 1/{files / max(ot, 1):.0f} of the file count  (bar <= 1/20)")
if ("big", "tributary") in rows:
    print(f"  peak RSS, one 4 GiB file: {g('big', 'tributary', 'maxrss_kb') / 1024:.0f} MiB (cold corpus: {g('cold', 'tributary', 'maxrss_kb') / 1024:.0f} MiB)")
