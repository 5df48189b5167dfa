#!/bin/sh
# gatewire as a CGI program: drop this file into any cgi-bin (Apache mod_cgi/mod_cgid, lighttpd
# mod_cgi, fcgiwrap, python3 -m http.server --cgi), make it executable, and point the two paths
# of the last line at gatewire's CLI and at your app (an environ, node or fetch app). Name the
# copy nph-<something> to answer with a complete HTTP response (non-parsed headers).
# As it stands (or symlinked), it runs examples/hello.mjs from this checkout.
here=$(dirname "$(readlink -f "$0")")
exec node "$here/../dist/src/cli.js" cgi "$here/hello.mjs"
