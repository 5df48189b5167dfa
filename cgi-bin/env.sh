#!/bin/sh
# Shows what a CGI script receives: the environment (sorted), argv and the request body.
printf 'Content-Type: text/plain; charset=utf-8\n\n'
echo '== environment'
env | LC_ALL=C sort
echo "== argv: $#"
if [ -n "${CONTENT_LENGTH:-}" ] && [ "$CONTENT_LENGTH" -gt 0 ]; then
    echo "== body ($CONTENT_LENGTH bytes)"
    head -c "$CONTENT_LENGTH"
    echo
fi
