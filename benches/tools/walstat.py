#!/usr/bin/env python3
"""What each commit wrote: the frames of a SQLite WAL (since its last
reset) grouped by commit and by table or index (`dbstat` names the pages).

    python3 benches/tools/walstat.py DB   (`VERSUS_WALSTAT=1` in `versus`)

Needs the `sqlite3` command-line shell for the page names.
"""
import struct, sys, subprocess, collections
db = sys.argv[1]
wal = db + "-wal"
f = open(wal, 'rb').read()
magic, ver, pgsz, ckseq, salt1, salt2, c1, c2 = struct.unpack('>8I', f[:32])
off = 32
commits = []
cur = []
while off + 24 + pgsz <= len(f):
    pg, commit, s1, s2, k1, k2 = struct.unpack('>6I', f[off:off+24])
    if (s1, s2) != (salt1, salt2):
        break
    cur.append(pg)
    if commit:
        commits.append(cur); cur = []
    off += 24 + pgsz
names = {}
try:
    out = subprocess.run(["sqlite3", "-readonly", db, "SELECT pageno, name FROM dbstat"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        p, n = line.split('|', 1); names[int(p)] = n
except Exception as e:
    print("dbstat:", e)
print(f"page {pgsz} B, {len(commits)} commits, {sum(map(len, commits))} frames, {sum(map(len,commits))/max(1,len(commits)):.1f} frames/commit")
by = collections.Counter()
for c in commits:
    for p in c:
        by[names.get(p, 'page1' if p == 1 else f'?{p}')] += 1
for n, k in by.most_common():
    print(f"  {n:30} {k:6} frames = {k/max(1,len(commits)):.2f}/commit")
# `WALSTAT_COMMITS=1`: each commit's pages by table, in order (which
# writes made a commit of their own).
import os
if os.environ.get("WALSTAT_COMMITS"):
    for i, c in enumerate(commits):
        tables = collections.Counter(names.get(p, 'page1' if p == 1 else f'?{p}') for p in c)
        print(f"  commit {i:3}: " + ", ".join(f"{n}×{k}" if k > 1 else n for n, k in sorted(tables.items())))
