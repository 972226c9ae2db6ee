#!/usr/bin/env python3
"""What each commit wrote: the frames of a SQLite WAL (since its last
reset) grouped by commit and by table or index (`dbstat` names the pages).

    python3 benches/tools/walstat.py DB   (`VERSUS_WALSTAT=1` in `versus`)

Needs the `sqlite3` command-line shell for the page names (run on a copy
of the database and its WAL).
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
    # The page's b-tree type from the frame's own image (page 1: after
    # the 100-byte file header): which commits split, merge or free pages.
    kind = f[off + 24 + (100 if pg == 1 else 0)]
    cur.append((pg, {13: 'leaf', 5: 'interior', 10: 'ileaf', 2: 'iinterior'}.get(kind, 'other')))
    if commit:
        commits.append(cur); cur = []
    off += 24 + pgsz
names = {}
# On a copy: carebridge keeps other SQLite builds (this shell) off its live
# database (src/store/shm.rs); the copy's WAL is recovered on open.
import os, shutil, tempfile
tmp = tempfile.mkdtemp()
try:
    shutil.copy(db, os.path.join(tmp, "c.db"))
    shutil.copy(wal, os.path.join(tmp, "c.db-wal"))
    out = subprocess.run(["sqlite3", os.path.join(tmp, "c.db"), "SELECT pageno, name FROM dbstat"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        p, n = line.split('|', 1); names[int(p)] = n
except Exception as e:
    print("dbstat:", e)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print(f"page {pgsz} B, {len(commits)} commits, {sum(map(len, commits))} frames, {sum(map(len, commits))/max(1,len(commits)):.1f} frames/commit")
by = collections.Counter()
for c in commits:
    for p, _ in c:
        by[names.get(p, 'page1' if p == 1 else f'?{p}')] += 1
for n, k in by.most_common():
    print(f"  {n:30} {k:6} frames = {k/max(1,len(commits)):.2f}/commit")
# `WALSTAT_COMMITS=1`: each commit's pages by table, in order (which
# writes made a commit of their own).
import os
if os.environ.get("WALSTAT_COMMITS"):
    for i, c in enumerate(commits):
        tables = collections.Counter(names.get(p, 'page1' if p == 1 else f'?{p}') + ('' if p == 1 else f'/{k}') for p, k in c)
        print(f"  commit {i:3}: " + ", ".join(f"{n}×{k}" if k > 1 else n for n, k in sorted(tables.items())))
