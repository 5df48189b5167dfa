#!/bin/sh
# An NPH script (name starts with nph-): writes the status line itself; output is streamed as produced.
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\n'
for i in 1 2 3 4 5; do
    date -u '+%H:%M:%S'
    sleep 1
done
