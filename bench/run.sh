#!/bin/bash
# bench/run.sh: time cumulus against restic and borg on the linux-source tree.
# Run by `make bench`; see bench/README.md for what is measured and why.
#
# Environment:
#   BENCH_DIR     work area (default /var/tmp/cumulus-bench); needs ~20 GB
#   BENCH_ROUNDS  rounds (default 3); medians and spread are over rounds
#   BENCH_LARGE   1 (default) to run the 1 GiB single-file section, 0 to skip
#   BENCH_TOOLS   tools to compare (default "cumulus restic borg")
#   BENCH_TREE    1 (default) to run the linux-source sections, 0 for the
#                 large-file section only
#   BENCH_CUMULUS a cumulus binary to measure instead of building the tree
#   BENCH_MANY    number of empty files of the many-files section (default
#                 1000000, in 1000 directories; 0 skips it): peak memory as
#                 the number of files grows
set -eu -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cumulus-bench}
ROUNDS=${BENCH_ROUNDS:-3}
LARGE=${BENCH_LARGE:-1}
TREEPART=${BENCH_TREE:-1}
MANY=${BENCH_MANY:-1000000}
read -r -a TOOLS <<<"${BENCH_TOOLS:-cumulus restic borg}"
TREE=linux-source-6.1
STAMP=$(date +%Y%m%d-%H%M%S)
RES=$BENCH_DIR/results-$STAMP.txt
RAW=$BENCH_DIR/raw-$STAMP.tsv
W=$BENCH_DIR/work          # everything per round lives here; removed in bulk
LOGS=$BENCH_DIR/logs-$STAMP
BIN=$BENCH_DIR/bin
TIMEF=$BENCH_DIR/time.out
PLAIN=$BENCH_DIR/$TREE.tar
LARGESRC=$BENCH_DIR/large-1g.bin
LARGESIZE=1073741824

export RESTIC_PASSWORD=cumulus-bench BORG_PASSPHRASE=cumulus-bench
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes LC_ALL=C

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "$*" >&2; }

# ---------------------------------------------------------------- setup
need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
[ -f /usr/src/$TREE.tar.xz ] || need+=(linux-source-6.1)
[ -x /usr/bin/time ] || need+=(time)
command -v zstd >/dev/null || need+=(zstd)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (as root: apt-get install -y ${need[*]})"
	say "installing ${need[*]}"
	apt-get install -y "${need[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; } \
		|| die "apt-get install ${need[*]} failed"
fi
CAN_DROP=0
[ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ] && CAN_DROP=1
[ $CAN_DROP = 1 ] || say "bench: warning: not root, cannot drop caches; file creation after bulk deletes may be slow (see README)"

mkdir -p "$BENCH_DIR" "$BIN" "$LOGS"
if [ -n "${BENCH_CUMULUS:-}" ]; then
	say "measuring $BENCH_CUMULUS (not building)"
	cp "$BENCH_CUMULUS" "$BIN/cumulus.new" && mv "$BIN/cumulus.new" "$BIN/cumulus"
else
	say "building (make -j2)"
	(cd "$ROOT" && make -j2 >"$LOGS/build.log" 2>&1) || die "make failed, see $LOGS/build.log"
	# Private copy: others may rebuild the tree while we run.
	# build/cumulus, not the top-level copy: "make BUILD=build-san" (any
	# other build directory) leaves its binary there, newer than build/.
	cp "$ROOT/build/cumulus" "$BIN/cumulus.new" && mv "$BIN/cumulus.new" "$BIN/cumulus"
fi
ln -sf cumulus "$BIN/cumulus-util"
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | wc -l)

drop_caches() {
	sync
	[ $CAN_DROP = 1 ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}
# Read every file under the given paths into the page cache (borg evicts what
# it touches, so every command gets its inputs re-read just before it runs).
warm() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || continue
		tar -cf - "$p" 2>/dev/null | cat >/dev/null || true
	done
}
bytes_of() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# Leftovers of an interrupted run.
if [ -e "$W" ]; then
	say "removing old $W"
	rm -rf "$W"
	drop_caches
fi

if [ ! -s "$PLAIN" ]; then
	say "preparing $PLAIN (once)"
	xz -dc /usr/src/$TREE.tar.xz >"$PLAIN.tmp" && mv "$PLAIN.tmp" "$PLAIN"
fi
TREEBYTES=$(stat -c %s "$PLAIN")

if [ "$LARGE" = 1 ] && [ "$(stat -c %s "$LARGESRC" 2>/dev/null || echo 0)" != $LARGESIZE ]; then
	say "preparing $LARGESRC (once): .debs + linux-source xz, 1 GiB"
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
		cat /var/cache/apt/archives/*.deb /usr/src/$TREE.tar.xz 2>/dev/null || true
	done | head -c $LARGESIZE >"$LARGESRC.tmp" || true
	[ "$(stat -c %s "$LARGESRC.tmp")" = $LARGESIZE ] || die "could not build a 1 GiB large file"
	mv "$LARGESRC.tmp" "$LARGESRC"
fi

# Helpers in python: manifest (for restore verification), large-file edit,
# and the summary table.
cat >"$BIN/manifest.py" <<'EOF'
import hashlib, os, stat, sys
root = sys.argv[1]
out = []
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        p = os.path.join(dp, n)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        m = stat.S_IMODE(st.st_mode)
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            out.append('f %o %d %d %s %s' % (m, st.st_size, int(st.st_mtime), h.hexdigest(), rel))
        elif stat.S_ISLNK(st.st_mode):
            out.append('l %s -> %s' % (rel, os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode):
            out.append('d %o %s' % (m, rel))
        else:
            out.append('o %o %s' % (st.st_mode, rel))
out.sort()
sys.stdout.write('\n'.join(out) + '\n')
EOF
cat >"$BIN/edit_large.py" <<'EOF'
# 10 x 16 KiB overwritten in place at spread offsets, 1 KiB inserted near the start.
import random, sys
r = random.Random(20240601)
with open(sys.argv[1], 'r+b') as f:
    data = bytearray(f.read())
    n = len(data)
    for k in range(10):
        off = (k * n) // 10 + 65536 + k * 4099
        data[off:off + 16384] = r.randbytes(16384)
    data[5000:5000] = r.randbytes(1024)
    f.seek(0)
    f.write(data)
    f.truncate()
EOF
cat >"$BIN/summary.py" <<'EOF'
import statistics, sys
raw, tools = sys.argv[1], sys.argv[2].split()
rows = [l.rstrip('\n').split('\t') for l in open(raw) if l.strip()]
# round step tool rep wall cpu rss_kib bytes rate rc note
# (and steal seconds, in files from 2026-11-29 on)
data = {}
fails = []
for r in rows:
    rnd, step, tool, rep, wall, cpu, rss, byt, rate, rc, note = r[:11]
    d = data.setdefault((step, tool), {}).setdefault(rnd, [])
    d.append(dict(wall=float(wall), cpu=float(cpu), rss=float(rss) / 1024,
                  bytes=float(byt), rate=float(rate) if rate != '-' else None,
                  rc=rc, note=note, steal=float(r[11]) if len(r) > 11 else None))
    if rc != '0' or note.startswith('FAIL'):
        fails.append('round %s %s %s rep %s: exit %s %s' % (rnd, step, tool, rep, rc, note))

def agg(step, tool, key):
    """median over reps within a round, then median and max/min over rounds"""
    per = data.get((step, tool))
    if not per:
        return None
    vals = []
    for rnd in sorted(per):
        v = [x[key] for x in per[rnd] if x[key] is not None]
        if v:
            vals.append(statistics.median(v))
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    return statistics.median(vals), (hi / lo if lo > 0 else float('nan'))

def ratio(step, tool, key):
    a, b = agg(step, tool, key), agg(step, 'restic', key)
    # byte ratios against a near-empty restic figure mean nothing
    if a is None or b is None or b[0] == 0 or (key == 'bytes' and b[0] < 100e3):
        return '     -'
    return '%6.2f' % (a[0] / b[0])

def nrounds(step, tool):
    return len(data.get((step, tool), {}))

def flag(step, tool):
    per = data.get((step, tool), {})
    bad = any(x['rc'] != '0' or x['note'].startswith('FAIL') for v in per.values() for x in v)
    return ' !' if bad else ''

def verified(step, tool):
    per = data.get((step, tool), {})
    notes = [x['note'] for v in per.values() for x in v]
    ok = sum(1 for n in notes if n == 'verified')
    return '%d/%d' % (ok, len(notes))

STEPS = [
    ('initial', 'Initial backup', 'store MB'),
    ('initial-t1', 'Initial backup, cumulus --threads=1 (the default above: one more than the cores)', 'store MB'),
    ('initial-t2', 'Initial backup, cumulus --threads=2', 'store MB'),
    ('nochange', 'No-change backup (median of 3 per round)', 'added MB'),
    ('changed', '1% changed backup', 'added MB'),
    ('restore', 'Restore of the latest (changed) tree into an empty dir', None),
    ('large-initial', 'Large file: initial backup of 1 GiB', 'store MB'),
    ('large-edit', 'Large file: backup after 10 x 16 KiB overwrite + 1 KiB insert', 'added MB'),
    ('large-restore', 'Large file: restore', None),
    ('many', 'Initial backup of many empty files (BENCH_MANY)', 'store MB'),
]
out = []
out.append('Machine limits (median over rounds, spread = max/min)')
for step, label in [('tree-read', 'read tree from page cache (tar | cat)'),
                    ('tar-x', 'tar -x of the plain tarball into a fresh dir'),
                    ('sha256', 'SHA-256, one core (openssl speed)'),
                    ('zstd3', 'zstd -3 -T1, one core, of the cached tarball'),
                    ('zstd3-t2', 'zstd -3 -T2, two cores, the same')]:
    w, c, rt = agg(step, 'machine', 'wall'), agg(step, 'machine', 'cpu'), agg(step, 'machine', 'rate')
    if w is None:
        continue
    out.append('  %-46s %7.2f s wall (x%.2f)  %7.2f s cpu  %8.0f MB/s%s' % (
        label, w[0], w[1], c[0], rt[0] if rt else float('nan'), flag(step, 'machine')))
# What two cores give a CPU-bound compressor on this machine: the ceiling
# to read the --threads=2 against --threads=1 ratio against.
z1, z2 = agg('zstd3', 'machine', 'wall'), agg('zstd3-t2', 'machine', 'wall')
if z1 and z2 and z2[0] > 0:
    out.append('  %-46s %7.2fx' % ('zstd -3: two cores against one (wall)', z1[0] / z2[0]))
out.append('')
for step, label, bcol in STEPS:
    present = [t for t in tools if (step, t) in data]
    if not present:
        continue
    out.append('%s  [rounds: %d]' % (label, max(nrounds(step, t) for t in present)))
    hdr = '  %-8s %8s %6s %6s | %8s %6s %6s | %8s %6s' % (
        'tool', 'wall s', 'spread', 'x rst', 'cpu s', 'spread', 'x rst', 'RSS MiB', 'x rst')
    if bcol:
        hdr += ' | %9s %6s' % (bcol, 'x rst')
    else:
        hdr += ' | %9s' % 'verified'
    if step == 'initial':
        hdr += ' | %9s' % 'local MB'
    hdr += ' | %7s' % 'stolen s'
    out.append(hdr)
    for t in present:
        w, c, m = agg(step, t, 'wall'), agg(step, t, 'cpu'), agg(step, t, 'rss')
        line = '  %-8s %8.2f %6.2f %6s | %8.2f %6.2f %6s | %8.1f %6s' % (
            t, w[0], w[1], ratio(step, t, 'wall'), c[0], c[1], ratio(step, t, 'cpu'),
            m[0], ratio(step, t, 'rss'))
        if bcol:
            b = agg(step, t, 'bytes')
            line += ' | %9.3f %6s' % (b[0] / 1e6, ratio(step, t, 'bytes'))
        else:
            line += ' | %9s' % verified(step, t)
        if step == 'initial':
            s = agg('local-state', t, 'bytes')
            line += ' | %9.2f' % (s[0] / 1e6 if s else float('nan'))
        st = agg(step, t, 'steal')
        line += ' | %8s' % ('%.2f' % st[0] if st else '-')
        out.append(line + flag(step, t))
    out.append('')
# The targets of issue 8, each from the table's medians (the verdict) and
# round by round, so a reader need not redo the arithmetic.
def rounds_of(step, tool, key):
    per = data.get((step, tool), {})
    return {rnd: statistics.median([x[key] for x in v if x[key] is not None])
            for rnd, v in per.items() if any(x[key] is not None for x in v)}

def floor_by_round():
    """(tree-read CPU + one SHA-256 pass over the tarball + zstd -3 CPU) / 2"""
    read, sha, z = (rounds_of('tree-read', 'machine', 'cpu'),
                    rounds_of('sha256', 'machine', 'rate'),
                    rounds_of('zstd3', 'machine', 'cpu'))
    size = rounds_of('tree-read', 'machine', 'bytes')
    return {r: (read[r] + size[r] / 1e6 / sha[r] + z[r]) / 2
            for r in read if r in sha and r in z and r in size and sha[r] > 0}

def target(label, num, den, limit, above=False):
    """num, den: {round: value}; ratio of their medians against limit"""
    common = sorted(set(num) & set(den), key=int)
    if not common or any(den[r] == 0 for r in common):
        return
    med = statistics.median(num[r] for r in common) / statistics.median(den[r] for r in common)
    met = med >= limit if above else med <= limit
    # three decimals: 0.501 must not read as a missed 0.50
    out.append('  %-44s %6.3f  %-4s  by round: %s' % (
        label, med, 'met' if met else 'MISS',
        ' '.join('%.2f' % (num[r] / den[r]) for r in common)))

if ('initial', 'cumulus') in data and ('initial', 'restic') in data:
    out.append('Targets (ratio of the medians, and each round\'s own ratio)')
    W = lambda step, tool='cumulus': rounds_of(step, tool, 'wall')
    target('initial backup <= 0.5 x restic', W('initial'), W('initial', 'restic'), 0.5)
    fl = floor_by_round()
    if fl:
        target('initial backup <= 1.5 x two-core floor', W('initial'), fl, 1.5)
    target('no-change <= 0.15 x restic', W('nochange'), W('nochange', 'restic'), 0.15)
    target('1% changed <= 0.3 x restic', W('changed'), W('changed', 'restic'), 0.3)
    target('restore of the tree <= 0.8 x restic', W('restore'), W('restore', 'restic'), 0.8)
    target('1 GiB restore <= 0.8 x restic', W('large-restore'), W('large-restore', 'restic'), 0.8)
    target('store after initial <= 0.85 x restic', rounds_of('initial', 'cumulus', 'bytes'),
           rounds_of('initial', 'restic', 'bytes'), 0.85)
    for step, _, _ in STEPS:
        if step != 'initial-t1':
            target('peak memory, %s <= 0.25 x restic' % step, rounds_of(step, 'cumulus', 'rss'),
                   rounds_of(step, 'restic', 'rss'), 0.25)
    target('1 GiB edit, bytes added <= 0.5 x restic', rounds_of('large-edit', 'cumulus', 'bytes'),
           rounds_of('large-edit', 'restic', 'bytes'), 0.5)
    two = 'initial-t2' if ('initial-t2', 'cumulus') in data else 'initial'
    target('two threads >= 1.7 x one (initial)', W('initial-t1'), W(two), 1.7, above=True)
    if two != 'initial':
        target('  (the default, cores + 1, against one)', W('initial-t1'), W('initial'), 1.7,
               above=True)
    stc, str_ = rounds_of('initial', 'cumulus', 'steal'), rounds_of('initial', 'restic', 'steal')
    if stc and str_:
        out.append('  CPU time stolen by the hypervisor during the initial backup, by round:')
        out.append('    cumulus %s s; restic %s s' % (
            ' '.join('%.2f' % stc[r] for r in sorted(stc, key=int)),
            ' '.join('%.2f' % str_[r] for r in sorted(str_, key=int))))
    out.append('')
if fails:
    out.append('Failures (see the logs directory):')
    out += ['  ' + f for f in fails]
    out.append('')
print('\n'.join(out))
EOF

# ---------------------------------------------------------------- measuring
ROUND=0
# CPU time the hypervisor gave other guests while ours were runnable
# ("steal", all CPUs, in ticks): on a shared machine a run that lost much
# is slow for reasons that are not the tool's.  Recorded, never subtracted.
CLK_TCK=$(getconf CLK_TCK)
steal_ticks() { awk '/^cpu / { print $9 + 0 }' /proc/stat; }
# measure STEP TOOL REP CMD...: run CMD under /usr/bin/time; sets M_*.
measure() {
	local step=$1 tool=$2 rep=$3
	shift 3
	local log="$LOGS/r$ROUND-$step-$tool-$rep.log" rc=0 st0 st1
	st0=$(steal_ticks)
	/usr/bin/time -f '%e %U %S %M' -o "$TIMEF" "$@" >"$log" 2>&1 || rc=$?
	st1=$(steal_ticks)
	read -r M_WALL M_USER M_SYS M_RSS < <(tail -n1 "$TIMEF")
	M_CPU=$(awk -v u="$M_USER" -v s="$M_SYS" 'BEGIN { printf "%.2f", u + s }')
	M_STEAL=$(awk -v a="$st0" -v b="$st1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
	M_RC=$rc
	M_LOG=$log
	printf '  r%d %-14s %-8s %8.2fs wall %8.2fs cpu %6d MiB %6.2fs stolen%s\n' $((ROUND + 1)) "$step" "$tool" \
		"$M_WALL" "$M_CPU" $((M_RSS / 1024)) "$M_STEAL" "$([ $rc = 0 ] || echo "  EXIT $rc, see $log")" >&2
	if [ "$tool" = cumulus ] && [ -s "$log" ]; then sed -n '1,3s/^/      /p' "$log" >&2; fi
}
# record STEP TOOL REP BYTES RATE NOTE
record() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" \
		"$M_WALL" "$M_CPU" "$M_RSS" "$4" "$5" "$M_RC" "${6:-}" "$M_STEAL" >>"$RAW"
}

repo() { echo "$W/$2-repo-$1"; }   # TOOL SET
state() { echo "$W/$2-state-$1"; }  # local state: our localdb, restic cache, borg base dir

t_init() { # TOOL SET
	local t=$1 R S
	R=$(repo "$1" "$2") S=$(state "$1" "$2")
	mkdir -p "$S"
	case $t in
	cumulus) mkdir -p "$R" ;;
	restic) RESTIC_CACHE_DIR=$S restic -r "$R" init --repository-version 2 >"$LOGS/r$ROUND-init-$2-restic.log" 2>&1 ;;
	borg) BORG_BASE_DIR=$S borg init -e repokey-blake2 "$R" >"$LOGS/r$ROUND-init-$2-borg.log" 2>&1 ;;
	esac
}
SEQ=0
# backup_cmd TOOL SET PATH: sets CMD (run from the path's parent directory)
backup_cmd() {
	local t=$1 R S
	R=$(repo "$1" "$2") S=$(state "$1" "$2")
	case $t in
	cumulus) CMD=("$BIN/cumulus" --dest="$R" --localdb="$S" "$3") ;;
	restic) CMD=(env RESTIC_CACHE_DIR="$S" restic -r "$R" backup --quiet "$3") ;;
	borg)
		SEQ=$((SEQ + 1))
		echo "a$SEQ" >"$S/last-archive"
		CMD=(env BORG_BASE_DIR="$S" borg create "$R::a$SEQ" "$3")
		;;
	esac
}
# restore_cmd TOOL SET DEST: sets CMD (run from DEST, which exists and is empty)
restore_cmd() {
	local t=$1 R S name
	R=$(repo "$1" "$2") S=$(state "$1" "$2")
	case $t in
	cumulus)
		name=$("$BIN/cumulus-util" --store="$R" list-snapshots | tail -n1)
		CMD=("$BIN/cumulus-util" --store="$R" restore-snapshot "$name" "$3")
		;;
	restic) CMD=(env RESTIC_CACHE_DIR="$S" restic -r "$R" restore latest --target "$3") ;;
	borg) CMD=(env BORG_BASE_DIR="$S" borg extract "$R::$(cat "$S/last-archive")") ;;
	esac
}
# order for a round/repetition: rotate the tool list
order() {
	local n=${#TOOLS[@]} k=$(($1 % ${#TOOLS[@]})) i
	for ((i = 0; i < n; i++)); do echo "${TOOLS[$(((i + k) % n))]}"; done
}

# the 1% change, applied once to the shared data dir after the no-change runs
apply_change() {
	local d=$1 n_app n_del
	(
		cd "$d"
		find . -type f -name '*.c' | sort >"$W/c-files"
		find . -type f | sort >"$W/all-files"
		awk 'NR % 100 == 0' "$W/c-files" >"$W/append"
		awk 'NR % 500 == 0' "$W/all-files" >"$W/delete"
		while IFS= read -r f; do echo "/* cumulus-bench: changed in round $ROUND */" >>"$f"; done <"$W/append"
		xargs -d '\n' rm -f <"$W/delete"
		mkdir -p bench-new
		# 50 new files: existing sources with letters shifted (new bytes, same kind of text)
		awk 'NR % 500 == 7' "$W/c-files" | grep -vxFf "$W/delete" | awk 'NR <= 50' | nl -ba |
			while read -r i f; do tr 'a-y' 'b-z' <"$f" >"bench-new/new$i.c"; done
	)
	n_app=$(wc -l <"$W/append") n_del=$(wc -l <"$W/delete")
	say "  change: $n_app .c files appended, $n_del files deleted, $(find "$d/bench-new" -type f | wc -l) new files"
}

versions() {
	echo "date:      $(date -Is)"
	echo "host:      $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "cumulus:   $COMMIT$([ "$DIRTY" = 0 ] || echo " (+$DIRTY modified tracked files)"); zstd level 3 (built-in), no encryption, default --threads (one worker more than the $(getconf _NPROCESSORS_ONLN) cores)"
	echo "restic:    $(restic version | head -n1); repository v2: AES-256 encryption + zstd compression 'auto'"
	echo "borg:      $(borg --version); -e repokey-blake2 (AES-256 + BLAKE2b), default compression lz4"
	echo "data:      $TREE ($TREEBYTES bytes as plain tar), rounds: $ROUNDS, large-file section: $LARGE, many empty files: $MANY"
	echo "tool order rotates every round and every no-change repetition; inputs re-read before each command"
}

# ---------------------------------------------------------------- rounds
say "results: $RES (raw: $RAW, logs: $LOGS)"
for ((ROUND = 0; ROUND < ROUNDS; ROUND++)); do
	say "== round $((ROUND + 1)) of $ROUNDS: order $(order $ROUND | tr '\n' ' ')"
	mkdir -p "$W/data"
	DATAP=$W/data
	DATA=$DATAP/$TREE
	if [ "$TREEPART" = 1 ]; then

	# machine limits; tar -x also creates this round's data dir
	warm "$PLAIN"
	measure tar-x machine 1 tar -xf "$PLAIN" -C "$DATAP"
	record tar-x machine 1 "$TREEBYTES" "$(awk -v b="$TREEBYTES" -v t="$M_WALL" 'BEGIN { printf "%.1f", b / t / 1e6 }')"
	[ $M_RC = 0 ] || die "tar -x failed"
	TX_END=$(date +%s)
	warm "$DATA"
	measure tree-read machine 1 bash -c "cd '$DATAP' && tar -cf - $TREE | cat >/dev/null"
	record tree-read machine 1 "$TREEBYTES" "$(awk -v b="$TREEBYTES" -v t="$M_WALL" 'BEGIN { printf "%.1f", b / t / 1e6 }')"
	measure sha256 machine 1 openssl speed -evp sha256 -bytes 1048576 -seconds 2
	rate=$(awk 'tolower($1) == "sha256" { v = $NF; sub(/k$/, "", v); printf "%.1f", v * 1000 / 1e6 }' "$M_LOG")
	record sha256 machine 1 0 "${rate:--}"
	warm "$PLAIN"
	measure zstd3 machine 1 bash -c "zstd -3 -T1 -q -c '$PLAIN' >/dev/null"
	record zstd3 machine 1 "$TREEBYTES" "$(awk -v b="$TREEBYTES" -v t="$M_WALL" 'BEGIN { printf "%.1f", b / t / 1e6 }')"
	measure zstd3-t2 machine 1 bash -c "zstd -3 -T2 -q -c '$PLAIN' >/dev/null"
	record zstd3-t2 machine 1 "$TREEBYTES" "$(awk -v b="$TREEBYTES" -v t="$M_WALL" 'BEGIN { printf "%.1f", b / t / 1e6 }')"

	# Let the fresh tree settle: files changed in the last 30 s are marked
	# volatile by cumulus (and re-read by its next backup), which would be
	# an artefact of unpacking the tree just before backing it up.
	settle=$((TX_END + 35 - $(date +%s)))
	if [ $settle -gt 0 ]; then say "  waiting ${settle}s for the tree to be older than 30 s"; sleep $settle; fi
	cd "$DATAP"
	# initial backup
	for t in $(order $ROUND); do
		t_init "$t" tree
		warm "$DATA" "$(repo "$t" tree)" "$(state "$t" tree)"
		backup_cmd "$t" tree $TREE
		measure initial "$t" 1 "${CMD[@]}"
		record initial "$t" 1 "$(bytes_of "$(repo "$t" tree)")" -
		M_WALL=0 M_CPU=0 M_RSS=0 M_RC=0 M_STEAL=0
		record local-state "$t" 1 "$(bytes_of "$(state "$t" tree)")" -
	done
	# the same backup by cumulus with one worker thread and with two,
	# against the default's one more than the cores (order alternates)
	case " ${TOOLS[*]} " in *" cumulus "*)
		for n in $( ((ROUND % 2)) && echo 2 1 || echo 1 2); do
			t_init cumulus tree$n
			warm "$DATA"
			CMD=("$BIN/cumulus" --dest="$(repo cumulus tree$n)" --localdb="$(state cumulus tree$n)" --threads=$n $TREE)
			measure initial-t$n cumulus 1 "${CMD[@]}"
			record initial-t$n cumulus 1 "$(bytes_of "$(repo cumulus tree$n)")" -
			rm -rf "$(repo cumulus tree$n)" "$(state cumulus tree$n)"
		done
	esac
	# no-change backups, 3 per round
	for rep in 1 2 3; do
		for t in $(order $((ROUND + rep))); do
			before=$(bytes_of "$(repo "$t" tree)")
			warm "$DATA" "$(repo "$t" tree)" "$(state "$t" tree)"
			backup_cmd "$t" tree $TREE
			measure nochange "$t" $rep "${CMD[@]}"
			record nochange "$t" $rep $(($(bytes_of "$(repo "$t" tree)") - before)) -
		done
	done
	# 1% changed
	apply_change "$DATA"
	for t in $(order $ROUND); do
		before=$(bytes_of "$(repo "$t" tree)")
		warm "$DATA" "$(repo "$t" tree)" "$(state "$t" tree)"
		backup_cmd "$t" tree $TREE
		measure changed "$t" 1 "${CMD[@]}"
		record changed "$t" 1 $(($(bytes_of "$(repo "$t" tree)") - before)) -
	done
	# restore of the latest snapshot, verified against a manifest of the data dir
	python3 "$BIN/manifest.py" "$DATA" >"$W/manifest-src"
	for t in $(order $ROUND); do
		dest=$W/restore-$t
		mkdir -p "$dest"
		warm "$(repo "$t" tree)" "$(state "$t" tree)"
		restore_cmd "$t" tree "$dest"
		cd "$dest"
		measure restore "$t" 1 "${CMD[@]}"
		cd "$DATAP"
		if python3 "$BIN/manifest.py" "$dest/$TREE" >"$W/manifest-$t" && cmp -s "$W/manifest-src" "$W/manifest-$t"; then
			note=verified
		else
			note="FAIL: manifest differs ($(diff "$W/manifest-src" "$W/manifest-$t" | grep -c '^[<>]') lines, see $LOGS/r$ROUND-restore-$t.diff)"
			diff "$W/manifest-src" "$W/manifest-$t" | head -n 200 >"$LOGS/r$ROUND-restore-$t.diff" || true
			say "  !! $t restore: $note"
		fi
		record restore "$t" 1 0 - "$note"
	done

	fi # linux-source sections

	# large-file section
	if [ "$LARGE" = 1 ]; then
		L=$W/large
		mkdir -p "$L"
		cp "$LARGESRC" "$L/big.bin"
		cd "$L"
		for t in $(order $ROUND); do
			t_init "$t" large
			warm "$L/big.bin" "$(repo "$t" large)" "$(state "$t" large)"
			backup_cmd "$t" large big.bin
			measure large-initial "$t" 1 "${CMD[@]}"
			record large-initial "$t" 1 "$(bytes_of "$(repo "$t" large)")" -
		done
		python3 "$BIN/edit_large.py" "$L/big.bin"
		want=$(sha256sum <"$L/big.bin" | cut -d' ' -f1)
		for t in $(order $ROUND); do
			before=$(bytes_of "$(repo "$t" large)")
			warm "$L/big.bin" "$(repo "$t" large)" "$(state "$t" large)"
			backup_cmd "$t" large big.bin
			measure large-edit "$t" 1 "${CMD[@]}"
			record large-edit "$t" 1 $(($(bytes_of "$(repo "$t" large)") - before)) -
		done
		for t in $(order $ROUND); do
			dest=$W/lrestore-$t
			mkdir -p "$dest"
			warm "$(repo "$t" large)" "$(state "$t" large)"
			restore_cmd "$t" large "$dest"
			cd "$dest"
			measure large-restore "$t" 1 "${CMD[@]}"
			cd "$L"
			got=$(sha256sum <"$dest/big.bin" 2>/dev/null | cut -d' ' -f1 || true)
			if [ "$got" = "$want" ]; then note=verified; else note="FAIL: sha256 differs"; say "  !! $t large restore: $note"; fi
			record large-restore "$t" 1 0 - "$note"
		done
	fi

	# many empty files: does memory stay flat as the file count grows?
	if [ "$MANY" -gt 0 ]; then
		MD=$W/many
		say "  creating $MANY empty files in 1000 directories"
		python3 - "$MD/files" "$MANY" <<'PYEOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = max(1, n // 1000)
for i in range(0, n, per):
    d = os.path.join(root, 'd%04d' % (i // per))
    os.makedirs(d, exist_ok=True)
    for j in range(i, min(n, i + per)):
        open(os.path.join(d, 'f%07d' % j), 'wb').close()
PYEOF
		# the files must be older than 30 s (see the tree section)
		sleep 31
		cd "$MD"
		for t in $(order $ROUND); do
			t_init "$t" many
			warm "$(repo "$t" many)" "$(state "$t" many)"
			backup_cmd "$t" many files
			measure many "$t" 1 "${CMD[@]}"
			record many "$t" 1 "$(bytes_of "$(repo "$t" many)")" -
		done
	fi

	# end of round: delete everything in bulk, then drop caches (see README)
	cd "$BENCH_DIR"
	say "  removing round data"
	rm -rf "$W"
	drop_caches
done

{
	versions
	echo
	python3 "$BIN/summary.py" "$RAW" "${TOOLS[*]}"
	echo "x rst = ratio to restic; spread = max/min over rounds; '!' = a run failed or did not verify."
	echo "raw data: $RAW; logs: $LOGS"
} | tee "$RES"
