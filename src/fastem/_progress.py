"""Progress on the command line: a tqdm bar, a plain updating line, or nothing.

The command line opens one :class:`Progress` around a long piece of work and
hands one of its methods to the code doing it:

- ``fastem fit``: ``GaussianMixture(callback=progress.on_iteration)``, one
  tick per EM iteration, showing the initialisation, the iteration, the lower
  bound and its change;
- ``fastem select``: ``fastem.select(..., on_candidate=progress.on_candidate)``,
  one tick per fitted candidate, showing its parameters.

Which display is used is decided once, when the object is made
(:func:`display_mode`): nothing when ``quiet`` is set or the stream is not a
terminal (a pipe, a file, a CI log: no control characters in logs), tqdm's
bar when tqdm is installed (the optional extra ``fastem[progress]``),
otherwise one line rewritten in place with a carriage return.  Nothing is
drawn before ``delay`` seconds have passed, so short runs stay silent.
"""
import importlib
import math
import sys
import time

__all__ = ["Progress", "display_mode"]

# Short runs finish before this many seconds and print nothing.
DEFAULT_DELAY = 0.5
# A plain line is redrawn at most this often: a fit may make thousands of fast
# iterations, and writing each would cost more than the iterations.
DEFAULT_MIN_INTERVAL = 0.1


def _tqdm_class():
    """tqdm's bar class, or None when tqdm is not installed."""
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def display_mode(stream, quiet=False):
    """How progress would be shown on `stream`: ``"off"``, ``"tqdm"`` or ``"line"``.

    Parameters
    ----------
    stream : file-like
        Where progress is written (the command line uses ``sys.stderr``).
    quiet : bool, default=False
        ``--quiet``: show nothing.

    Returns
    -------
    str
    """
    if quiet or not _is_terminal(stream):
        return "off"
    return "tqdm" if _tqdm_class() is not None else "line"


def _format_number(value):
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


class Progress:
    """A progress display for one piece of work, used as a context manager.

    Parameters
    ----------
    description : str
        What is running, shown first (``"fit"``, ``"select"``).
    total : int or None, default=None
        Expected number of ticks, when known (a bar and a count out of it are
        shown); None shows a running count.
    unit : str, default="it"
        What a tick is (``"iteration"``, ``"candidate"``).
    stream : file-like, default=None
        Where to draw; ``sys.stderr`` when None.
    quiet : bool, default=False
        Draw nothing.
    delay : float or None, default=None
        Seconds before anything is drawn; None: ``DEFAULT_DELAY`` (0.5).
    min_interval : float or None, default=None
        Least seconds between two redraws of the plain line (tqdm applies its
        own); None: ``DEFAULT_MIN_INTERVAL`` (0.1).

    Attributes
    ----------
    mode : {"off", "tqdm", "line"}
        The display chosen by :func:`display_mode`.
    count : int
        Ticks so far.

    Examples
    --------
    >>> import io
    >>> from fastem import GaussianMixture
    >>> from fastem._progress import Progress
    >>> with Progress("fit", unit="iteration", stream=io.StringIO()) as progress:
    ...     gm = GaussianMixture(2, callback=progress.on_iteration)
    >>> progress.mode
    'off'
    """

    def __init__(self, description, total=None, *, unit="it", stream=None, quiet=False,
                 delay=None, min_interval=None):
        self.description = description
        self.total = total
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.delay = DEFAULT_DELAY if delay is None else delay
        self.min_interval = DEFAULT_MIN_INTERVAL if min_interval is None else min_interval
        self.mode = display_mode(self.stream, quiet)
        self.count = 0
        self._status = ""
        self._bar = None
        self._started = time.perf_counter()
        self._last_draw = None
        self._drawn_width = 0
        if self.mode == "tqdm":
            self._bar = _tqdm_class()(
                total=total, desc=description, unit=f" {unit}", file=self.stream,
                delay=self.delay, leave=True, dynamic_ncols=True,
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------------
    # what the work reports
    # ------------------------------------------------------------------
    def update(self, n=1, status=None):
        """Count `n` more ticks and show `status` (a short text) beside them.

        Parameters
        ----------
        n : int, default=1
        status : str or None, default=None
            Replaces the text shown after the count; None keeps it.
        """
        self.count += n
        if status is not None:
            self._status = status
        if self.mode == "tqdm":
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(n)
        elif self.mode == "line":
            self._draw_line(final=False)

    def on_iteration(self, info):
        """A ``GaussianMixture(callback=...)``: one tick per EM iteration.

        Parameters
        ----------
        info : fastem._base.Iteration
            The iteration's ``init``, ``n_iter``, ``lower_bound`` and ``change``.

        Returns
        -------
        None
            Never asks the fit to stop.
        """
        self.update(1, (
            f"init {info.init + 1} iteration {info.n_iter} "
            f"lower bound {_format_number(float(info.lower_bound))} "
            f"change {_format_number(float(info.change))}"
        ))

    def on_candidate(self, done, total, params):
        """A ``fastem.select(on_candidate=...)``: one tick per fitted candidate.

        Parameters
        ----------
        done : int
            Candidates fitted so far (the count is set to it, so candidates
            that finish out of order in parallel are counted once each).
        total : int
            Candidates in all; sets the bar's length.
        params : dict
            The finished candidate's parameters, shown as ``key=value``.
        """
        if self.total != total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        status = " ".join(f"{key}={value}" for key, value in params.items())
        self.update(done - self.count, f"last {status}")

    def close(self):
        """Finish the display: the final state stays on screen, on its own line."""
        if self.mode == "tqdm" and self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "line" and self._last_draw is not None:
            self._draw_line(final=True)
            self.stream.write("\n")
            self.stream.flush()
            self._last_draw = None
        self.mode = "off"

    # ------------------------------------------------------------------
    # the plain line
    # ------------------------------------------------------------------
    def _draw_line(self, final):
        now = time.perf_counter()
        if not final:
            if now - self._started < self.delay:
                return
            if self._last_draw is not None and now - self._last_draw < self.min_interval:
                return
        count = f"{self.count}/{self.total}" if self.total is not None else str(self.count)
        text = f"{self.description}: {count} {self.unit}s  {self._status}  {now - self._started:.1f}s"
        # Blank out what a longer previous line left behind.
        padding = " " * max(0, self._drawn_width - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._drawn_width = len(text)
        self._last_draw = now
