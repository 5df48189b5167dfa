#!/bin/sh
# The smallest CGI script: a document response (RFC 3875 §6.2.1).
printf 'Content-Type: text/plain\n\nHello from hello.sh\n'
