#!/usr/bin/perl
# manifest.pl: describe a tree, one line per entry, in the format of the
# compatibility fixtures' manifests/*.tsv:
#   path type mode size sha256 target mtime hlgroup   (tab-separated)
# after a "#path..." header, sorted by the raw bytes of the path ("." is the
# tree itself and comes first).  Paths and symlink targets escape every byte
# outside 0x20..0x7e, and '%', as %xx (lowercase).  Nothing is followed:
# entries are lstat()ed.  hlgroup numbers the inodes that two or more paths
# of the tree share (non-directories), in order of first appearance.
#
#   manifest.pl DIR                        the manifest of DIR
#   manifest.pl --normalize [--ignore=C,...] [FILE]
#       renumber hlgroups by order of first appearance (so only the grouping
#       matters) and blank the ignored columns: any column name, or "lmtime"
#       for the mtimes of symlinks only.
# Exit status 1 if an entry could not be read (reported on stderr).
use strict;
use warnings;
use Digest::SHA;
use Fcntl ':mode';

my @COLS = qw(path type mode size sha256 target mtime hlgroup);
my $status = 0;

sub esc {
	my ($s) = @_;
	$s =~ s/([^\x20-\x24\x26-\x7e])/sprintf('%%%02x', ord $1)/ge;
	return $s;
}

sub complain {
	print STDERR "manifest.pl: @_\n";
	$status = 1;
}

sub type_of {
	my ($m) = @_;
	return S_ISREG($m) ? 'f' : S_ISDIR($m) ? 'd' : S_ISLNK($m) ? 'l' :
	    S_ISFIFO($m) ? 'p' : S_ISSOCK($m) ? 's' : S_ISCHR($m) ? 'c' :
	    S_ISBLK($m) ? 'b' : '?';
}

sub sha256_of {
	my ($file) = @_;
	open(my $fh, '<:raw', $file) or do { complain("$file: $!"); return '-' };
	my $d = Digest::SHA->new(256)->addfile($fh)->hexdigest;
	close($fh);
	return $d;
}

sub manifest {
	my ($top) = @_;
	my (@rows, %links);
	my @todo = ('.');
	while (@todo) {
		my $rel = shift @todo;
		my $full = $rel eq '.' ? $top : "$top/$rel";
		my @st = $rel eq '.' ? stat($full) : lstat($full);
		@st or do { complain("$full: $!"); next };
		my ($dev, $ino, $mode, $nlink, $size, $mtime) = @st[0, 1, 2, 3, 7, 9];
		my $type = type_of($mode);
		my %r = (path => $rel, type => $type, mode => sprintf('%04o', $mode & 07777),
		    size => '-', sha256 => '-', target => '-', mtime => $mtime, hlgroup => '-');
		if ($type eq 'f') {
			$r{size} = $size;
			$r{sha256} = sha256_of($full);
		} elsif ($type eq 'l') {
			my $t = readlink($full);
			defined $t ? ($r{target} = esc($t)) : complain("$full: $!");
		} elsif ($type eq 'd') {
			if (opendir(my $dh, $full)) {
				push @todo, map { $rel eq '.' ? $_ : "$rel/$_" }
				    grep { $_ ne '.' && $_ ne '..' } readdir($dh);
				closedir($dh);
			} else {
				complain("$full: $!");
			}
		}
		if ($type ne 'd' && $nlink > 1) {
			$r{inode} = "$dev:$ino";
			$links{$r{inode}}++;
		}
		push @rows, \%r;
	}
	@rows = sort { ($b->{path} eq '.') <=> ($a->{path} eq '.') || $a->{path} cmp $b->{path} } @rows;
	my (%group, $n);
	print '#', join("\t", @COLS), "\n";
	for my $r (@rows) {
		my $i = $r->{inode};
		$r->{hlgroup} = $group{$i} //= ++$n if defined $i && $links{$i} > 1;
		$r->{path} = esc($r->{path});
		print join("\t", map { $r->{$_} } @COLS), "\n";
	}
}

sub normalize {
	my (%ignore) = map { $_ => 1 } @_;
	my (%group, $n);
	while (my $line = <STDIN>) {
		if ($line =~ /^#/) {
			print $line;
			next;
		}
		chomp $line;
		my %r;
		@r{@COLS} = split(/\t/, $line, -1);
		my $g = $r{hlgroup} // '-';
		$r{hlgroup} = $group{$g} //= ++$n if $g ne '-';
		$r{mtime} = '*' if $ignore{lmtime} && ($r{type} // '') eq 'l';
		$r{$_} = '*' for grep { exists $r{$_} } keys %ignore;
		print join("\t", map { $r{$_} // '' } @COLS), "\n";
	}
}

if (@ARGV && $ARGV[0] eq '--normalize') {
	shift @ARGV;
	my @ignore;
	@ignore = split(/,/, substr(shift @ARGV, 9)) if @ARGV && $ARGV[0] =~ /^--ignore=/;
	if (@ARGV) {
		open(STDIN, '<', $ARGV[0]) or die "manifest.pl: $ARGV[0]: $!\n";
	}
	normalize(@ignore);
} elsif (@ARGV == 1 && -d $ARGV[0]) {
	manifest($ARGV[0]);
} else {
	die "usage: manifest.pl DIR | manifest.pl --normalize [--ignore=COL,...] [FILE]\n";
}
exit $status;
