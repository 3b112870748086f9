# PipelineCompare: two databases (or two runs) that must answer the same,
# compared as text.  same_text() is is() with a unified diff of what
# differs; state_of() and same_state() run a set of queries in each
# database and compare the answers one by one; keys_of() and
# close_days_sql() are the SQL that makes answers comparable across
# databases (batch keys rather than batch ids, one line per close_days run).
package PipelineCompare;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT_OK = qw(same_text state_of same_state keys_of close_days_sql);

my $tmp;
my $diffs = 0;

# is() for two texts (dumps, lists, rows), with a unified diff of them when
# they differ: "-" lines are $name_a's, "+" lines $name_b's.  Returns
# whether they are the same.
sub same_text
{
	my ($name_a, $text_a, $name_b, $text_b, $test) = @_;
	my $same = $text_a eq $text_b;
	ok($same, $test);
	return $same if $same;
	$tmp //= PostgreSQL::Test::Utils::tempdir;
	$diffs++;
	my ($fa, $fb) = ("$tmp/$diffs-$name_a", "$tmp/$diffs-$name_b");
	append_to_file($fa, "$text_a\n");
	append_to_file($fb, "$text_b\n");
	my ($diff, $err) = ('', '');
	IPC::Run::run([ 'diff', '-u', $fa, $fb ], '>', \$diff, '2>', \$err);
	diag("diff -u $name_a $name_b:\n$diff$err");
	return $same;
}

# the answer of each query of %$queries (name => SQL) in database $db of
# $node, as a hash reference name => answer
sub state_of
{
	my ($node, $db, $queries) = @_;
	return { map { $_ => $node->safe_psql($db, $queries->{$_}) } keys %$queries };
}

# runs %$queries in $db_a and $db_b and tests each pair of answers with
# same_text ("$when: <name> is the same$suffix"); returns $db_a's state
sub same_state
{
	my ($node, $queries, $db_a, $db_b, $when, $suffix) = @_;
	$suffix //= '';
	my %s = map { $_ => state_of($node, $_, $queries) } ($db_a, $db_b);
	same_text($db_a, $s{$db_a}{$_}, $db_b, $s{$db_b}{$_}, "$when: $_ is the same$suffix")
	  for sort keys %$queries;
	return $s{$db_a};
}

# SQL: the batch ids of the array expression $ids as the batch keys they
# stand for (the same steps in two databases may number batches apart)
sub keys_of
{
	my ($ids) = @_;
	return qq{(SELECT jsonb_agg(b.batch_key ORDER BY b.batch_key) FROM pipeline.batches AS b
	            WHERE b.batch_id = ANY ($ids))};
}

# SQL: close_days($as_of), answering one line 'close <as_of>: <metric> <day>
# <action>, ...' ('nothing' when no day changed)
sub close_days_sql
{
	my ($as_of) = @_;
	return qq{SELECT 'close $as_of: ' || coalesce(string_agg(concat_ws(' ', metric, day, action), ', '
	                                                         ORDER BY metric, day), 'nothing')
	            FROM pipeline.close_days('$as_of');\n};
}

1;
