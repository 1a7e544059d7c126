#!/usr/bin/perl
# restore.pl: restore a Cumulus snapshot with nothing but Perl (core
# modules only) and segments unpacked by standard tools.
#
#   restore.pl [--force] DESCRIPTOR DESTDIR [PATH...]
#
# DESCRIPTOR is a snapshot descriptor (snapshot-*.lbs or *.cumulus,
# clear-signed or not: check a signature with "gpg --verify" first; this
# script only strips the armour).  Every segment the descriptor lists must
# be unpacked in the descriptor's directory, so that object SEQ of segment
# UUID is the file UUID/SEQ:
#
#   zstd -dc UUID.tar.zst | tar -xf -        bzip2 -dc UUID.tar.bz2 | tar -xf -
#   gpg -d UUID.tar.gpg | tar -xf -          (gzip -dc, xz -dc likewise)
#
# DESTDIR must be empty or absent (--force allows a non-empty one).  With
# PATHs, only those entries (as recorded, e.g. "home/alice") and what is
# below them are restored, with the directories above them.
#
# Everything read is treated as hostile, as by cumulus-util: object and
# whole-file checksums (sha1, sha224, sha256) and sizes are verified;
# names are refused when absolute or holding "", "." or ".." components;
# nothing is created through a symlink (every parent directory is checked
# with lstat before it is entered, and entered only when it is a real
# directory); files are created with O_EXCL | O_NOFOLLOW.  A file that
# fails its checks is removed and reported; the others are still restored.
# Modes, owners (as root, numeric ids) and mtimes are applied after the
# contents; directories last, deepest first.  Hard links are recreated,
# all-zero blocks become holes.  The format is docs/format.md.
#
# Exit status: 0 all restored, 1 some entries failed or a fatal error.
use strict;
use warnings;
use Cwd qw(getcwd);
use Digest::SHA;
use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_EXCL O_NOFOLLOW O_DIRECTORY
    SEEK_SET SEEK_CUR S_ISDIR S_ISREG S_ISLNK S_ISFIFO);
use File::Basename qw(dirname);
use POSIX ();
use Socket qw(PF_UNIX SOCK_STREAM pack_sockaddr_un);

my $MAX_DEPTH    = 32;               # include depth (metadata, data lists)
my $MAX_INCLUDES = 1 << 24;          # include lines expanded in one log
my $MAX_META     = 64 << 20;         # a metadata object held in memory
my $MAX_NUM      = 4611686018427387904;    # 2^62, as our C reader
my $CHUNK        = 1 << 16;

# Fatal errors: a message and exit status 1 (die would exit 255).
sub fatal {
	print STDERR "restore.pl: ", @_;
	exit 1;
}

my $force = 0;
if (@ARGV && $ARGV[0] eq '--force') {
	$force = 1;
	shift @ARGV;
}
if (@ARGV < 2) {
	print STDERR "usage: restore.pl [--force] DESCRIPTOR DESTDIR [PATH...]\n";
	exit 2;
}
my ($descfile, $dest, @select) = @ARGV;
s{/+$}{} for @select;
s{^/+}{} for @select;

umask 077;
my $objdir = dirname($descfile);
$objdir = getcwd() . "/$objdir" unless $objdir =~ m{^/};

# ---- descriptor ----

# Key/value lines of a descriptor or stanza; continuation lines (leading
# white space) extend the previous value on a new line.
sub parse_fields {
	my ($lines) = @_;
	my (%f, $last);
	for my $l (@$lines) {
		if ($l =~ /^[ \t]/ && defined $last) {
			(my $c = $l) =~ s/^\s+//;
			$f{$last} .= "\n" . $c;
		} elsif ($l =~ /^([-A-Za-z0-9_]+):[ \t]*(.*)$/) {
			$last = $1;
			$f{$1} = $2 unless exists $f{$1};
		}
	}
	return \%f;
}

open(my $dfh, '<:raw', $descfile) or fatal("$descfile: $!\n");
my $dtext = do { local $/; <$dfh> };
close($dfh);
fatal("$descfile: larger than 16 MiB\n")
    if length($dtext) > (16 << 20);
my @dlines = split /\r?\n/, $dtext;
if (@dlines && $dlines[0] eq '-----BEGIN PGP SIGNED MESSAGE-----') {
	# Clear-signed: the text is between the armour header's blank line
	# and the signature, dash-escaped.
	warn "restore.pl: the signature is not checked here "
	    . "(use gpg --verify)\n";
	my @body;
	my $in = 0;
	for my $l (@dlines) {
		if (!$in) { $in = 1 if $l eq ''; next; }
		last if $l =~ /^-----BEGIN PGP SIGNATURE-----/;
		$l =~ s/^- //;
		push @body, $l;
	}
	@dlines = @body;
}
my $desc = parse_fields(\@dlines);

# Format: "LBS Snapshot v0.8", "Cumulus Snapshot v0.11"; none is oldest.
my @version;
if (defined $desc->{Format}) {
	$desc->{Format} =~ /^(?:LBS|Cumulus) Snapshot v(\d+(?:\.\d+)*)\s*$/
	    or fatal("unrecognised format '$desc->{Format}'\n");
	@version = split /\./, $1;
}
sub vcmp {
	my ($a, $b) = @_;
	for my $i (0 .. ($#$a < $#$b ? $#$a : $#$b)) {
		return $a->[$i] <=> $b->[$i] if $a->[$i] != $b->[$i];
	}
	return @$a <=> @$b;
}
fatal("format '$desc->{Format}' is newer than v0.11\n")
    if vcmp(\@version, [0, 11]) > 0;
# "[N]" asserts the object size from v0.11 on, is a prefix before.
my $v011 = vcmp(\@version, [0, 11]) >= 0;
my $rootref = $desc->{Root};
fatal("descriptor has no Root\n") unless defined $rootref;
$rootref =~ s/\s+$//;

# ---- objects ----

sub num {
	my ($s, $what) = @_;
	die "bad number in $what\n"
	    unless $s =~ /^\d{1,19}$/ && $s <= $MAX_NUM;
	return $s + 0;
}

# Parse a reference: a hash with seg, seq, alg, sum, and range kind
# (none, slice s+n, assert =n, bare n) or zero => n.
sub parse_ref {
	my ($t) = @_;
	if ($t =~ /^zero\[(?:(\d+)\+)?(\d+)\]$/) {
		return { zero => num($2, $t), text => $t };
	}
	$t =~ m{^([0-9a-f-]+)/([0-9a-f]+)
	    (?:\((sha1|sha224|sha256)=([0-9a-f]+)\))?
	    (?:\[(?:(\d+)\+(\d+)|=(\d+)|(\d+))\])?$}x
	    or die "malformed reference '$t'\n";
	my %r = (seg => $1, seq => $2, alg => $3, sum => $4, text => $t);
	die "reference '$t' names an over-long segment or sequence\n"
	    if length($1) > 64 || length($2) > 16;
	if (defined $5) {
		$r{start} = num($5, $t);
		$r{len} = num($6, $t);
	} elsif (defined $7) {
		$r{assert} = num($7, $t);
	} elsif (defined $8) {
		if ($v011) { $r{assert} = num($8, $t); }
		else { $r{start} = 0; $r{len} = num($8, $t); }
	}
	return \%r;
}

my %verified;    # "seg/seq" => checksum text checked over the object

# Open object seg/seq read-only (never through a symlink): handle, size.
sub open_object {
	my ($r) = @_;
	my @names = ($r->{seq});
	push @names, sprintf('%08x', hex($r->{seq})) if length($r->{seq}) <= 15;
	for my $n (@names) {
		my $p = "$objdir/$r->{seg}/$n";
		next unless -e $p || -l $p;
		sysopen(my $fh, $p, O_RDONLY | O_NOFOLLOW)
		    or die "segment $r->{seg}: object $n: $!\n";
		my @st = stat($fh);
		die "segment $r->{seg}: object $n is not a regular file\n"
		    unless S_ISREG($st[2]);
		binmode($fh);
		return ($fh, $st[7]);
	}
	die "segment $r->{seg}: object $r->{seq} not found under $objdir "
	    . "(is the segment unpacked there?)\n";
}

# Deliver the bytes reference $r selects to $sink->(bytes) in chunks;
# zero refs as $sink->(undef, n).  Checks checksum, ranges, assertions.
sub fetch {
	my ($r, $sink) = @_;
	if (defined $r->{zero}) {
		$sink->(undef, $r->{zero});
		return;
	}
	my ($fh, $size) = open_object($r);
	my $key = "$r->{seg}/$r->{seq}";
	if (defined $r->{alg}
	    && !(defined $verified{$key} && $verified{$key} eq "$r->{alg}=$r->{sum}")) {
		my $d = Digest::SHA->new(substr($r->{alg}, 3));
		$d->addfile($fh);
		die "segment $r->{seg}: object $r->{seq}: checksum mismatch\n"
		    unless $d->hexdigest eq $r->{sum};
		$verified{$key} = "$r->{alg}=$r->{sum}";
	}
	my ($start, $len) = (0, $size);
	if (defined $r->{assert}) {
		die "segment $r->{seg}: object $r->{seq} is $size bytes, "
		    . "reference says $r->{assert}\n" if $size != $r->{assert};
	} elsif (defined $r->{len}) {
		die "segment $r->{seg}: range of '$r->{text}' outside the "
		    . "$size-byte object\n" if $r->{start} + $r->{len} > $size;
		($start, $len) = ($r->{start}, $r->{len});
	}
	sysseek($fh, $start, SEEK_SET) or die "seek: $!\n";
	while ($len > 0) {
		my $n = sysread($fh, my $b, $len < $CHUNK ? $len : $CHUNK);
		die "segment $r->{seg}: object $r->{seq}: short read\n"
		    unless $n;
		$sink->($b);
		$len -= $n;
	}
	close($fh);
}

sub fetch_text {
	my ($r) = @_;
	my $t = '';
	fetch($r, sub {
		my ($b, $n) = @_;
		$b = "\0" x $n unless defined $b;
		die "metadata object larger than $MAX_META bytes\n"
		    if length($t) + length($b) > $MAX_META;
		$t .= $b;
	});
	return $t;
}

# ---- destination ----

my $destabs = $dest =~ m{^/} ? $dest : getcwd() . "/$dest";
if (!-d $destabs) {
	mkdir($destabs, 0700) or fatal("$dest: $!\n");
}
fatal("$dest is a symlink\n") if -l $destabs;
opendir(my $dh, $destabs) or fatal("$dest: $!\n");
my @existing = grep { $_ ne '.' && $_ ne '..' } readdir($dh);
closedir($dh);
fatal("$dest is not empty (use --force)\n") if @existing && !$force;
my @deststat = stat($destabs);

# Enter the directory of components @$c below DEST, creating missing ones
# (mode 0700); refuses anything that is not a real directory.  Leaves the
# process in it.
sub enter {
	my ($c) = @_;
	chdir($destabs) or die "cannot enter DEST: $!\n";
	my @st = stat('.');
	die "DEST was replaced\n"
	    unless $st[0] == $deststat[0] && $st[1] == $deststat[1];
	for my $comp (@$c) {
		my @l = lstat($comp);
		if (!@l) {
			mkdir($comp, 0700) or die "mkdir: $!\n";
			@l = lstat($comp);
		}
		die "a non-directory is in the way\n"
		    unless @l && S_ISDIR($l[2]) && !S_ISLNK($l[2]);
		chdir($comp) or die "cannot enter directory: $!\n";
		my @s = stat('.');
		die "directory changed while entering it\n"
		    unless $s[0] == $l[0] && $s[1] == $l[1];
	}
}

# ---- entries ----

sub decode {
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}
sub intval {    # C strtoll(s, 0): 0x hex, leading 0 octal, else decimal
	my ($s) = @_;
	return undef unless defined $s && $s =~ /^\s*(-?)(0x[0-9a-f]+|0[0-7]*|[1-9]\d*)\s*$/i;
	my ($neg, $v) = ($1, $2);
	$v = $v =~ /^0x/i ? hex($v) : $v =~ /^0/ ? oct($v) : $v + 0;
	return $neg ? -$v : $v;
}
sub leadint {
	my ($s) = @_;
	return defined $s && $s =~ /^\s*(\d+)/ ? $1 + 0 : undef;
}

my $is_root = $> == 0;
my ($nok, $nfail) = (0, 0);
my (%seen, %links, @dirs);

sub fail {
	my ($name, $msg) = @_;
	chomp $msg;
	(my $shown = $name) =~ s/([^\x21-\x7e])/sprintf('%%%02x', ord($1))/ge;
	warn "restore.pl: $shown: $msg\n";
	$nfail++;
}

sub selected {
	my ($name) = @_;
	return 1 unless @select;
	for my $p (@select) {
		return 1 if $p eq '' || $name eq $p || index($name, "$p/") == 0
		    || index($p, "$name/") == 0 || $name eq '.';
	}
	return 0;
}

# Expand a data list (v0.2 "@" elements name objects with more refs).
sub data_refs {
	my ($list, $depth, $out) = @_;
	die "data list nested too deeply\n" if $depth > $MAX_DEPTH;
	for my $t (split ' ', $list) {
		if ($t =~ s/^@//) {
			data_refs(fetch_text(parse_ref($t)), $depth + 1, $out);
		} else {
			push @$out, parse_ref($t);
		}
	}
}

# Write a regular file's data to $fh; holes for zero refs; check it.
sub write_data {
	my ($f, $fh) = @_;
	my @refs;
	data_refs($f->{data} // '', 0, \@refs);
	my ($alg, $want) = (undef, undef);
	if (defined $f->{checksum}) {
		$f->{checksum} =~ /^(sha1|sha224|sha256)=([0-9a-f]+)\s*$/
		    or die "unknown checksum '$f->{checksum}'\n";
		($alg, $want) = ($1, $2);
	}
	my $d = Digest::SHA->new($alg ? substr($alg, 3) : 1);
	my $pos = 0;
	my $zeros = "\0" x $CHUNK;
	for my $r (@refs) {
		fetch($r, sub {
			my ($b, $n) = @_;
			if (defined $b) {
				$d->add($b);
				my $off = 0;
				while ($off < length($b)) {
					my $w = syswrite($fh, $b, length($b) - $off, $off);
					die "write: $!\n" unless defined $w;
					$off += $w;
				}
				$pos += length($b);
				return;
			}
			# A hole: seek past it, hash the zeros.
			sysseek($fh, $n, SEEK_CUR) or die "seek: $!\n";
			$pos += $n;
			while ($n > 0) {
				my $k = $n < $CHUNK ? $n : $CHUNK;
				$d->add(substr($zeros, 0, $k));
				$n -= $k;
			}
		});
	}
	truncate($fh, $pos) or die "truncate: $!\n";
	my $size = intval($f->{size});
	die "size is $pos bytes, metadata says $size\n"
	    if defined $size && $size != $pos;
	die "checksum mismatch\n" if $alg && $d->hexdigest ne $want;
}

# Owner, mode, mtime of something in the current directory (or by handle).
sub apply_meta {
	my ($f, $target, $type) = @_;
	my ($uid, $gid) = (leadint($f->{user}), leadint($f->{group}));
	my $mode = intval($f->{mode});
	my $mtime = intval($f->{mtime});
	if ($type eq 'l') {
		POSIX::lchown($uid // -1, $gid // -1, $target) if $is_root;
		system('touch', '-h', '-d', "\@$mtime", '--', $target)
		    if defined $mtime;
		return;
	}
	if ($is_root && (defined $uid || defined $gid)) {
		chown($uid // -1, $gid // -1, $target)
		    or die "chown: $!\n";
	}
	chmod($mode & 07777, $target) or die "chmod: $!\n" if defined $mode;
	utime(time(), $mtime, $target) or die "utime: $!\n" if defined $mtime;
}

sub restore_entry {
	my ($f) = @_;
	my $raw = $f->{name} // $f->{path};
	die "stanza without a name\n" unless defined $raw;
	my $name = decode($raw);
	return 0 unless selected($name);
	die "duplicate name\n" if $seen{$name}++;
	my @c;
	if ($name ne '.') {
		die "unsafe name\n" if $name =~ m{^/} || $name =~ /\0/;
		@c = split m{/}, $name, -1;
		for (@c) { die "unsafe name\n" if $_ eq '' || $_ eq '.' || $_ eq '..'; }
	}
	my $type = $f->{type} // '';
	$type = 'f' if $type eq '-';
	if ($type eq 'd') {
		enter(\@c);    # creates it
		push @dirs, [$name, \@c, $f];
		return 1;
	}
	die "a non-directory cannot be the snapshot root\n" unless @c;
	my $leaf = pop @c;
	enter(\@c);
	die "already exists\n" if lstat($leaf);

	# A hard link: the same inode seen before with the same contents.
	my $links = intval($f->{links}) // 1;
	my $ikey = $links > 1 && defined $f->{inode}
	    ? join("\0", $f->{inode}, $type, $f->{checksum} // '', $f->{size} // '',
		$f->{target} // '', $f->{device} // '') : undef;
	if (defined $ikey && defined $links{$ikey}) {
		link("$destabs/$links{$ikey}", $leaf) or die "link: $!\n";
		return 1;
	}
	if ($type eq 'f') {
		sysopen(my $fh, $leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
		    0600) or die "create: $!\n";
		binmode($fh);
		eval { write_data($f, $fh); 1 } or do {
			my $e = $@;
			close($fh);
			unlink($leaf);
			die $e;
		};
		apply_meta($f, $fh, 'f');
		close($fh) or die "close: $!\n";
	} elsif ($type eq 'l') {
		my $t = $f->{target} // $f->{contents};
		die "symlink without a target\n" unless defined $t;
		symlink(decode($t), $leaf) or die "symlink: $!\n";
		apply_meta($f, $leaf, 'l');
	} elsif ($type eq 'p') {
		POSIX::mkfifo($leaf, 0600) or die "mkfifo: $!\n";
		apply_meta($f, $leaf, 'p');
	} elsif ($type eq 's') {
		socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
		bind($s, pack_sockaddr_un($leaf)) or die "socket: $!\n";
		close($s);
		apply_meta($f, $leaf, 's');
	} elsif ($type eq 'c' || $type eq 'b') {
		my ($maj, $min) = ($f->{device} // '') =~ m{^(\d+)/(\d+)$}
		    or die "device without major/minor\n";
		die "devices need root\n" unless $is_root;
		system('mknod', '-m', '600', '--', $leaf, $type, $maj, $min) == 0
		    or die "mknod failed\n";
		apply_meta($f, $leaf, $type);
	} else {
		die "unknown type '$type'\n";
	}
	$links{$ikey} = $name if defined $ikey;
	return 1;
}

# ---- the metadata log ----

my @stanza;
my %active;    # references being expanded (cycle check)
my $includes = 0;

sub end_stanza {
	return unless @stanza;
	my $f = parse_fields(\@stanza);
	@stanza = ();
	my $name = $f->{name} // $f->{path} // '?';
	my $r = eval { restore_entry($f) };
	if (defined $r) {
		$nok += $r;
	} else {
		fail(decode($name), $@);
	}
}

sub obj_key {
	my ($r) = @_;
	(my $q = $r->{seq}) =~ s/^0+(?=.)//;
	return "$r->{seg}/$q";
}

sub process_text {
	my ($text, $depth) = @_;
	for my $line (split /\n/, $text) {
		$line =~ s/\r$//;
		if ($line =~ /^@(.*?)\s*$/) {
			end_stanza();
			my $t = $1;
			die "metadata includes nested deeper than $MAX_DEPTH\n"
			    if $depth >= $MAX_DEPTH;
			die "more than $MAX_INCLUDES includes\n"
			    if ++$includes > $MAX_INCLUDES;
			my $r = parse_ref($t);
			die "a zero reference cannot be included\n"
			    if defined $r->{zero};
			# An object inside its own expansion is a cycle,
			# whatever range or checksum the reference gives.
			my $k = obj_key($r);
			die "metadata include cycle at '$t'\n" if $active{$k};
			my $obj = fetch_text($r);
			$active{$k} = 1;
			process_text($obj, $depth + 1);
			delete $active{$k};
		} elsif ($line =~ /^\s*$/) {
			end_stanza();
		} elsif ($line =~ /^[ \t]/ || $line =~ /^[-A-Za-z0-9_]+:/) {
			push @stanza, $line;
		} else {
			warn "restore.pl: junk in the metadata log ignored\n";
		}
	}
}

eval {
	my $rr = parse_ref($rootref);
	die "Root is not an object\n" if defined $rr->{zero};
	my $root = fetch_text($rr);
	$active{obj_key($rr)} = 1;
	process_text($root, 1);
	end_stanza();
	1;
} or fatal("cannot read the metadata log: $@");

# Directories last, deepest first, so their modes and times stick.
for my $d (sort { @{$b->[1]} <=> @{$a->[1]} } @dirs) {
	my ($name, $c, $f) = @$d;
	eval {
		enter($c);
		sysopen(my $fh, '.', O_RDONLY | O_DIRECTORY) or die "open: $!\n";
		apply_meta($f, $fh, 'd');
		close($fh);
		1;
	} or fail($name, $@);
}
chdir('/');
printf STDERR "restore.pl: %d entries restored%s\n", $nok,
    $nfail ? ", $nfail failed" : '';
exit($nfail ? 1 : 0);
