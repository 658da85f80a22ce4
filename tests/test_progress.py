"""Progress on the command line (fastem._progress): off, a plain line, or tqdm.

A terminal is faked with a StringIO whose ``isatty`` says True; tqdm is made
absent or present by replacing the function that finds it.
"""
import io

import numpy as np
import pytest

from fastem import GaussianMixture
from fastem import _progress
from fastem._progress import Progress, display_mode
from fastem.cli import main


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm_class", lambda: None)


@pytest.fixture
def X(make_blobs):
    X, _, _, _ = make_blobs(300, 2, 3)
    return X


def test_mode_follows_quiet_terminal_and_tqdm(monkeypatch):
    assert display_mode(io.StringIO()) == "off"
    assert display_mode(Terminal(), quiet=True) == "off"
    monkeypatch.setattr(_progress, "_tqdm_class", lambda: None)
    assert display_mode(Terminal()) == "line"
    monkeypatch.setattr(_progress, "_tqdm_class", lambda: object)
    assert display_mode(Terminal()) == "tqdm"


def test_not_a_terminal_writes_nothing(X):
    stream = io.StringIO()
    with Progress("fit", unit="iteration", stream=stream, delay=0) as progress:
        GaussianMixture(3, random_state=0, callback=progress.on_iteration).fit(X)
    assert progress.count > 0
    assert stream.getvalue() == ""


def test_quiet_writes_nothing_on_a_terminal(no_tqdm, X):
    stream = Terminal()
    with Progress("fit", stream=stream, quiet=True, delay=0) as progress:
        GaussianMixture(3, random_state=0, callback=progress.on_iteration).fit(X)
    assert stream.getvalue() == ""


def test_plain_line_is_rewritten_in_place(no_tqdm, X):
    stream = Terminal()
    with Progress("fit", unit="iteration", stream=stream, delay=0, min_interval=0) as progress:
        gm = GaussianMixture(3, random_state=0, tol=1e-6, callback=progress.on_iteration).fit(X)
    text = stream.getvalue()
    assert progress.mode == "off"  # closed
    # One draw per iteration and a final one, each starting with a carriage
    # return; one newline at the very end leaves the last state on screen.
    draws = text.split("\r")[1:]
    assert len(draws) == gm.n_iter_ + 1
    assert text.endswith("\n") and text.count("\n") == 1
    last = draws[-1].rstrip()
    assert last.startswith(f"fit: {gm.n_iter_} iterations")
    assert f"iteration {gm.n_iter_} " in last
    assert f"lower bound {float(gm.lower_bound_):.6g}" in last
    # A shorter line blanks out what the longer one before it left behind.
    widths = [len(draw.rstrip("\n")) for draw in draws]
    assert all(b >= a for a, b in zip(widths, widths[1:]))


def test_plain_line_waits_for_the_delay(no_tqdm, X):
    stream = Terminal()
    with Progress("fit", stream=stream, delay=3600) as progress:
        GaussianMixture(3, random_state=0, callback=progress.on_iteration).fit(X)
    assert progress.count > 0
    assert stream.getvalue() == ""


def test_candidates_count_to_the_total(no_tqdm):
    stream = Terminal()
    with Progress("select", unit="candidate", stream=stream, delay=0, min_interval=0) as progress:
        for done in range(1, 5):
            progress.on_candidate(done, 4, {"n_components": done, "covariance_type": "diag"})
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("select: 4/4 candidates")
    assert "n_components=4 covariance_type=diag" in last
    assert progress.count == 4


class FakeTqdm:
    """Records how fastem drives tqdm's bar."""

    instances = []

    def __init__(self, **kwargs):
        self.kwargs, self.updates, self.postfixes, self.closed = kwargs, [], [], False
        self.total = kwargs.get("total")
        FakeTqdm.instances.append(self)

    def update(self, n):
        self.updates.append(n)

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)

    def close(self):
        self.closed = True


def test_tqdm_bar_gets_one_update_per_tick(monkeypatch, X):
    FakeTqdm.instances = []
    monkeypatch.setattr(_progress, "_tqdm_class", lambda: FakeTqdm)
    stream = Terminal()
    with Progress("fit", unit="iteration", stream=stream) as progress:
        gm = GaussianMixture(3, random_state=0, callback=progress.on_iteration).fit(X)
    (bar,) = FakeTqdm.instances
    assert bar.kwargs["file"] is stream and bar.kwargs["desc"] == "fit"
    assert bar.updates == [1] * gm.n_iter_
    assert bar.postfixes[-1].startswith(f"init 1 iteration {gm.n_iter_} lower bound")
    assert bar.closed
    assert stream.getvalue() == ""  # the fake draws nothing; fastem wrote nothing itself


def test_tqdm_bar_total_follows_the_candidates(monkeypatch):
    FakeTqdm.instances = []
    monkeypatch.setattr(_progress, "_tqdm_class", lambda: FakeTqdm)
    with Progress("select", unit="candidate", stream=Terminal()) as progress:
        progress.on_candidate(2, 6, {"n_components": 1})  # two finished together
        progress.on_candidate(3, 6, {"n_components": 2})
    (bar,) = FakeTqdm.instances
    assert bar.total == 6 and bar.updates == [2, 1]


def test_real_tqdm_draws_on_a_terminal(X):
    pytest.importorskip("tqdm")
    stream = Terminal()
    with Progress("fit", unit="iteration", stream=stream, delay=0) as progress:
        GaussianMixture(3, random_state=0, callback=progress.on_iteration).fit(X)
    assert progress.count > 0
    text = stream.getvalue()
    assert text.startswith("\r") and "fit:" in text and "lower bound" in text


def test_cli_fit_shows_nothing_when_stderr_is_not_a_terminal(capsys, tmp_path, X):
    np.save(tmp_path / "x.npy", X)
    assert main(["fit", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_fit_progress_on_a_terminal(monkeypatch, capsys, tmp_path, X, no_tqdm, quiet):
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(_progress, "DEFAULT_DELAY", 0.0)
    monkeypatch.setattr(_progress, "DEFAULT_MIN_INTERVAL", 0.0)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    status = main(["fit", str(tmp_path / "x.npy"), "--tol", "1e-6"] + (["--quiet"] if quiet else []))
    assert status == 0
    out = capsys.readouterr().out
    assert "BIC" in out and "\r" not in out
    progress = terminal.getvalue()
    if quiet:
        assert progress == ""
    else:
        n_iter = int(out.split("iterations")[1].split()[0])
        assert progress.split("\r")[-1].startswith(f"fit: {n_iter} iterations")
