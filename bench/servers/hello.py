# The Python hello WSGI app used for gunicorn and uWSGI (same response as every target:
# 200, Content-Type text/plain, body "Hello, World!\n").
BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
