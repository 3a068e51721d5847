"""conftest.py - pytest fixtures over harness.py (see there)."""
import os
import re
import shutil
import tempfile

import pytest

from harness import Daemon, Servers

_counter = [0]


@pytest.fixture(scope="session")
def servers():
    s = Servers()
    yield s
    s.close()


@pytest.fixture
def db(servers, request):
    _counter[0] += 1
    name = "t%d_%s" % (_counter[0], re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:40])
    d = servers.new_database(name)
    yield d
    servers.drop_database(name)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="aryz-t-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons(workdir):
    """Factory: daemons(name, config) -> Daemon; all are stopped and their
    logs checked for sanitizer reports and crashes at teardown."""
    made = []

    def make(name, config):
        d = Daemon(workdir, name, config)
        made.append(d)
        return d
    yield make
    errors = []
    for d in made:
        try:
            rc = d.stop()
            # Still running at teardown: it must stop cleanly on SIGTERM.
            # A crash (signal) or a sanitizer exit code shows up here too.
            if rc not in (0, None):
                errors.append("%s exited with %s at teardown:\n%s" % (d.name, rc, d.log()[-3000:]))
        except AssertionError as e:
            errors.append(str(e))
        try:
            d.check_clean()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))
