"""The testing REST server serves connections whose file descriptor is 1024 or above (select()
cannot wait on those: "filedescriptor out of range"), keep-alive included; 127.0.0.1 only."""

from __future__ import annotations

import http.client
import json
import os
import resource

import numpy as np
import pytest

pytest.importorskip("tensorflow_serving")

from test_serving_limits import PREDICT, ok_body, served  # noqa: E402,F401 - the fixture


def test_connections_above_fd_1024_are_served_with_keepalive(served):  # noqa: F811
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"open-file limit {soft} < 1200")
    fill = []
    try:
        while not fill or fill[-1] < 1100:
            fill.append(os.open(os.devnull, os.O_RDONLY))
        srv, x = served["srv"], served["x"]
        c = http.client.HTTPConnection("127.0.0.1", srv.rest_port, timeout=20)
        try:
            for _ in range(3):  # the 2nd and 3rd wait for the next request on the same socket
                c.request("POST", PREDICT, ok_body(x[:2]))
                r = c.getresponse()
                assert r.status == 200
                got = np.asarray(json.loads(r.read())["predictions"])
                np.testing.assert_allclose(got, served["want"][:2], rtol=1e-4, atol=1e-6)
            assert c.sock.fileno() > 1024
        finally:
            c.close()
    finally:
        for fd in fill:
            os.close(fd)
