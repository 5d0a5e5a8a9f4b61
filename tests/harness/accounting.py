"""harness.accounting — owns how scripts/test counts pytest results: a pytest
plugin that counts one outcome per test (failed if any phase failed), counts
a skipped test as failed unless a loaded conftest names it in EXPECTED_SKIPS
({node id: reason}), makes pytest exit 1 on such a skip, and with
--chc-summary FILE writes "passed=N" and "failed=N" there.

tests/integration/conftest.py imports these hooks; other suites load it with
`-p harness.accounting` (PYTHONPATH=tests).
"""

import pytest

_outcomes = {}
_expected = {}


def pytest_addoption(parser):
    parser.addoption('--chc-summary', metavar='FILE',
                     help='write passed=N failed=N (unexpected skips count as failed) to FILE')


def pytest_configure(config):
    for plugin in config.pluginmanager.get_plugins():
        _expected.update(getattr(plugin, 'EXPECTED_SKIPS', None) or {})


def pytest_runtest_logreport(report):
    prev = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = 'failed'
    elif report.skipped and prev != 'failed':
        _outcomes[report.nodeid] = 'skipped'
    elif report.when == 'call' and report.passed and prev is None:
        _outcomes[report.nodeid] = 'passed'


def _unexpected_skips():
    return [n for n, o in _outcomes.items() if o == 'skipped' and n not in _expected]


def pytest_terminal_summary(terminalreporter):
    bad = _unexpected_skips()
    if bad:
        terminalreporter.write_line(f'{len(bad)} unexpected skip(s), counted as failed '
                                    f'(list expected ones in EXPECTED_SKIPS of the conftest):', red=True)
        for n in bad:
            terminalreporter.write_line(f'  {n}', red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    bad = _unexpected_skips()
    passed = sum(1 for o in _outcomes.values() if o == 'passed')
    passed += sum(1 for n, o in _outcomes.items() if o == 'skipped' and n in _expected)
    failed = sum(1 for o in _outcomes.values() if o == 'failed') + len(bad)
    if bad and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = session.config.getoption('--chc-summary')
    if path:
        with open(path, 'w') as f:
            f.write(f'passed={passed}\nfailed={failed}\n')
