"""What a source's responses may get wrong, as urllib and http.client report it.

A malformed response (a bad status line, too many or too long headers, broken chunked
encoding, a reset in the middle of the headers) surfaces as one of ``RESPONSE_ERRORS``;
``describe`` turns any of them into one short line. The opener follows redirects to http and
https only.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request

# What a malformed response raises inside urllib and http.client: HTTPException (bad status
# line, LineTooLong, too many headers, IncompleteRead), OSError (resets, timeouts), ValueError
# (an unparsable redirect target or chunk size).
RESPONSE_ERRORS = (http.client.HTTPException, OSError, ValueError)
_MAX_DESCRIPTION = 200


def describe(exc: BaseException) -> str:
    """One short line: a status line or header the server sent may be long, or hold newlines."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = f"{exc.reason}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DESCRIPTION else line[: _MAX_DESCRIPTION - 3] + "..."


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp: as well; a source may only send us to http(s).

    (Other schemes urllib refuses itself, with the same HTTPError; ``tlc.sources.http`` words both.)
    The credentials never follow: they are an unredirected header (see ``tlc.sources.http._request``).
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"{msg} - redirection is not allowed", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(_HttpRedirectsOnly)
