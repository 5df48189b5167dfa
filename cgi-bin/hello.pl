#!/usr/bin/perl
# A Perl CGI script: query parameters decoded by hand (no CGI.pm needed).
use strict;
use warnings;
my %q;
for my $pair (split /[&;]/, $ENV{QUERY_STRING} // '') {
    my ($k, $v) = split /=/, $pair, 2;
    next unless defined $k && length $k;
    for ($k, $v) { next unless defined; tr/+/ /; s/%([0-9A-Fa-f]{2})/chr hex $1/ge; }
    $q{$k} = $v // '';
}
my $name = $q{name} // 'world';
print "Content-Type: text/plain; charset=utf-8\r\n\r\n";
print "Hello, $name, from Perl $^V\n";
print "SCRIPT_NAME=$ENV{SCRIPT_NAME} PATH_INFO=", ($ENV{PATH_INFO} // ''), "\n";
