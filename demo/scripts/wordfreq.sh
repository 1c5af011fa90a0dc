#!/bin/sh
# wordfreq.sh [-n N] [FILE...]: the N most frequent words (default 10) of the FILEs, or of
# standard input, as "count word" lines, the most frequent first.
#
# A word is what textstats.words() finds: a run of ASCII letters and apostrophes, lower-
# cased ("café" gives "caf", as in Python). Ties are broken alphabetically, so the same
# counts always give the same list; report.py does not do that yet (see its TODO), and
# this script is the reference its fix can be checked against.
set -eu
export LC_ALL=C  # bytes, not the user's locale: the same letters and order everywhere

top=10
while getopts n: opt; do
    case $opt in
        n) top=$OPTARG ;;
        *) echo "usage: wordfreq.sh [-n N] [FILE...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
case $top in
    '' | *[!0-9]*) echo "wordfreq.sh: -n wants a whole number, got '$top'" >&2; exit 2 ;;
esac
for file in "$@"; do  # checked first: a pipeline's status is only its last command's
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        echo "wordfreq.sh: cannot read $file" >&2
        exit 2
    fi
done

cat -- "$@" |
    tr -cs "A-Za-z'" '\n' |
    tr 'A-Z' 'a-z' |
    grep -v '^$' |
    sort |
    uniq -c |
    sort -k1,1nr -k2,2 |
    head -n "$top" |
    awk '{ printf "%7d %s\n", $1, $2 }'
