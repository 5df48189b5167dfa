#!/bin/sh
# CGI hello for the cgi group (run once per request by fcgiwrap or gatewire --cgi-bin).
printf 'Content-Type: text/plain\n\nHello, World!\n'
