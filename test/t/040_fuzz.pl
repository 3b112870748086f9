# Fuzzing the ingest paths: valid events mutated a thousand ways, sent as
# NDJSON, as a jsonb array, as a JSON array in text, and through the bulk
# path (COPY into pipeline.ev_load, from a file the server reads: psql
# drops the commands that follow a COPY FROM STDIN that failed, which would
# hang this test's session).  Batches go to the server as files too
# (pg_read_file), so that what is sent is exactly the bytes written.
# The test does not predict each event's fate (that would need a second
# validator); it proves the guarantees that hold whatever the fate, and
# checks the fate only where a mutation makes it certain:
#  - no crash: after each round the session's backend still answers, and
#    the server log has no backend terminated by a signal;
#  - every receipt balances, received = the events sent (NDJSON: non-blank
#    lines; arrays: elements; COPY: records), and pipeline.batches agrees;
#  - the dead letters of a batch are exactly its rejected events, verbatim:
#    an NDJSON line byte for byte (minus one trailing \r), an array element
#    or a COPY row as jsonb; identical events share one fate, so the
#    multiset of dead letters is the multiset of sent events that failed;
#  - every other event's id is stored exactly once; the batch's raw rows are
#    the first occurrence of each of its new ids, with the values the
#    event carried (as the column types read them); accepted + ids stored
#    before = distinct valid ids; stored rows obey the contract.
# The seed is printed; PIPELINE_FUZZ_SEED=<n> replays a run and
# PIPELINE_FUZZ_EVENTS=<n> changes its size (default 10000, plus two
# batches crossing the 10,000-event chunk boundary).  The batches of a run
# of a failed run are kept in tmp_check/fuzz/ (bNNN.dat is what was sent,
# bNNN.meta.json the payloads expected, one per event).
use strict;
use warnings;
no warnings 'nonchar';
use Encode qw(encode_utf8);
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(strftime);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use PipelineNode;

my $seed = $ENV{PIPELINE_FUZZ_SEED} // 1;
$seed = int(Time::HiRes::time() * 1000) % 1000000007 if $seed eq 'random';
die "PIPELINE_FUZZ_SEED must be a number or 'random'" unless $seed =~ /^\d+$/;
my $target_events = $ENV{PIPELINE_FUZZ_EVENTS} // 10000;
diag("fuzz seed $seed, at least $target_events events (replay: PIPELINE_FUZZ_SEED=$seed)");
my $t_start = Time::HiRes::time();

###########################################################################
# a deterministic PRNG (xorshift32): the same seed gives the same batches
# on any Perl
###########################################################################
my $rs = (($seed * 2654435761) ^ 0x9E3779B9) & 0xFFFFFFFF;
$rs ||= 1;
sub rnd
{
	$rs ^= ($rs << 13) & 0xFFFFFFFF;
	$rs ^= $rs >> 17;
	$rs ^= ($rs << 5) & 0xFFFFFFFF;
	return $rs;
}
rnd() for 1 .. 20;
sub ri     { return rnd() % $_[0]; }                 # 0 .. n-1
sub pick   { return $_[ ri(scalar @_) ]; }
sub chance { return ri(10000) < $_[0] * 10000; }

###########################################################################
# the cluster
###########################################################################
my $node = PipelineNode::new_node('fuzz');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE fuzz');
my $contract = 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, '
  . 'amount numeric(12,2) CHECK (amount >= 0), qty integer, tags jsonb, note text';
my @cols = qw(event_id event_time user_id amount qty tags note);
$node->safe_psql('fuzz', qq{
	CREATE EXTENSION pipeline CASCADE;
	SELECT pipeline.create_source('ev', '$contract');
	CREATE SCHEMA fz;
	-- one row per event sent: its payload as the dead letter must hold it,
	-- the mutation that made it, the fate it must have (ok, bad or any)
	-- and, once the batch is in, whether it was rejected
	CREATE TABLE fz.sent (batch_id bigint, ord int, form text, payload text,
	                      k text, kind text, expect text, rejected boolean);
	CREATE INDEX ON fz.sent (batch_id);
	CREATE FUNCTION fz.try_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql AS
	  \$\$BEGIN RETURN t::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END\$\$;
	CREATE FUNCTION fz.try_int8(t text) RETURNS bigint LANGUAGE plpgsql AS
	  \$\$BEGIN RETURN t::bigint; EXCEPTION WHEN others THEN RETURN NULL; END\$\$;
	CREATE FUNCTION fz.try_int4(t text) RETURNS int LANGUAGE plpgsql AS
	  \$\$BEGIN RETURN t::int; EXCEPTION WHEN others THEN RETURN NULL; END\$\$;
	CREATE FUNCTION fz.try_num(t text) RETURNS numeric LANGUAGE plpgsql AS
	  \$\$BEGIN RETURN t::numeric(12,2); EXCEPTION WHEN others THEN RETURN NULL; END\$\$;
	CREATE FUNCTION fz.try_ts(t text) RETURNS timestamptz LANGUAGE plpgsql AS
	  \$\$BEGIN RETURN t::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END\$\$;
	CREATE FUNCTION fz.valid_utf8(t text) RETURNS boolean LANGUAGE plpgsql AS
	  \$\$BEGIN PERFORM convert_from(textsend(t), 'UTF8'); RETURN true;
	    EXCEPTION WHEN others THEN RETURN false; END\$\$;
});

my $dir = "$PostgreSQL::Test::Utils::tmp_check/fuzz";
make_path($dir);

# one session sends everything (and must survive everything)
my $s = $node->background_psql('fuzz', on_error_stop => 0);
# the time limit applies to each statement, not to the whole session
$s->{query_timer_restart} = 1;
my $backend_pid;
# (output, stderr) of one statement sent through the session
sub run_q
{
	my ($sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query(utf8::is_utf8($sql) ? encode_utf8($sql) : $sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}
sub q_ok
{
	my ($sql) = @_;
	my ($out, $err) = run_q($sql);
	die "unexpected error: $err\nstatement: " . substr($sql, 0, 400) . "\n" if $err ne '';
	return $out;
}
# a zone with a half-hour offset and DST: zone-less event times and the
# checks below read them the same way, in this session
q_ok(q{SET TimeZone = 'America/St_Johns'});
$backend_pid = q_ok('SELECT pg_backend_pid()');
my $server_now = q_ok('SELECT extract(epoch FROM now())::numeric(20,3)');
my $clock_off = $server_now - Time::HiRes::time();
sub now_s { return int(Time::HiRes::time() + $clock_off); }

# crashes: the log since the start, and the session's backend
my $log_from = -s $node->logfile;
my $crash_re = qr/terminated by signal|was terminated by exception|server process \(PID \d+\) (was terminated|exited with exit code)|PANIC:|TRAP:/;
sub crash_in_log
{
	my $log = slurp_file($node->logfile);
	my $new = substr($log, $log_from);
	return $new =~ /^.*$crash_re.*$/m ? $& : '';
}
sub alive
{
	my ($out, $err) = eval { run_q('SELECT 1, pg_backend_pid()') };
	return "session gone: $@" if !defined $out;
	return "SELECT 1 failed: $err" if $err ne '' || $out ne "1|$backend_pid";
	my $c = crash_in_log();
	return $c ne '' ? "server log: $c" : '';
}

# counts of everything a batch could write
sub snapshot
{
	return q_ok(q{SELECT (SELECT count(*) FROM pipeline.batch_log) || ' receipts, '
	    || (SELECT count(*) FROM pipeline.dead_letters) || ' dead letters, '
	    || (SELECT count(*) FROM pipeline.ev_raw) || ' raw, '
	    || (SELECT count(*) FROM pipeline.ev_ids) || ' ids, '
	    || (SELECT coalesce(sum(events), 0) FROM pipeline.drift_counts) || ' drift'});
}

###########################################################################
# building events
###########################################################################
# random characters: printable ASCII, controls (never \n), Latin-1, the
# rest of the BMP (noncharacters included, surrogates excluded), astral
sub rchar
{
	my ($no_ctl) = @_;
	my $c = ri(6);
	$c = 0 if $c == 2 && $no_ctl;
	return chr(0x20 + ri(95)) if $c <= 1;
	return chr(pick(1 .. 9, 11 .. 31)) if $c == 2;
	return chr(0xA0 + ri(0x60)) if $c == 3;
	if ($c == 4)
	{
		my $cp;
		do { $cp = 0x100 + ri(0xFFFF - 0x100 + 1) } while $cp >= 0xD800 && $cp <= 0xDFFF;
		return chr($cp);
	}
	return chr(0x10000 + ri(0x100000));
}
sub rstr { my ($n, $no_ctl) = @_; return join('', map { rchar($no_ctl) } 1 .. $n); }

sub uesc
{
	my $cp = ord(shift);
	return sprintf('\\u%04x', $cp) if $cp < 0x10000;
	$cp -= 0x10000;
	return sprintf('\\u%04x\\u%04x', 0xD800 + ($cp >> 10), 0xDC00 + ($cp & 0x3FF));
}
# a JSON string literal; non-ASCII sometimes escaped as \uXXXX (pairs)
sub jstr
{
	my ($v) = @_;
	$v =~ s/(["\\])/\\$1/g;
	$v =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
	$v =~ s/([^\x00-\x7f])/uesc($1)/ge if chance(0.2);
	return qq{"$v"};
}

sub fmt_time
{
	my ($t, $style) = @_;
	$style //= ri(8);
	my $z = strftime('%Y-%m-%dT%H:%M:%S', gmtime($t));
	return "${z}Z" if $style <= 2;
	return sprintf('%s.%03dZ', $z, ri(1000)) if $style == 3;
	return sprintf('%s.%06dZ', $z, ri(1000000)) if $style == 4;
	if ($style == 5)
	{
		my $off = pick(-12 * 60, -210, -60, 0, 60, 330, 345, 14 * 60);
		my $l = strftime('%Y-%m-%dT%H:%M:%S', gmtime($t + $off * 60));
		return sprintf('%s%s%02d:%02d', $l, $off < 0 ? '-' : '+', abs($off) / 60, abs($off) % 60);
	}
	return strftime('%Y-%m-%d %H:%M:%S', gmtime($t)) . '+00' if $style == 6;
	return sprintf('%s.%07dZ', $z, ri(10000000));
}
# an event time accepted whatever the run's duration: the last three days
sub recent_time { return now_s() - 120 - ri(3 * 86400); }

my $next_id = 1_000_000 + ri(1_000_000);
my @old_ids;          # ids sent in earlier batches
my @batch_ids;        # ids sent in this batch
sub new_id
{
	my $id;
	if (@batch_ids && chance(0.07))   { $id = pick(@batch_ids); }
	elsif (@old_ids && chance(0.07))  { $id = pick(@old_ids); }
	else                              { $id = $next_id; $next_id += 1 + (chance(0.1) ? ri(50) : 0); }
	push @batch_ids, $id;
	return $id;
}

my @users = ('u', 'ü-ser', '日本語', "emoji \x{1F600}", 'quo"te', 'back\\slash', "tab\tand\x{2028}ls",
	"non\x{FFFF}char", "astral \x{10FFFF}", 'comma, semicolon;', "new\nline");
sub base_event
{
	my $id = new_id();
	my @p = (
		[ '"event_id"', chance(0.1) ? qq{"$id"} : $id ],
		[ '"event_time"', jstr(fmt_time(recent_time())) ],
		[ '"user_id"', jstr(chance(0.5) ? "u$id" : pick(@users) . ri(100)) ]);
	push @p, [ '"amount"', pick(sprintf('%.2f', ri(1000000) / 100), ri(500), '0', '12.5', 'null') ]
	  if chance(0.8);
	push @p, [ '"qty"', pick(1 + ri(100), 'null', 0, -3) ] if chance(0.6);
	push @p, [ '"tags"', pick('["a","b"]', '{"k":1,"l":[true,null]}', '[]', '{}', '"[1,2]"', '1.5', 'null') ]
	  if chance(0.5);
	push @p, [ '"note"', jstr(rstr(ri(20), 0)) ] if chance(0.5);
	# shuffle now and then: field order must not matter
	if (chance(0.3))
	{
		for my $i (reverse 1 .. $#p) { my $j = ri($i + 1); @p[ $i, $j ] = @p[ $j, $i ]; }
	}
	return { id => $id, pairs => \@p };
}

sub ser
{
	my ($pairs) = @_;
	my ($sep, $col) = chance(0.5) ? (', ', ': ') : (',', ':');
	return '{' . join($sep, map { "$_->[0]$col$_->[1]" } @$pairs) . '}';
}
sub set_field
{
	my ($ev, $name, $val) = @_;
	for my $p (@{ $ev->{pairs} })
	{
		if ($p->[0] eq qq{"$name"}) { $p->[1] = $val; return; }
	}
	push @{ $ev->{pairs} }, [ qq{"$name"}, $val ];
	return;
}
sub del_field
{
	my ($ev, $name) = @_;
	$ev->{pairs} = [ grep { $_->[0] ne qq{"$name"} } @{ $ev->{pairs} } ];
	return;
}
sub nested
{
	my ($depth, $open, $close, $inner) = @_;
	return ($open x $depth) . $inner . ($close x $depth);
}

# type swaps and extreme numbers, per field: [JSON value, expected fate];
# %ID is the event's own id
my %swaps = (
	event_id => [
		[ '"%ID"', 'ok' ], [ '" %ID "', 'ok' ], [ '"abc"', 'bad' ], [ '%ID.5', 'bad' ],
		[ 'true', 'bad' ], [ '[%ID]', 'bad' ], [ '{"n":%ID}', 'bad' ], [ 'null', 'bad' ],
		[ '""', 'bad' ], [ '9223372036854775808', 'bad' ], [ '-9223372036854775809', 'bad' ],
		[ '99999999999999999999999999', 'bad' ], [ '1e308', 'bad' ], [ '-1e308', 'bad' ],
		[ '1e-320', 'bad' ], [ '"NaN"', 'bad' ], [ '"Infinity"', 'bad' ], [ '"0x10"', 'bad' ],
		[ '%ID.0', 'bad' ], [ '9223372036854775807', 'ok' ], [ '-9223372036854775808', 'ok' ],
		[ '0', 'ok' ], [ '-0', 'ok' ], [ '1e3', 'ok' ], [ '"+%ID"', 'ok' ] ],
	user_id => [
		[ '12345', 'ok' ], [ 'true', 'ok' ], [ 'false', 'ok' ], [ '{"a":[1,{"b":null}]}', 'ok' ],
		[ '[1,"x"]', 'ok' ], [ 'null', 'bad' ], [ '""', 'ok' ], [ '1e308', 'ok' ], [ '-1e-320', 'ok' ],
		[ '99999999999999999999999999', 'ok' ] ],
	amount => [
		[ '"12.50"', 'ok' ], [ '" 12 "', 'ok' ], [ '"abc"', 'bad' ], [ 'true', 'bad' ], [ '[1]', 'bad' ],
		[ '{"a":1}', 'bad' ], [ '-0.01', 'bad' ], [ '-0.001', 'ok' ], [ '1e308', 'bad' ],
		[ '-1e308', 'bad' ], [ '1e-320', 'ok' ], [ '99999999999999999999999999', 'bad' ],
		[ '"NaN"', 'any' ], [ '"Infinity"', 'bad' ], [ '"-Infinity"', 'bad' ], [ '9999999999.99', 'ok' ],
		[ '9999999999.995', 'bad' ], [ '10000000000', 'bad' ], [ 'null', 'ok' ], [ '""', 'bad' ],
		[ '0.005', 'ok' ], [ '1.23456789', 'ok' ] ],
	qty => [
		[ '"7"', 'ok' ], [ '" 7 "', 'ok' ], [ '7.5', 'bad' ], [ '7.0', 'bad' ], [ '2147483647', 'ok' ],
		[ '2147483648', 'bad' ], [ '-2147483648', 'ok' ], [ 'true', 'bad' ], [ '"0x1F"', 'bad' ],
		[ '1e308', 'bad' ], [ '1e-320', 'bad' ], [ '"NaN"', 'bad' ], [ '[]', 'bad' ], [ 'null', 'ok' ],
		[ '99999999999999999999999999', 'bad' ] ],
	tags => [
		[ '"abc"', 'bad' ], [ '"[1,2]"', 'ok' ], [ '"null"', 'ok' ], [ '"{\"a\":1}"', 'ok' ],
		[ '123', 'ok' ], [ '1e308', 'ok' ], [ '-1e-320', 'ok' ], [ '{"a":{"b":[1,2]}}', 'ok' ],
		[ 'true', 'ok' ], [ 'null', 'ok' ], [ '""', 'bad' ], [ '"\\u00e9"', 'bad' ] ],
	note => [
		[ '123', 'ok' ], [ '{"a":1}', 'ok' ], [ 'true', 'ok' ], [ 'null', 'ok' ], [ '1e308', 'ok' ],
		[ '[[],{}]', 'ok' ], [ '""', 'ok' ] ],
	event_time => [
		[ '1700000000', 'bad' ], [ 'true', 'bad' ], [ '{"t":1}', 'bad' ], [ '["2026-01-01T00:00:00Z"]', 'any' ], [ '[2026,1,1]', 'any' ],
		[ 'null', 'bad' ], [ '""', 'bad' ], [ '1e308', 'bad' ] ],
);

# event times: [string, expected fate]; REL+n is n seconds from now
my @times = (
	[ 'infinity', 'bad' ], [ '-infinity', 'bad' ], [ 'epoch', 'ok' ], [ 'now', 'ok' ],
	[ 'today', 'ok' ], [ 'yesterday', 'ok' ], [ 'tomorrow', 'any' ],
	[ '1899-12-31T23:59:59Z', 'bad' ], [ '1899-12-31T23:59:59.999999Z', 'bad' ],
	[ '1900-01-01T00:00:00Z', 'ok' ], [ '1900-01-01T00:00:00+01:00', 'bad' ],
	[ '1900-01-01T00:00:00-01:00', 'ok' ], [ '1900-01-01 00:00:00', 'any' ],
	[ '1970-01-01T00:00:00Z', 'ok' ], [ '9999-12-31T23:59:59Z', 'bad' ],
	[ '294277-01-01T00:00:00Z', 'bad' ], [ '4714-11-24 00:00:00+00 BC', 'bad' ],
	[ '2026-02-30T00:00:00Z', 'bad' ], [ '2026-13-01T00:00:00Z', 'bad' ],
	[ '2026-03-01T24:00:00Z', 'ok' ], [ '2026-03-01T23:59:60Z', 'ok' ],
	[ '2026-03-01T10:00:00.1234567Z', 'ok' ], [ '2026-03-01T10:00:00+15:59', 'ok' ],
	[ '2026-03-01T10:00:00-16:00', 'bad' ], [ '2026-03-01T10:00:00+14:00', 'ok' ],
	[ '2026-03-01T10:00:00Z ', 'ok' ], [ ' 2026-03-01T10:00:00Z', 'ok' ],
	[ '2026-03-01t10:00:00z', 'any' ], [ '2026-03-01T10:00Z', 'ok' ], [ '2026-03-01', 'ok' ],
	[ '20260301T100000Z', 'ok' ], [ 'March 1, 2026 10:00 UTC', 'any' ], [ '1/3/2026', 'ok' ],
	[ 'J2461100', 'ok' ], [ '2026-03-01T10:00:00 America/New_York', 'ok' ],
	[ '2026-03-01T10:00:00 Mars/Olympus', 'bad' ], [ '2026-W09-7', 'any' ], [ '2026-060', 'any' ],
	[ 'Sun Mar 01 10:00:00 2026 UTC', 'any' ], [ '2026-03-01T10:00:00.Z', 'any' ],
	[ '2026-03-01T10:00:00,5Z', 'any' ], [ '+2026-03-01T10:00:00Z', 'any' ],
	[ '0000-01-01T00:00:00Z', 'bad' ], [ '10:00', 'any' ], [ 'allballs', 'any' ],
	[ 'yesterday-ish', 'bad' ], [ '2026-03-01T10:00:00Z' . ('0' x 50), 'any' ],
	[ 'REL+300', 'ok' ], [ 'REL+1200', 'bad' ], [ 'REL+31536000', 'bad' ], [ 'REL-31536000', 'ok' ],
);
sub time_value
{
	my ($t) = @_;
	return $t unless $t =~ /^REL([+-]\d+)$/;
	return fmt_time(now_s() + $1);
}

my @extra_keys = ('x', 'X_' . 'y' x 10, 'Event_ID', '_pl_batch', '_pl_extra', '', 'ü', "\x{1F600}",
	'k' x 200, 'a.b', 'a"b', 'a\\b', 'sp ace');
my $big = 100 * 1024;

# JSON-valid mutations: usable in every form.  Each returns (JSON text,
# expected fate); a fate of 'ok' still allows a duplicate.
my @json_mutations = (
	[ control => 30, sub { return (ser($_[0]{pairs}), 'ok'); } ],
	[ swap => 25, sub {
		my ($ev) = @_;
		my $f = pick(sort keys %swaps);
		my ($v, $exp) = @{ pick(@{ $swaps{$f} }) };
		$v =~ s/%ID/$ev->{id}/g;
		set_field($ev, $f, $v);
		return (ser($ev->{pairs}), $exp);
	} ],
	[ time => 15, sub {
		my ($ev) = @_;
		my ($t, $exp) = @{ pick(@times) };
		set_field($ev, 'event_time', jstr(time_value($t)));
		return (ser($ev->{pairs}), $exp);
	} ],
	[ dupkey => 6, sub {
		my ($ev) = @_;
		my $f = pick(sort keys %swaps);
		my ($v, $exp) = @{ pick(@{ $swaps{$f} }) };
		$v =~ s/%ID/$ev->{id}/g;
		my ($orig) = grep { $_->[0] eq qq{"$f"} } @{ $ev->{pairs} };
		# the last one wins: the swapped value last, or the original last
		if (!$orig || chance(0.5))
		{
			push @{ $ev->{pairs} }, [ qq{"$f"}, $v ];
		}
		else
		{
			unshift @{ $ev->{pairs} }, [ qq{"$f"}, $v ];
			$exp = 'ok';
		}
		return (ser($ev->{pairs}), $exp);
	} ],
	[ missing => 6, sub {
		my ($ev) = @_;
		my $f = pick(@cols);
		del_field($ev, $f);
		return (ser($ev->{pairs}), ($f =~ /^(event_id|event_time|user_id)$/) ? 'bad' : 'ok');
	} ],
	[ extra => 8, sub {
		my ($ev) = @_;
		for (0 .. ri(3))
		{
			push @{ $ev->{pairs} },
			  [ jstr(pick(@extra_keys) . (chance(0.5) ? rstr(ri(5), 0) : '')),
				pick('1', 'null', '"v"', '[1,{"a":[]}]', '{"deep":{"er":[1e308]}}', jstr(rstr(ri(30), 0))) ];
		}
		return (ser($ev->{pairs}), 'ok');
	} ],
	# an unknown field whose name is cut by the drift counter (127 bytes)
	# in the middle of a multibyte character
	[ extra_long_key => 2, sub {
		my ($ev) = @_;
		my $k = ('k' x (126 - ri(3))) . pick("\x{e9}", "\x{65e5}", "\x{1F600}") x 3;
		push @{ $ev->{pairs} }, [ jstr($k), '1' ];
		return (ser($ev->{pairs}), 'ok');
	} ],
	[ huge => 3, sub {
		my ($ev) = @_;
		my $where = pick(qw(note user_id extra key event_id event_time amount tags tagsstr));
		my $str = chance(0.5) ? 'x' x $big : rstr($big / 4, 0);
		my %exp = (note => 'ok', user_id => 'ok', extra => 'ok', key => 'ok', event_id => 'bad',
			event_time => 'bad', amount => 'bad', tags => 'bad', tagsstr => 'ok');
		if ($where eq 'extra')      { push @{ $ev->{pairs} }, [ '"big"', jstr($str) ]; }
		elsif ($where eq 'key')     { push @{ $ev->{pairs} }, [ jstr($str), '1' ]; }
		elsif ($where eq 'tagsstr') { set_field($ev, 'tags', jstr('["' . ('y' x $big) . '"]')); }
		else                        { set_field($ev, $where, jstr($str)); }
		return (ser($ev->{pairs}), $exp{$where});
	} ],
	[ deep => 3, sub {
		my ($ev) = @_;
		my $depth = pick(50, 500, 2000);
		my $where = pick(qw(tags note extra event_id));
		my $v = chance(0.5) ? nested($depth, '[', ']', '1') : nested($depth, '{"a":', '}', '[]');
		if ($where eq 'extra') { push @{ $ev->{pairs} }, [ '"deep"', $v ]; }
		else                   { set_field($ev, $where, $v); }
		return (ser($ev->{pairs}), $where eq 'event_id' ? 'bad' : 'any');
	} ],
	[ escapes_ok => 4, sub {
		my ($ev) = @_;
		my $e = pick('\\ud83d\\ude00', '\\u00e9', '\\\\u0000', '\\/', '%00', '\\udbff\\udfff', '\\u2028',
			'\\uffff', '\\b\\f\\n\\r\\t', '\\"');
		set_field($ev, pick('user_id', 'note'), qq{"a${e}b"});
		return (ser($ev->{pairs}), 'ok');
	} ],
	[ nonobject => 4, sub {
		my ($ev) = @_;
		return (pick('42', '"a string"', 'null', 'true', '[]', '{}', '[' . ser($ev->{pairs}) . ']',
				'1e308', '"' . ('s' x 1000) . '"'), 'bad');
	} ],
);

# NDJSON-only mutations: any text without a newline
my @line_mutations = (
	[ truncate => 8, sub {
		my ($ev) = @_;
		my $t = ser($ev->{pairs});
		return (substr($t, 0, 1 + ri(length($t) - 1)), 'bad');
	} ],
	[ bad_escape => 6, sub {
		my ($ev) = @_;
		my $e = pick('\\ud800', '\\udfff', '\\ud800\\u0041', '\\udc00\\ud800', '\\uZZZZ', '\\u12', '\\q',
			'\\x00', '\\u0000', '\\U0041', "\\\x{e9}");
		set_field($ev, pick('user_id', 'note', 'event_time'), qq{"a${e}b"});
		return (ser($ev->{pairs}), 'bad');
	} ],
	[ lone_backslash => 2, sub {
		my ($ev) = @_;
		set_field($ev, 'user_id', '"abc\\"');
		return (ser($ev->{pairs}), 'bad');
	} ],
	[ nul_key => 2, sub {
		my ($ev) = @_;
		push @{ $ev->{pairs} }, [ '"a\\u0000b"', '1' ];
		return (ser($ev->{pairs}), 'bad');
	} ],
	[ raw_control => 4, sub {
		my ($ev) = @_;
		set_field($ev, 'user_id', '"a' . chr(pick(1 .. 9, 11 .. 31)) . 'b"');
		return (ser($ev->{pairs}), 'bad');
	} ],
	[ random_chars => 8, sub {
		my ($ev) = @_;
		my $t = ser($ev->{pairs});
		for (0 .. ri(4))
		{
			my $pos = ri(length($t) + 1);
			substr($t, $pos, chance(0.5) ? 1 : 0) = rchar(0);
		}
		return ($t, 'any');
	} ],
	[ random_line => 4, sub {
		my $t = rstr(1 + ri(60), 0);
		$t = "x$t" if $t =~ /^[ \t\r]*$/;
		return ($t, 'bad');
	} ],
	[ garbage_tail => 3, sub {
		my ($ev) = @_;
		my $t = ser($ev->{pairs});
		return ($t . pick(' x', $t, ',', ' // comment', ']', '}'), 'bad');
	} ],
	[ odd_whitespace => 2, sub {
		my ($ev) = @_;
		return (pick("\f", "\x0b", "\x{a0}", "\x{feff}", "\x{2028}", "\f" . ser($ev->{pairs}),
				"\x{feff}" . ser($ev->{pairs}), "\x{a0}" . ser($ev->{pairs})), 'bad');
	} ],
	[ deep_line => 2, sub {
		my $d = pick(1000, 10000, 100000);
		return (pick('[' x $d, nested($d, '[', ']', ''), nested($d, '{"a":', '}', '1'), '{"a":' x $d), 'bad');
	} ],
);

sub choose
{
	my @m = @_;
	my $total = 0;
	$total += $_->[1] for @m;
	my $r = ri($total);
	for (@m) { return $_ if ($r -= $_->[1]) < 0; }
	return $m[-1];
}

###########################################################################
# building batches.  Each returns the bytes to send and the events:
# [payload as the dead letter must hold it, mutation, expected fate]
###########################################################################
sub ndjson_batch
{
	my ($n) = @_;
	my @lines;    # [text, kind, expect]
	# the first line is a valid event: a batch that starts with '[' would
	# be read as one JSON array if it parsed as one
	my $ev = base_event();
	push @lines, [ ser($ev->{pairs}), 'control', 'ok' ];
	while (@lines < $n)
	{
		my $m = chance(0.6) ? choose(@json_mutations) : choose(@line_mutations);
		my ($t, $exp) = $m->[2]->(base_event());
		push @lines, [ $t, $m->[0], $exp ];
	}
	my $text = '';
	my @events;
	for my $l (@lines)
	{
		my ($t, $kind, $exp) = @$l;
		# decorations that change no fate: CRLF, \r\r, spaces and tabs
		my $d = ri(10);
		if    ($d == 0) { $t .= "\r"; $kind .= '+crlf'; }
		elsif ($d == 1) { $t .= "\r\r"; $kind .= '+crcr'; }
		elsif ($d == 2) { $t = " \t$t \t"; $kind .= '+ws'; }
		# blank lines between events: not events
		$text .= pick('', ' ', "\t", "\r", " \t\r", "\r\r") . "\n" if chance(0.05);
		$text .= "$t\n";
		next if $t =~ /^[ \t\r]*$/;
		(my $payload = $t) =~ s/\r\z//;
		push @events, [ $payload, $kind, $exp ];
	}
	$text =~ s/\n\z// if chance(0.5);
	return ($text, \@events);
}

sub array_batch
{
	my ($n) = @_;
	my @events;
	for (1 .. $n)
	{
		my $m = choose(@json_mutations);
		my ($t, $exp) = $m->[2]->(base_event());
		push @events, [ $t, $m->[0], $exp ];
	}
	return ('[' . join(pick(',', ",\n", ' , '), map { $_->[0] } @events) . ']', \@events);
}

# CSV for COPY: values with quotes, commas, newlines in quoted fields,
# empty fields (NULL: the field is missing) and quoted empty strings
sub csv_field
{
	my ($v) = @_;
	return '' unless defined $v;
	return $v if $v ne '' && $v !~ /[",\r\n]/ && $v !~ /^\s|\s$/ && chance(0.7);
	$v =~ s/"/""/g;
	return qq{"$v"};
}
my @csv_swaps = (
	[ event_id => undef, 'bad' ], [ event_id => '', 'bad' ], [ event_id => 'abc', 'bad' ],
	[ event_id => ' %ID ', 'ok' ], [ event_id => '1e3', 'bad' ], [ event_id => '%ID.0', 'bad' ],
	[ event_time => undef, 'bad' ], [ event_time => '', 'bad' ],
	[ user_id => undef, 'bad' ], [ user_id => '', 'ok' ], [ user_id => "a,b \"c\"\nd\r\ne", 'ok' ],
	[ user_id => '"', 'ok' ], [ user_id => ',', 'ok' ], [ user_id => "\x{1F600}, \x{e9}", 'ok' ],
	[ amount => undef, 'ok' ], [ amount => '', 'bad' ], [ amount => 'abc', 'bad' ], [ amount => '12.50', 'ok' ],
	[ amount => 'NaN', 'any' ], [ amount => '-1', 'bad' ], [ amount => '1e308', 'bad' ],
	[ qty => undef, 'ok' ], [ qty => '', 'bad' ], [ qty => '7', 'ok' ], [ qty => '7.5', 'bad' ],
	[ tags => undef, 'ok' ], [ tags => '[1,"a,b"]', 'ok' ], [ tags => '{"a":"x\"y,\nz"}', 'ok' ],
	[ tags => 'abc', 'bad' ], [ tags => '', 'bad' ],
	[ note => undef, 'ok' ], [ note => '', 'ok' ], [ note => "line1\nline2\r\nline3", 'ok' ],
	[ note => 'x' x $big, 'ok' ], [ note => '"quoted", and, commas', 'ok' ], [ note => ' lead and trail ', 'ok' ],
);
sub csv_batch
{
	my ($n, $header) = @_;
	my @events;
	my $csv = $header ? join(',', @cols) . "\n" : '';
	for (1 .. $n)
	{
		my $id = new_id();
		my %row = (event_id => $id, event_time => fmt_time(recent_time()), user_id => "u$id",
			amount => chance(0.7) ? sprintf('%.2f', ri(100000) / 100) : undef,
			qty => chance(0.5) ? 1 + ri(9) : undef, tags => chance(0.3) ? '["t"]' : undef,
			note => chance(0.3) ? rstr(ri(10), 1) : undef);
		my ($kind, $exp) = ('control', 'ok');
		my $r = ri(10);
		if ($r < 5)
		{
			my ($f, $v, $e) = @{ pick(@csv_swaps) };
			$v =~ s/%ID/$id/g if defined $v;
			$row{$f} = $v;
			($kind, $exp) = ("csv_$f", $e);
		}
		elsif ($r < 7)
		{
			my ($t, $e) = @{ pick(@times) };
			$row{event_time} = time_value($t);
			($kind, $exp) = ('csv_time', $e);
		}
		# a field must not hold a line that COPY could take for the end of data
		$row{$_} =~ s/\\\./\\ ./g for grep { defined $row{$_} } @cols;
		$csv .= join(',', map { csv_field($row{$_}) } @cols) . "\n";
		my %obj = map { ($_ => "$row{$_}") } grep { defined $row{$_} } @cols;
		push @events, [ JSON::PP->new->canonical->encode(\%obj), $kind, $exp ];
	}
	return ($csv, \@events);
}

###########################################################################
# sending a batch and checking every guarantee
###########################################################################
my $nbatch = 0;
my $events_sent = 0;
my $failures = 0;
my $receipt_re = qr/^(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)$/;
my $max_skew = q{current_setting('pipeline.max_future_skew')::interval};

sub write_file
{
	my ($path, $bytes) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $bytes;
	close($fh);
	return;
}

# the per-batch checks; returns "name=value ..." for the batch
sub batch_facts
{
	my ($b, $form) = @_;
	my $dlkey = $form eq 'ndjson' ? 'payload' : 'fz.try_jsonb(payload)::text';
	q_ok(qq{
		WITH d AS (SELECT $dlkey AS k FROM pipeline.dead_letters WHERE batch_id = $b)
		UPDATE fz.sent AS s SET rejected = coalesce(s.k, s.payload) IN (SELECT k FROM d WHERE k IS NOT NULL)
		 WHERE s.batch_id = $b});
	return q_ok(qq{
	WITH s AS (SELECT * FROM fz.sent WHERE batch_id = $b),
	d AS (SELECT $dlkey AS k FROM pipeline.dead_letters WHERE batch_id = $b),
	dk AS (SELECT k, count(*) AS n FROM d GROUP BY k),
	sk AS (SELECT coalesce(k, payload) AS k, count(*) AS n FROM s GROUP BY 1),
	vi AS (SELECT ord, o, fz.try_int8(o ->> 'event_id') AS id
	         FROM (SELECT ord, fz.try_jsonb(payload) AS o FROM s WHERE NOT rejected) AS v),
	firsts AS (SELECT DISTINCT ON (id) id, o FROM vi WHERE id IS NOT NULL ORDER BY id, ord),
	r AS (SELECT * FROM pipeline.ev_raw WHERE _pl_batch = $b),
	rb AS (SELECT * FROM pipeline.batch_log WHERE batch_id = $b)
	SELECT concat_ws(' ',
	  'dl=' || (SELECT count(*) FROM d),
	  'dl_not_sent=' || (SELECT count(*) FROM dk LEFT JOIN sk USING (k) WHERE sk.n IS NULL OR dk.k IS NULL),
	  'dl_split=' || (SELECT count(*) FROM dk JOIN sk USING (k) WHERE dk.n <> sk.n),
	  'ok_rejected=' || (SELECT count(*) FROM s WHERE expect = 'ok' AND rejected),
	  'bad_accepted=' || (SELECT count(*) FROM s WHERE expect = 'bad' AND NOT rejected),
	  'valid_without_id=' || (SELECT count(*) FROM vi WHERE id IS NULL),
	  'raw=' || (SELECT count(*) FROM r),
	  'raw_dup=' || (SELECT count(*) - count(DISTINCT event_id) FROM r),
	  'raw_not_sent=' || (SELECT count(*) FROM r WHERE event_id NOT IN (SELECT id FROM vi WHERE id IS NOT NULL)),
	  'ids=' || (SELECT count(*) FROM pipeline.ev_ids WHERE _pl_batch = $b),
	  'ids_not_raw=' || (SELECT count(*) FROM pipeline.ev_ids AS i WHERE i._pl_batch = $b
	                       AND NOT EXISTS (SELECT FROM r WHERE r.event_id = i.event_id)),
	  'lost=' || (SELECT count(DISTINCT id) FROM vi WHERE id NOT IN (SELECT event_id FROM pipeline.ev_ids)),
	  'distinct_valid=' || (SELECT count(DISTINCT id) FROM vi),
	  'stored_before=' || (SELECT count(DISTINCT id) FROM vi
	                        WHERE id IN (SELECT event_id FROM pipeline.ev_ids WHERE _pl_batch <> $b)),
	  'content=' || (SELECT count(*) FROM r JOIN firsts AS f ON f.id = r.event_id
	     WHERE NOT coalesce(
	           (r.event_time = fz.try_ts(f.o ->> 'event_time') OR f.o ->> 'event_time' ~* '^\\s*now\\s*\$')
	       AND r.user_id IS NOT DISTINCT FROM f.o ->> 'user_id'
	       AND r.amount IS NOT DISTINCT FROM fz.try_num(f.o ->> 'amount')
	       AND r.qty IS NOT DISTINCT FROM fz.try_int4(f.o ->> 'qty')
	       AND r.tags IS NOT DISTINCT FROM (CASE jsonb_typeof(f.o -> 'tags')
	                                          WHEN 'string' THEN fz.try_jsonb(f.o ->> 'tags')
	                                          WHEN 'null' THEN NULL ELSE f.o -> 'tags' END)
	       AND r.note IS NOT DISTINCT FROM f.o ->> 'note'
	       AND r._pl_extra IS NOT DISTINCT FROM
	           nullif(f.o - '{event_id,event_time,user_id,amount,qty,tags,note}'::text[], '{}'::jsonb),
	       false)),
	  'contract=' || (SELECT count(*) FROM r, rb WHERE NOT coalesce(
	       isfinite(r.event_time) AND r.event_time >= '1900-01-01 00:00:00+00'
	       AND r.event_time <= rb.received_at + $max_skew
	       AND (r.amount >= 0) IS NOT FALSE AND r.user_id IS NOT NULL, false)),
	  'time_range=' || (SELECT count(*) FROM r, rb WHERE NOT coalesce(
	       r.event_time BETWEEN rb.min_event_time AND rb.max_event_time, false)))});
}

# details of a failed batch, for the diagnostics
sub batch_details
{
	my ($b, $form) = @_;
	my $dlkey = $form eq 'ndjson' ? 'd.payload' : 'fz.try_jsonb(d.payload)::text';
	return q_ok(qq{
		SELECT string_agg(format('ord %s %s (expected %s, %s): %s -- %s', ord, kind, expect,
		         CASE WHEN rejected THEN 'rejected' ELSE 'not rejected' END,
		         left(payload, 160), coalesce(err, '')), E'\\n' ORDER BY ord)
		  FROM (SELECT s.*, (SELECT min(d.error) FROM pipeline.dead_letters AS d
		                      WHERE d.batch_id = $b AND $dlkey = coalesce(s.k, s.payload)) AS err
		          FROM fz.sent AS s WHERE s.batch_id = $b
		           AND ((expect = 'ok' AND rejected) OR (expect = 'bad' AND NOT rejected))
		         LIMIT 20) AS x});
}

# sends one batch; returns the receipt fields (batch_id, received, ...)
sub send_batch
{
	my ($form, $data, $events, %opt) = @_;
	$nbatch++;
	my $tag = sprintf('b%03d', $nbatch);
	my $file = "$dir/$tag.dat";
	my $meta = "$dir/$tag.meta.json";
	my $bytes = encode_utf8($data);
	write_file($file, $bytes);
	write_file($meta, JSON::PP->new->ascii->encode([ map { [@$_] } @$events ]));
	my $key = $opt{key};
	my $k = defined $key ? "'$key'" : 'NULL';
	my ($out, $err);
	if ($form eq 'bulk')
	{
		($out, $err) = run_q(($key ? "SET pipeline.batch_key = '$key';\n" : 'RESET pipeline.batch_key;' . "\n")
			  . "COPY pipeline.ev_load (" . join(', ', @cols) . ") FROM '$file' (FORMAT csv"
			  . ($opt{header} ? ', HEADER' : '') . ");\nRESET pipeline.batch_key");
		my @n = $err =~ /NOTICE:  pipeline: batch (\d+) of source "ev": received (\d+), accepted (\d+), duplicates (\d+), rejected (\d+)/;
		return { error => $err } unless @n;
		$err =~ s/^.*NOTICE:  pipeline: batch .*(\n|\z)//m;
		$err =~ s/^DETAIL:  This batch_key was loaded before.*(\n|\z)//m if $opt{retry};
		return { error => $err } if $err ne '';
		$out = join('|', @n);
	}
	else
	{
		my $arg = $form eq 'jsonb' ? "pg_read_file('$file')::jsonb" : "pg_read_file('$file')";
		($out, $err) = run_q("SELECT * FROM pipeline.ingest('ev', $arg, $k)");
		return { error => $err } if $err ne '';
	}
	my @r = $out =~ $receipt_re or return { error => "no receipt: $out" };
	my %r;
	@r{qw(batch_id received accepted duplicates rejected)} = @r;
	$r{tag} = $tag;
	return \%r;
}

sub check_batch
{
	my ($form, $data, $events, %opt) = @_;
	my $n = scalar @$events;
	my $r = send_batch($form, $data, $events, %opt);
	my $what = sprintf('batch %s (%s, %d events%s)', "b" . sprintf('%03d', $nbatch), $form, $n,
		$opt{key} ? ", key $opt{key}" : '');
	if ($r->{error})
	{
		$failures++;
		fail("$what: a receipt");
		diag("$what: $r->{error}\nseed $seed; sent: $dir/" . sprintf('b%03d', $nbatch) . '.dat');
		return;
	}
	$events_sent += $n;
	my $b = $r->{batch_id};
	my @bad;
	push @bad, "received $r->{received} <> $n sent" if $r->{received} != $n;
	push @bad, 'received <> accepted + duplicates + rejected'
	  if $r->{received} != $r->{accepted} + $r->{duplicates} + $r->{rejected};
	# the receipt as pipeline.batches has it; a COPY's by its batch_key
	my $logged = q_ok("SELECT batch_id || '|' || received || '|' || accepted || '|' || duplicates || '|' || rejected
	                     FROM pipeline.batches WHERE "
		  . ($opt{key} ? "batch_key = '$opt{key}'" : "batch_id = $b"));
	push @bad, "pipeline.batches says '$logged'"
	  if $logged ne join('|', @$r{qw(batch_id received accepted duplicates rejected)});
	my $kexpr = $form eq 'ndjson' ? 'NULL' : "(t.e ->> 0)::jsonb::text";
	q_ok(qq{INSERT INTO fz.sent (batch_id, ord, form, payload, k, kind, expect)
	        SELECT $b, t.ord, '$form', t.e ->> 0, $kexpr, t.e ->> 1, t.e ->> 2
	          FROM jsonb_array_elements(pg_read_file('$dir/$r->{tag}.meta.json')::jsonb) WITH ORDINALITY AS t(e, ord)});
	my %f = map { split /=/ } split / /, batch_facts($b, $form);
	push @bad, "dead letters $f{dl} <> rejected $r->{rejected}" if $f{dl} != $r->{rejected};
	for my $zero (qw(dl_not_sent dl_split ok_rejected bad_accepted valid_without_id raw_dup raw_not_sent
		ids_not_raw lost content contract time_range))
	{
		push @bad, "$zero=$f{$zero}" if $f{$zero} != 0;
	}
	push @bad, "raw rows $f{raw} <> accepted $r->{accepted}" if $f{raw} != $r->{accepted};
	push @bad, "ids $f{ids} <> accepted $r->{accepted}" if $f{ids} != $r->{accepted};
	push @bad, "accepted $r->{accepted} + stored before $f{stored_before} <> distinct valid ids $f{distinct_valid}"
	  if $r->{accepted} + $f{stored_before} != $f{distinct_valid};
	my $dead = alive();
	push @bad, $dead if $dead;
	if (!is(join('; ', @bad), '', "$what: $r->{received} received = $r->{accepted} accepted + "
			. "$r->{duplicates} duplicates + $r->{rejected} rejected; dead letters verbatim; ids stored once"))
	{
		$failures++;
		diag("seed $seed; sent: $dir/$r->{tag}.dat, expected payloads: $dir/$r->{tag}.meta.json");
		diag(batch_details($b, $form)) unless $dead;
	}
	return $r;
}

###########################################################################
# 1. malformed calls and bytes that are not UTF-8: an error, nothing written
###########################################################################
{
	my $before = snapshot();
	for my $case (
		[ q{'{"event_id": 1}'::jsonb}, qr/events must be a JSON array/ ],
		[ q{'{}'::jsonb}, qr/events must be a JSON array/ ],
		[ q{'42'::jsonb}, qr/events must be a JSON array/ ],
		[ q{'"[]"'::jsonb}, qr/events must be a JSON array/ ],
		[ q{'null'::jsonb}, qr/events must be a JSON array/ ],
		[ q{'true'::jsonb}, qr/events must be a JSON array/ ],
		[ q{NULL::jsonb}, qr/events must not be NULL/ ],
		[ q{NULL::text}, qr/events must not be NULL/ ])
	{
		my ($arg, $re) = @$case;
		my ($out, $err) = run_q("SELECT * FROM pipeline.ingest('ev', $arg)");
		like($err, $re, "whole batch $arg: an error");
	}
	# bytes that are not UTF-8: the server refuses the statement (or the
	# file, or the COPY data) before pipeline sees it
	my $good = '{"event_id": 1, "event_time": "2026-01-01T00:00:00Z", "user_id": "';
	write_file("$dir/not_utf8.dat", "$good\xff\xfe\"}");
	write_file("$dir/not_utf8.csv", "7,2026-01-01T00:00:00Z,ok\n8,2026-01-01T00:00:00Z,\xff\n");
	write_file("$dir/bad1.csv", "9,2026-01-01T00:00:00Z,ok\n10,2026-01-01T00:00:00Z,\"unterminated\n");
	write_file("$dir/bad2.csv", "11,2026-01-01T00:00:00Z,ok,extra\n");
	for my $case (
		[ 'text literal', "SELECT * FROM pipeline.ingest('ev', '$good\xc3\x28\"}')" ],
		[ 'text literal, truncated character', "SELECT * FROM pipeline.ingest('ev', '$good\xe6\x97\"}')" ],
		[ 'text literal, UTF-8-encoded surrogate', "SELECT * FROM pipeline.ingest('ev', '$good\xed\xa0\x80\"}')" ],
		[ 'text literal, overlong NUL', "SELECT * FROM pipeline.ingest('ev', '$good\xc0\x80\"}')" ],
		[ 'jsonb literal', "SELECT * FROM pipeline.ingest('ev', '[$good\xff\"}]'::jsonb)" ],
		[ 'file read as text', "SELECT * FROM pipeline.ingest('ev', pg_read_file('$dir/not_utf8.dat'))" ],
		[ 'bytes converted', "SELECT * FROM pipeline.ingest('ev', convert_from(pg_read_binary_file('$dir/not_utf8.dat'), 'UTF8'))" ],
		[ 'COPY data', "COPY pipeline.ev_load (event_id, event_time, user_id) FROM '$dir/not_utf8.csv' (FORMAT csv)" ])
	{
		my ($what, $sql) = @$case;
		my ($out, $err) = run_q($sql);
		like($err, qr/invalid byte sequence for encoding "UTF8"/, "not UTF-8 ($what): the server refuses it");
	}
	# a malformed CSV: COPY fails as a whole
	my ($out, $err) = run_q("COPY pipeline.ev_load (event_id, event_time, user_id) FROM '$dir/bad1.csv' (FORMAT csv)");
	like($err, qr/unterminated CSV quoted field/, 'a malformed CSV is an error');
	($out, $err) = run_q("COPY pipeline.ev_load (event_id, event_time, user_id) FROM '$dir/bad2.csv' (FORMAT csv)");
	like($err, qr/extra data after last expected column/, 'a CSV row with too many fields is an error');
	is(snapshot(), $before, 'malformed calls, bytes that are not UTF-8 and bad CSV wrote nothing');
	is(alive(), '', 'the server is up after the malformed calls');

	# empty batches: an empty receipt
	for my $arg (q{'[]'::jsonb}, q{''::text}, q{E'\n \t\r\n\r\n'::text}, q{E'[]'::text}, q{E'  \n [ ] '::text})
	{
		($out, $err) = run_q("SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('ev', $arg)");
		is("$out$err", '0|0|0|0', "empty batch $arg: received 0");
	}
}

# text that starts with '[' is one JSON array only if it parses as one;
# otherwise it is NDJSON, and the array line one event (not an object)
{
	my $e1 = ser(base_event()->{pairs});
	my $e2 = ser(base_event()->{pairs});
	check_batch('ndjson', "[$e1]\n$e2", [ [ "[$e1]", 'array_line', 'bad' ], [ $e2, 'control', 'ok' ] ]);
	check_batch('textarray', "  \n[$e1,\n$e2]\n", [ [ $e1, 'control', 'ok' ], [ $e2, 'control', 'ok' ] ]);
}

###########################################################################
# 2. the fuzz rounds
###########################################################################
my %form_weights = (ndjson => 40, jsonb => 25, textarray => 15, bulk => 20);
my $nkeys = 0;
while ($events_sent < $target_events && $failures < 5)
{
	my $form = choose(map { [ $_, $form_weights{$_} ] } sort keys %form_weights)->[0];
	push @old_ids, @batch_ids;
	@batch_ids = ();
	my $n = 20 + ri(300);
	my ($data, $events);
	if    ($form eq 'ndjson') { ($data, $events) = ndjson_batch($n); }
	elsif ($form eq 'bulk')   { ($data, $events) = csv_batch($n, chance(0.5)); }
	else                      { ($data, $events) = array_batch($n); }
	my %opt = (header => ($form eq 'bulk' && $data =~ /\Aevent_id,/) ? 1 : 0);
	$opt{key} = sprintf('fuzz-%d-%d', $seed, ++$nkeys) if chance(0.15);
	# a COPY's receipt is a NOTICE: it is looked up by batch_key as well
	$opt{key} //= sprintf('fuzz-%d-copy-%d', $seed, $nbatch + 1) if $form eq 'bulk';
	my $r = eval { check_batch($form eq 'textarray' ? 'textarray' : $form, $data, $events, %opt) };
	if (!defined $r && $@)
	{
		$failures++;
		fail("batch b" . sprintf('%03d', $nbatch) . " ($form): $@");
		diag("seed $seed; sent: $dir/" . sprintf('b%03d', $nbatch) . '.dat');
		my $dead = alive();
		diag("server: $dead") if $dead;
		last if $dead;
		next;
	}
	next unless $r && $opt{key};

	# a retry with the same key, the same or other events: the original
	# receipt, nothing applied
	my $before = snapshot();
	my ($data2) = chance(0.5) ? ($data) : ($form eq 'ndjson' ? ndjson_batch(5) : $form eq 'bulk' ? csv_batch(5, 0) : array_batch(5));
	my $r2 = send_batch($form, $data2, [], key => $opt{key}, retry => 1, header => $opt{header} && $data2 eq $data);
	is(join('|', map { $_ // '' } @$r2{qw(batch_id received accepted duplicates rejected error)}),
		join('|', map { $_ // '' } @$r{qw(batch_id received accepted duplicates rejected error)}),
		"retry of key $opt{key} ($form): the original receipt");
	is(snapshot(), $before, "retry of key $opt{key}: nothing applied");
}
diag(sprintf('%d events in %d batches sent in %.1f s', $events_sent, $nbatch, Time::HiRes::time() - $t_start));
cmp_ok($events_sent, '>=', $target_events, "at least $target_events events sent");
if (my $dead = alive())
{
	fail("the server is up after the fuzz rounds: $dead");
	done_testing();
	exit;
}

###########################################################################
# 3. batches larger than a chunk (10,000 events): duplicates across the
# chunk boundary, rejections on both sides of it
###########################################################################
if ($failures < 5)
{
	my $base = $next_id + 1000;
	$next_id = $base + 20000;
	my (@lines, @events);
	for my $i (0 .. 10049)
	{
		# ids repeat after 9,000 events: rows 9,000-9,999 repeat ids of the
		# first chunk in the first chunk, rows 10,000-10,049 in the second
		my $id = $base + $i % 9000;
		my $bad = $i % 97 == 0;
		my $t = qq({"event_id":$id,"event_time":") . fmt_time(recent_time(), 0)
		  . qq(","user_id":"u$i","amount":) . ($bad ? -1 : $i % 100) . '}';
		push @lines, $t;
		push @events, [ $t, 'chunk', $bad ? 'bad' : 'ok' ];
	}
	eval { check_batch('ndjson', join("\n", @lines), \@events); 1 } or do { $failures++; fail("chunk batch: $@"); };

	$base = $next_id + 1000;
	$next_id = $base + 20000;
	my $csv = '';
	@events = ();
	for my $i (0 .. 10049)
	{
		my $id = $base + $i % 9000;
		my $bad = $i % 89 == 0;
		my $note = $i % 3 == 0 ? "n,$i\n\"q\"" : undef;
		my %row = (event_id => $id, event_time => fmt_time(recent_time(), 0), user_id => "u$i",
			amount => $bad ? '-1' : $i % 100, note => $note);
		$csv .= join(',', map { csv_field($row{$_}) } @cols) . "\n";
		my %obj = map { ($_ => "$row{$_}") } grep { defined $row{$_} } @cols;
		push @events, [ JSON::PP->new->canonical->encode(\%obj), 'chunk', $bad ? 'bad' : 'ok' ];
	}
	eval { check_batch('bulk', $csv, \@events, key => "fuzz-$seed-chunk"); 1 }
	  or do { $failures++; fail("chunk COPY: $@"); };
	is(q_ok(qq{SELECT count(*) FROM pipeline.ev_raw WHERE event_id BETWEEN $base AND $base + 8999
	            AND (event_id - $base) % 89 <> 0 AND user_id <> 'u' || (event_id - $base)}),
		'0', 'chunk COPY: the first of each id wins, across the chunk boundary too');
}

###########################################################################
# 4. the whole run
###########################################################################
is(q_ok(q{SELECT count(*) FROM pipeline.batch_log WHERE received <> accepted + duplicates + rejected}),
	'0', 'every receipt balances');
is(q_ok(q{SELECT (SELECT coalesce(sum(received), 0) FROM pipeline.batch_log)
              - (SELECT count(*) FROM fz.sent)}),
	'0', 'sum of received over all receipts = events sent');
is(q_ok(q{SELECT (SELECT coalesce(sum(rejected), 0) FROM pipeline.batch_log)
              - (SELECT count(*) FROM pipeline.dead_letters)}),
	'0', 'sum of rejected = dead letters');
is(q_ok(q{SELECT (SELECT coalesce(sum(accepted), 0) FROM pipeline.batch_log) || '|'
              || (SELECT count(*) FROM pipeline.ev_raw) || '|'
              || (SELECT count(DISTINCT event_id) FROM pipeline.ev_raw) || '|'
              || (SELECT count(*) FROM pipeline.ev_ids)}),
	join('|', (q_ok('SELECT count(*) FROM pipeline.ev_raw')) x 4),
	'sum of accepted = raw rows = distinct raw ids = id index rows');
is(q_ok(q{SELECT count(*) FROM (
	  (SELECT event_id FROM pipeline.ev_raw EXCEPT SELECT event_id FROM pipeline.ev_ids)
	  UNION ALL (SELECT event_id FROM pipeline.ev_ids EXCEPT SELECT event_id FROM pipeline.ev_raw)) AS x}),
	'0', 'raw and the id index hold the same ids');
is(q_ok(q{SELECT count(*) FROM (
	  (SELECT fz.try_int8(fz.try_jsonb(payload) ->> 'event_id') FROM fz.sent WHERE NOT rejected
	   EXCEPT SELECT event_id FROM pipeline.ev_raw)
	  UNION ALL (SELECT event_id FROM pipeline.ev_raw
	   EXCEPT SELECT fz.try_int8(fz.try_jsonb(payload) ->> 'event_id') FROM fz.sent WHERE NOT rejected)) AS x}),
	'0', 'the distinct ids of the events not rejected are exactly the ids stored');
is(q_ok(q{SELECT count(*) FROM pipeline.dead_letters
           WHERE NOT (fz.valid_utf8(payload) AND fz.valid_utf8(error) AND fz.valid_utf8(coalesce(field, '')))}),
	'0', 'dead letters hold valid UTF-8');
is(q_ok(q{SELECT count(*) FROM pipeline.drift_counts WHERE NOT fz.valid_utf8(field)}),
	'0', 'contract_drift field names are valid UTF-8 (long ones are cut on a character boundary)');
is(alive(), '', 'the server is up at the end, no backend was terminated by a signal');
is(q_ok('SELECT pg_backend_pid()'), $backend_pid, 'one backend served the whole run');

# what the mutations did, for the log
diag(q_ok(q{SELECT string_agg(format('%-28s %6s sent %6s rejected', kind, n, r), E'\n' ORDER BY kind)
              FROM (SELECT regexp_replace(kind, '\+.*', '') AS kind, count(*) AS n,
                           count(*) FILTER (WHERE rejected) AS r FROM fz.sent GROUP BY 1) AS x}));
diag(q_ok(q{SELECT 'stored amounts that are NaN: ' || count(*) FROM pipeline.ev_raw WHERE amount = 'NaN'}));
diag(sprintf('seed %d: %d events in %d batches, %.1f s', $seed, $events_sent, $nbatch, Time::HiRes::time() - $t_start));

$s->quit;
$node->stop;
# the batches are kept for a replay only when something failed
File::Path::rmtree($dir) if Test::More->builder->is_passing;
done_testing();
