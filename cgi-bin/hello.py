#!/usr/bin/env python3
"""A Python CGI script: echoes the method, the query and the body length."""
import os
import sys
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
length = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(length) if length else b""
out = sys.stdout
out.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
out.write("Hello from Python %s\n" % sys.version.split()[0])
out.write("method=%s query=%r body=%d bytes\n" % (os.environ.get("REQUEST_METHOD"), query, len(body)))
