"""A/B experiments: a proposed change is tried on a share of decisions and judged by a test.

Learning, conservatively (issue 14): a reflection (or a ``PROPOSE_EXPERIMENT``
decision) may *propose* a change of one parameter or filter; it becomes an
``experiments`` row (status ``proposed``), is started (``running``), observed
(``experiment_observations``) and judged. Only an ``accepted`` experiment may change
anything, and the change is recorded with actor ``experiment:<id>``
(:func:`apply_change`); nothing here takes a parameter value from a model's answer
and applies it.

What may be experimented on
---------------------------
* a *filter*: ``min_confidence`` (0-1), an extra confidence floor for entries. It adds
  to the governor's own ``min_confidence``, so a variant can only make entries rarer;
* a *strategy parameter* of the scope's strategy (the latest run of the deployment),
  within the range its ``Params`` model allows (``entry_window`` of ``donchian``: an
  integer 2-1000, ...).

Anything else (risk limits, position sizes, autonomy settings, an unknown name) is
refused with :class:`ExperimentError` naming the parameter: the gates are never
experimented on.

Assignment
----------
Every decision of the scope made while the experiment runs falls in one arm,
deterministically: the first 8 bytes of ``SHA-256("<experiment id>:<decision id>")``
read as an unsigned integer and divided by ``2**64`` give ``u`` in [0, 1); ``u <
allocation`` is the variant, else the control (:func:`arm`). The same decision always
lands in the same arm, across restarts and processes; :func:`assign` records it (an
observation without a value) when the decision is made, :func:`collect` when its
outcome is known.

Modes
-----
``paper`` (filters only; the default for them): the variant is tried *on paper*. The
deployment's decisions are not changed; each decision of an arm is scored as if that
arm's value were in force: a decision the arm's filter would have stopped (confidence
below the arm's ``min_confidence``) earned 0, any other earned its outcome. Nothing a
deployment does depends on the experiment, so it may run anywhere.

``share`` (strategy parameters): the variant is in force for its share of the
decisions; whoever applies parameters reads the decision's arm (:func:`arm`,
:func:`active_experiments` with ``decision_id``). Allowed only on a deployment in
paper mode (:func:`start` checks the ``deployments`` row): a live deployment never
runs an untested change.

Observations
------------
The metric of a decision is read from ``decision_outcomes`` (:mod:`tradewarden.ledger.
schema`): ``return_pct`` (percent) or ``pnl`` (quote currency) of the position it
opened (``kind = taken``); a decision that opened nothing (``kind = skipped``) earned
0 under its arm's policy and is observed as 0.

The test
--------
:func:`judge` looks once, when both arms have at least ``min_samples`` observations:
the experiment is ``accepted`` only when BOTH the variant's mean exceeds the
control's by at least ``min_effect`` (in the metric's units) AND the one-sided test of
"variant better than control" gives ``p < alpha`` (0.05); otherwise ``rejected``.
Looking once, at a sample size fixed in advance, avoids the inflated false-positive
rate of testing again after every new observation.

The default test is Welch's t-test (:func:`scipy.stats.ttest_ind` with
``equal_var=False``; Welch, B. L. (1947), *Biometrika* 34: 28-35): the effect judged
is a difference of *mean* return, which is what the strategy earns, and Welch's test
does not assume the two arms have the same variance (a variant that trades
differently changes the spread of returns too) nor equal sizes. ``mann_whitney``
(:func:`scipy.stats.mannwhitneyu`, one-sided) is available for heavy-tailed metrics
where a few outliers would dominate a mean; the effect is still the difference of
means, so both conditions keep the same meaning.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, select, update

from tradewarden.agent.records import _json, _parse, _read, _rows, _text, _ts, _write
from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ledger.store import utcnow_iso

#: The significance tests :func:`judge` applies.
TESTS = ("welch_t", "mann_whitney")
#: Outcome metrics an experiment observes (``decision_outcomes`` columns).
METRICS = ("return_pct", "pnl")
#: ``paper``: a filter's variant scored on paper; ``share``: in force for a share of the
#: decisions of a paper deployment (module docstring).
MODES = ("paper", "share")
#: ``experiments.status`` values.
STATUSES = ("proposed", "running", "accepted", "rejected", "abandoned")
#: Statuses of an experiment that is still open.
OPEN_STATUSES = ("proposed", "running")
#: Filters that may be experimented on, and their allowed range (inclusive).
FILTERS: dict[str, tuple[float, float]] = {"min_confidence": (0.0, 1.0)}
#: The significance level (issue 14: p < 0.05).
ALPHA = 0.05
#: Default minimum effect: 0.25 percentage points of mean return per decision.
MIN_EFFECT = 0.25
#: Default minimum observations per arm before judging.
MIN_SAMPLES = 20
#: The ``agent_memory`` keys where accepted changes are kept (see :func:`apply_change`).
PARAMETERS_KEY = "parameters"
CHANGES_KEY = "parameter_changes"


class ExperimentError(LedgerError):
    """A proposal or an experiment operation that is refused; the message names the
    field or the experiment."""


# -- what may change --------------------------------------------------------------------
def _strategy_of(ledger: Ledger, scope: str) -> str | None:
    """The strategy of the scope's latest run (``runs`` joined through the deployment's
    engine state, approvals or agent decisions), or ``None``."""
    ad, r = schema.agent_decisions, schema.runs

    def work(conn: Any) -> str | None:
        run_ids = [x for (x,) in conn.execute(
            select(ad.c.run_id).where(ad.c.deployment_id == scope, ad.c.run_id.is_not(None))
            .order_by(ad.c.id.desc()).limit(1))]
        for t in (schema.engine_state, schema.approvals):
            if run_ids:
                break
            run_ids = [x for (x,) in conn.execute(
                select(t.c.run_id).where(t.c.deployment_id == scope).limit(1))]
        if not run_ids:
            return None
        return conn.execute(select(r.c.strategy).where(r.c.run_id == run_ids[0])).scalar()

    return _read(ledger, f"the strategy of {scope}", work)


def check_change(parameter: str, control: Any, variant: Any, *,
                 strategy: str | None) -> tuple[Any, Any]:
    """Check that ``parameter`` may be experimented on and both values are allowed.

    Parameters
    ----------
    parameter : str
        A filter of :data:`FILTERS` or a parameter of ``strategy``.
    control, variant : Any
        The value in force and the one to try (JSON scalars).
    strategy : str or None
        A built-in strategy name (``donchian``, ``ema_rsi``, ``rank``); ``None`` allows
        filters only.

    Returns
    -------
    tuple
        ``(control, variant)`` as the parameter's type (a filter's as float; a strategy
        parameter's as its ``Params`` model coerces it).

    Raises
    ------
    ExperimentError
        An unknown parameter (risk limits and sizes are never allowed), a value outside
        the allowed range or of the wrong type, or a variant equal to the control.
    """
    from pydantic import ValidationError

    if not isinstance(parameter, str) or not parameter:
        raise ExperimentError(f"experiment parameter {parameter!r}: give a name")
    if parameter in FILTERS:
        lo, hi = FILTERS[parameter]
        out = []
        for what, value in (("control", control), ("variant", variant)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(float(value)) or not lo <= float(value) <= hi:
                raise ExperimentError(f"experiment {parameter} {what} {value!r}: give a number "
                                      f"from {lo:g} to {hi:g}")
            out.append(float(value))
        control, variant = out
    else:
        from tradewarden.strategy.registry import STRATEGIES
        cls = STRATEGIES.get(strategy or "")
        fields = sorted(cls.Params.model_fields) if cls is not None else []
        if parameter not in fields:
            where = (f"a parameter of strategy {strategy} ({', '.join(fields)})" if fields
                     else "a strategy parameter (the scope's strategy is not a built-in one)")
            raise ExperimentError(
                f"experiment parameter {parameter!r}: not a filter ({', '.join(FILTERS)}) nor "
                f"{where}; risk limits and sizes are never experimented on")
        out = []
        for what, value in (("control", control), ("variant", variant)):
            if isinstance(value, (dict, list)):
                raise ExperimentError(f"experiment {parameter} {what} {value!r}: give one value")
            try:
                params = cls.Params.model_validate({parameter: value})
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ExperimentError(f"experiment {parameter} {what} {value!r}: "
                                      f"{first['msg']}") from None
            out.append(getattr(params, parameter))
        control, variant = out
    if control == variant:
        raise ExperimentError(f"experiment {parameter}: the variant {variant!r} equals the control")
    return control, variant


# -- records ----------------------------------------------------------------------------
def _row(conn: Any, experiment_id: int) -> dict[str, Any]:
    t = schema.experiments
    row = conn.execute(select(t).where(t.c.id == experiment_id)).mappings().first()
    if row is None:
        raise ExperimentError(f"experiment {experiment_id}: no such experiment")
    return _decode(dict(row))


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for col, empty in (("control", None), ("variant", None), ("result", None)):
        row[col] = _parse(f"experiment {row['id']}: {col}", row[col], empty)
    return row


def experiment(ledger: Ledger, experiment_id: int) -> dict[str, Any]:
    """Return one experiment row (``control``, ``variant``, ``result`` parsed).

    Raises
    ------
    ExperimentError
        No such experiment.
    LedgerError
        The ledger cannot be read.
    """
    return _read(ledger, f"experiment {experiment_id}", lambda conn: _row(conn, experiment_id))


def experiments(ledger: Ledger, *, scope: str | None = None,
                status: str | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Return experiments, oldest first, optionally of one scope and status(es).

    Raises
    ------
    LedgerError
        The ledger cannot be read.
    """
    t = schema.experiments
    q = select(t).order_by(t.c.id)
    if scope is not None:
        q = q.where(t.c.scope == scope)
    if status is not None:
        q = q.where(t.c.status.in_((status,) if isinstance(status, str) else status))
    return [_decode(r) for r in _read(ledger, "experiments", lambda conn: _rows(conn, q))]


def propose(ledger: Ledger, *, scope: str, name: str, parameter: str, control: Any,
            variant: Any, ts: Any, proposed_by: str, rationale: str | None = None,
            mode: str = "share", allocation: float = 0.5, metric: str = "return_pct",
            test: str = "welch_t", alpha: float = ALPHA, min_effect: float = MIN_EFFECT,
            min_samples: int = MIN_SAMPLES, strategy: str | None = None) -> int:
    """Record a proposed experiment (status ``proposed``), or find the same one open.

    Parameters
    ----------
    ledger : Ledger
    scope : str
        The deployment id it runs on (1-32 characters).
    name : str
        A short name (1-96 characters).
    parameter : str
        A filter of :data:`FILTERS` or a parameter of the scope's strategy.
    control, variant : Any
        The value in force and the one to try (see :func:`check_change`).
    ts : int
        When, UTC epoch seconds.
    proposed_by : str
        ``reflection:<id>``, ``decision:<id>`` or a person (1-64 characters).
    rationale : str, optional
    mode : {"share", "paper"}
        ``paper`` for filters only (module docstring).
    allocation : float
        The variant's share of decisions, strictly between 0 and 1.
    metric : {"return_pct", "pnl"}
    test : {"welch_t", "mann_whitney"}
    alpha : float
        Significance level, in (0, 0.05]: never looser than 0.05.
    min_effect : float
        Minimum improvement of the variant's mean, metric units (> 0).
    min_samples : int
        Observations per arm before judging (>= 5).
    strategy : str, optional
        The scope's strategy; default: that of its latest run.

    Returns
    -------
    int
        The experiment's id (an open experiment of the same scope, parameter and
        variant is returned rather than a second one: proposing is idempotent).

    Raises
    ------
    ExperimentError
        A field refused (the message names it), see :func:`check_change`.
    LedgerError
        The ledger cannot be read or written.
    """
    _text("experiment scope", scope, 32)
    _text("experiment name", name, 96)
    _text("experiment proposed_by", proposed_by, 64)
    when = _ts("experiment ts", ts)
    for what, value, allowed in (("mode", mode, MODES), ("metric", metric, METRICS),
                                 ("test", test, TESTS)):
        if value not in allowed:
            raise ExperimentError(f"experiment {what} {value!r}: use one of {', '.join(allowed)}")
    for what, value, ok, say in (
            ("allocation", allocation, lambda v: 0 < v < 1, "a share strictly between 0 and 1"),
            ("alpha", alpha, lambda v: 0 < v <= ALPHA, f"a level in (0, {ALPHA}]"),
            ("min_effect", min_effect, lambda v: v > 0, "a positive effect")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(float(value)) or not ok(float(value)):
            raise ExperimentError(f"experiment {what} {value!r}: give {say}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 5:
        raise ExperimentError(f"experiment min_samples {min_samples!r}: give a whole number >= 5")
    if strategy is None and parameter not in FILTERS:
        strategy = _strategy_of(ledger, scope)
    control, variant = check_change(parameter, control, variant, strategy=strategy)
    if mode == "paper" and parameter not in FILTERS:
        raise ExperimentError(f"experiment mode paper: only a filter ({', '.join(FILTERS)}) can "
                              f"be tried on paper, not {parameter}; use mode share")
    t = schema.experiments
    values = {"scope": scope, "name": name, "parameter": parameter,
              "control": _json("experiment control", control),
              "variant": _json("experiment variant", variant), "mode": mode,
              "allocation": float(allocation), "metric": metric, "test": test,
              "alpha": float(alpha), "min_effect": float(min_effect), "min_samples": min_samples,
              "status": "proposed", "proposed_by": proposed_by, "rationale": rationale,
              "created_ts": when, "created_at": utcnow_iso()}

    def work(conn: Any) -> int:
        same = conn.execute(select(t.c.id).where(
            t.c.scope == scope, t.c.parameter == parameter, t.c.variant == values["variant"],
            t.c.status.in_(OPEN_STATUSES)).order_by(t.c.id).limit(1)).scalar()
        if same is not None:
            return int(same)
        return int(conn.execute(t.insert().values(**values)).inserted_primary_key[0])

    return _write(ledger, "an experiment", work)


def propose_from(ledger: Ledger, *, scope: str, proposal: Mapping[str, Any], ts: Any,
                 proposed_by: str, min_samples: int = MIN_SAMPLES,
                 min_effect: float = MIN_EFFECT, allocation: float = 0.5) -> int:
    """Record a proposal given as a mapping (a reflection's or a ``PROPOSE_EXPERIMENT``
    decision's ``experiment``): ``parameter``, ``control``, ``variant`` and optionally
    ``name``, ``rationale``, ``mode`` (default ``paper`` for a filter, ``share``
    otherwise), ``allocation``, ``metric``. The test settings (``test``, ``alpha``,
    ``min_effect``, ``min_samples``) are the caller's (``[learning]``), never the
    proposer's.

    Returns
    -------
    int
        The experiment's id.

    Raises
    ------
    ExperimentError
        A missing or refused field (named), or extra fields that would set the test.
    """
    if not isinstance(proposal, Mapping):
        raise ExperimentError(f"experiment proposal {proposal!r}: give a mapping")
    allowed = {"name", "parameter", "control", "variant", "rationale", "mode", "allocation",
               "metric"}
    extra = sorted(set(proposal) - allowed)
    if extra:
        raise ExperimentError(f"experiment proposal: fields {', '.join(map(str, extra))} are not "
                              f"accepted (use {', '.join(sorted(allowed))})")
    for key in ("parameter", "control", "variant"):
        if key not in proposal:
            raise ExperimentError(f"experiment proposal: no {key}")
    parameter = proposal["parameter"]
    name = str(proposal.get("name") or f"{parameter}: {proposal['control']!r} -> "
               f"{proposal['variant']!r}")[:96]
    rationale = proposal.get("rationale")
    return propose(ledger, scope=scope, name=name, parameter=parameter,
                   control=proposal["control"], variant=proposal["variant"], ts=ts,
                   proposed_by=proposed_by,
                   rationale=None if rationale is None else str(rationale),
                   mode=proposal.get("mode", "paper" if parameter in FILTERS else "share"),
                   allocation=proposal.get("allocation", allocation),
                   metric=proposal.get("metric", "return_pct"), min_samples=min_samples,
                   min_effect=min_effect)


def _set_status(ledger: Ledger, experiment_id: int, frm: tuple[str, ...], to: str,
                **values: Any) -> dict[str, Any]:
    t = schema.experiments

    def work(conn: Any) -> dict[str, Any]:
        row = _row(conn, experiment_id)
        if row["status"] not in frm:
            raise ExperimentError(f"experiment {experiment_id} is {row['status']}: only a "
                                  f"{' or '.join(frm)} one can become {to}")
        conn.execute(update(t).where(t.c.id == experiment_id, t.c.status == row["status"])
                     .values(status=to, **values))
        return _row(conn, experiment_id)

    return _write(ledger, f"experiment {experiment_id}", work)


def start(ledger: Ledger, experiment_id: int, ts: Any) -> dict[str, Any]:
    """Start a proposed experiment (``proposed`` -> ``running``, ``started_ts``).

    Returns
    -------
    dict
        The experiment row.

    Raises
    ------
    ExperimentError
        Not ``proposed``, or mode ``share`` on a deployment that is not in paper mode.
    """
    when = _ts("experiment start ts", ts)
    row = experiment(ledger, experiment_id)
    if row["mode"] == "share":
        d = schema.deployments
        mode = _read(ledger, "the deployment", lambda conn: conn.execute(
            select(d.c.mode).where(d.c.deployment_id == row["scope"])).scalar())
        if mode != "paper":
            raise ExperimentError(f"experiment {experiment_id}: mode share, but deployment "
                                  f"{row['scope']} is {mode or 'unknown'}, not paper")
    return _set_status(ledger, experiment_id, ("proposed",), "running", started_ts=when)


def abandon(ledger: Ledger, experiment_id: int, ts: Any, reason: str) -> dict[str, Any]:
    """End an open experiment without a verdict (``abandoned``; ``result.reason``).

    Raises
    ------
    ExperimentError
        The experiment is not open.
    """
    when = _ts("experiment end ts", ts)
    return _set_status(ledger, experiment_id, OPEN_STATUSES, "abandoned", ended_ts=when,
                       result=_json("experiment result", {"reason": reason}))


# -- assignment and observations --------------------------------------------------------
def arm(experiment_id: int, decision_id: int, allocation: float) -> str:
    """Return the arm of a decision: ``variant`` when ``u < allocation``, else ``control``.

    ``u`` is the first 8 bytes of ``SHA-256("<experiment_id>:<decision_id>")`` as a
    big-endian unsigned integer over ``2**64`` (uniform in [0, 1); deterministic).
    """
    digest = hashlib.sha256(f"{int(experiment_id)}:{int(decision_id)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return "variant" if u < allocation else "control"


def assign(ledger: Ledger, experiment_id: int, decision_id: int, ts: Any) -> str:
    """Record a decision's arm in a running experiment (an observation without a value
    yet); once per decision.

    Returns
    -------
    str
        ``control`` or ``variant``.

    Raises
    ------
    ExperimentError
        The experiment is not running.
    """
    when = _ts("assignment ts", ts)
    o = schema.experiment_observations

    def work(conn: Any) -> str:
        row = _row(conn, experiment_id)
        if row["status"] != "running":
            raise ExperimentError(f"experiment {experiment_id} is {row['status']}, not running")
        side = arm(experiment_id, decision_id, row["allocation"])
        seen = conn.execute(select(o.c.arm).where(o.c.experiment_id == experiment_id,
                                                  o.c.agent_decision_id == decision_id)).first()
        if seen is None:
            conn.execute(o.insert().values(experiment_id=experiment_id, arm=side,
                                           agent_decision_id=decision_id, ts=when, value=None,
                                           created_at=utcnow_iso()))
        return side

    return _write(ledger, f"an assignment in experiment {experiment_id}", work)


def collect(ledger: Ledger, experiment_id: int, ts: Any) -> int:
    """Observe the outcomes known so far of a running experiment's decisions.

    The decisions are the scope's ``agent_decisions`` from ``started_ts`` on; each with
    an outcome in ``decision_outcomes`` gets its arm (:func:`arm`) and its metric (see
    the module docstring; in mode ``paper`` as the arm's filter would have scored it)
    recorded once.

    Returns
    -------
    int
        Observations newly given a value.

    Raises
    ------
    ExperimentError
        The experiment is not running.
    """
    when = _ts("collect ts", ts)
    ad, do, o = schema.agent_decisions, schema.decision_outcomes, schema.experiment_observations

    def work(conn: Any) -> int:
        row = _row(conn, experiment_id)
        if row["status"] != "running":
            raise ExperimentError(f"experiment {experiment_id} is {row['status']}, not running")
        col = do.c.return_pct if row["metric"] == "return_pct" else do.c.pnl
        found = conn.execute(
            select(do.c.agent_decision_id, do.c.kind, col, ad.c.confidence)
            .join(ad, ad.c.id == do.c.agent_decision_id)
            .where(ad.c.deployment_id == row["scope"], ad.c.ts >= row["started_ts"])
            .order_by(do.c.agent_decision_id, do.c.id)).all()
        metric: dict[int, float] = {}
        confidence: dict[int, float | None] = {}
        for did, kind, value, conf in found:
            confidence[int(did)] = conf
            if kind == "taken" and value is not None:
                metric[int(did)] = float(value)       # a taken outcome wins over skipped
            elif kind == "skipped":
                metric.setdefault(int(did), 0.0)
        if row["mode"] == "paper":                    # as the arm's filter would have had it
            for did in metric:
                floor = row["variant"] if arm(experiment_id, did, row["allocation"]) \
                    == "variant" else row["control"]
                conf = confidence[did]
                if conf is None or conf < float(floor):
                    metric[did] = 0.0
        seen = {int(d): v for d, v in conn.execute(
            select(o.c.agent_decision_id, o.c.value).where(o.c.experiment_id == experiment_id))}
        n = 0
        for did, value in metric.items():
            if not math.isfinite(value):
                continue
            if did not in seen:
                conn.execute(o.insert().values(
                    experiment_id=experiment_id, arm=arm(experiment_id, did, row["allocation"]),
                    agent_decision_id=did, ts=when, value=value, created_at=utcnow_iso()))
                n += 1
            elif seen[did] is None:
                conn.execute(update(o).where(o.c.experiment_id == experiment_id,
                                             o.c.agent_decision_id == did)
                             .values(value=value, ts=when))
                n += 1
        return n

    return _write(ledger, f"observations of experiment {experiment_id}", work)


def observations(ledger: Ledger, experiment_id: int) -> dict[str, list[float]]:
    """Return the observed values per arm (``{"control": [...], "variant": [...]}``),
    in the order recorded; assignments without a value yet are left out."""
    o = schema.experiment_observations
    q = (select(o.c.arm, o.c.value).where(and_(o.c.experiment_id == experiment_id,
                                                o.c.value.is_not(None))).order_by(o.c.id))
    out: dict[str, list[float]] = {"control": [], "variant": []}
    for side, value in _read(ledger, f"observations of experiment {experiment_id}",
                             lambda conn: conn.execute(q).all()):
        out.setdefault(side, []).append(float(value))
    return out


# -- the verdict ------------------------------------------------------------------------
def significance(control: list[float], variant: list[float], test: str) -> float:
    """Return the one-sided p value of "the variant's metric is greater".

    Parameters
    ----------
    control, variant : list of float
        Observations per arm (at least 2 each).
    test : {"welch_t", "mann_whitney"}
        Welch's unequal-variance t-test (:func:`scipy.stats.ttest_ind`,
        ``equal_var=False``) or the Mann-Whitney U test
        (:func:`scipy.stats.mannwhitneyu`), both ``alternative="greater"``.

    Returns
    -------
    float
        The p value (1.0 when it is undefined, e.g. both arms constant and equal).

    Raises
    ------
    ExperimentError
        An unknown test.
    """
    from scipy import stats

    if test == "welch_t":
        p = stats.ttest_ind(variant, control, equal_var=False, alternative="greater").pvalue
    elif test == "mann_whitney":
        p = stats.mannwhitneyu(variant, control, alternative="greater").pvalue
    else:
        raise ExperimentError(f"experiment test {test!r}: use one of {', '.join(TESTS)}")
    p = float(p)
    return p if math.isfinite(p) else 1.0


def judge(ledger: Ledger, experiment_id: int, ts: Any, *, collect_first: bool = True
          ) -> dict[str, Any]:
    """Judge a running experiment once both arms have ``min_samples`` observations.

    Accepted only when ``p < alpha`` (:func:`significance`) AND ``mean(variant) -
    mean(control) >= min_effect``; then the change is applied (:func:`apply_change`,
    actor ``experiment:<id>``). Otherwise rejected. Before the samples are there it
    stays running.

    Parameters
    ----------
    ledger : Ledger
    experiment_id : int
    ts : int
        UTC epoch seconds.
    collect_first : bool
        :func:`collect` the outcomes known now first.

    Returns
    -------
    dict
        ``status`` (``running``, ``accepted`` or ``rejected``), ``n`` per arm,
        ``mean`` per arm, ``effect``, ``p_value`` (absent while running), ``test``,
        ``alpha``, ``min_effect``, ``reason``.

    Raises
    ------
    ExperimentError
        The experiment is not running.
    """
    when = _ts("judge ts", ts)
    row = experiment(ledger, experiment_id)
    if row["status"] != "running":
        raise ExperimentError(f"experiment {experiment_id} is {row['status']}, not running")
    if collect_first:
        collect(ledger, experiment_id, when)
    obs = observations(ledger, experiment_id)
    c, v = obs["control"], obs["variant"]
    result: dict[str, Any] = {"n": {"control": len(c), "variant": len(v)}, "test": row["test"],
                              "alpha": row["alpha"], "min_effect": row["min_effect"],
                              "metric": row["metric"], "min_samples": row["min_samples"]}
    if min(len(c), len(v)) < row["min_samples"]:
        result.update(status="running", reason=(
            f"{len(c)} control and {len(v)} variant observations; {row['min_samples']} each "
            "are needed"))
        return result
    mc, mv = sum(c) / len(c), sum(v) / len(v)
    effect = mv - mc
    p = significance(c, v, row["test"])
    significant, large = p < row["alpha"], effect >= row["min_effect"]
    result.update(mean={"control": mc, "variant": mv}, effect=effect, p_value=p,
                  significant=significant, large_enough=large)
    if significant and large:
        status = "accepted"
        result["reason"] = (f"p = {p:.4g} < {row['alpha']:g} and effect {effect:+.4g} >= "
                            f"{row['min_effect']:g}")
    else:
        status = "rejected"
        why = []
        if not significant:
            why.append(f"p = {p:.4g} is not below {row['alpha']:g}")
        if not large:
            why.append(f"effect {effect:+.4g} is below {row['min_effect']:g}")
        result["reason"] = "; ".join(why)
    _set_status(ledger, experiment_id, ("running",), status, ended_ts=when,
                result=_json("experiment result", result))
    if status == "accepted":
        apply_change(ledger, experiment_id, when)
    result["status"] = status
    return result


# -- applying an accepted change --------------------------------------------------------
def _memory(conn: Any, scope: str, key: str, empty: Any) -> Any:
    m = schema.agent_memory
    text = conn.execute(select(m.c.value).where(m.c.scope == scope, m.c.key == key)).scalar()
    return empty if text is None else json.loads(text)


def _put_memory(conn: Any, scope: str, key: str, value: Any, ts: int) -> None:
    m = schema.agent_memory
    text = _json(f"agent memory {key}", value)
    done = conn.execute(update(m).where(m.c.scope == scope, m.c.key == key)
                        .values(value=text, ts=ts, updated_at=utcnow_iso())).rowcount
    if not done:
        conn.execute(m.insert().values(scope=scope, key=key, value=text, ts=ts,
                                       updated_at=utcnow_iso()))


def apply_change(ledger: Ledger, experiment_id: int, ts: Any) -> dict[str, Any]:
    """Record the change an accepted experiment earned, with actor ``experiment:<id>``.

    The scope's ``agent_memory`` key ``parameters`` maps each changed parameter to
    ``{"value", "from", "actor", "ts"}`` (what is in force: :func:`applied_parameters`),
    and ``parameter_changes`` lists every change (``parameter``, ``from``, ``to``,
    ``actor``, ``ts``, ``reason``), oldest first. Once per experiment.

    Returns
    -------
    dict
        The change recorded (or the one recorded before).

    Raises
    ------
    ExperimentError
        The experiment is not ``accepted``: a change is never applied otherwise.
    """
    when = _ts("change ts", ts)

    def work(conn: Any) -> dict[str, Any]:
        row = _row(conn, experiment_id)
        if row["status"] != "accepted":
            raise ExperimentError(f"experiment {experiment_id} is {row['status']}: only an "
                                  "accepted experiment changes a parameter")
        actor = f"experiment:{experiment_id}"
        history = _memory(conn, row["scope"], CHANGES_KEY, [])
        for change in history:
            if change.get("actor") == actor:
                return change
        change = {"parameter": row["parameter"], "from": row["control"], "to": row["variant"],
                  "actor": actor, "ts": when,
                  "reason": (row["result"] or {}).get("reason", "accepted")}
        history.append(change)
        _put_memory(conn, row["scope"], CHANGES_KEY, history, when)
        current = _memory(conn, row["scope"], PARAMETERS_KEY, {})
        current[row["parameter"]] = {"value": row["variant"], "from": row["control"],
                                     "actor": actor, "ts": when}
        _put_memory(conn, row["scope"], PARAMETERS_KEY, current, when)
        return change

    return _write(ledger, f"the change of experiment {experiment_id}", work)


def applied_parameters(ledger: Ledger, scope: str) -> dict[str, Any]:
    """Return the parameters accepted experiments changed for ``scope``:
    ``{parameter: {"value", "from", "actor", "ts"}}`` (empty when none)."""
    return _read(ledger, "the applied parameters",
                 lambda conn: _memory(conn, scope, PARAMETERS_KEY, {}))


def parameter_changes(ledger: Ledger, scope: str) -> list[dict[str, Any]]:
    """Return every change accepted experiments made for ``scope``, oldest first."""
    return _read(ledger, "the parameter changes",
                 lambda conn: _memory(conn, scope, CHANGES_KEY, []))


# -- what the reasoner sees -------------------------------------------------------------
def active_experiments(ledger: Ledger, scope: str, *, decision_id: int | None = None,
                       now: Any = None, symbol: str | None = None) -> list[dict[str, Any]]:
    """Return the scope's open experiments as the reasoning context shows them
    (``ReasoningContext.experiments``).

    Parameters
    ----------
    ledger : Ledger
    scope : str
        The deployment id.
    decision_id : int, optional
        A decision being made: each running experiment then names the ``arm`` it falls
        in.
    now : int, optional
        UTC epoch seconds: only experiments proposed by then (a replay sees no later
        one).
    symbol : str, optional
        Accepted for the context hooks' signature; experiments are per deployment, so
        every symbol sees the same ones.

    Returns
    -------
    list of dict
        ``id``, ``name``, ``parameter``, ``control``, ``variant``, ``status``, ``mode``,
        ``allocation``, ``metric``, ``n`` (observations per arm so far) and ``arm``
        (with ``decision_id``), oldest first.
    """
    rows = experiments(ledger, scope=scope, status=OPEN_STATUSES)
    if now is not None:
        rows = [r for r in rows if r["created_ts"] <= _ts("now", now)]
    out = []
    for r in rows:
        n = {k: len(v) for k, v in observations(ledger, r["id"]).items()}
        item = {k: r[k] for k in ("id", "name", "parameter", "control", "variant", "status",
                                  "mode", "allocation", "metric")}
        item["n"] = n
        if decision_id is not None and r["status"] == "running":
            item["arm"] = arm(r["id"], decision_id, r["allocation"])
        out.append(item)
    return out


__all__ = ["ALPHA", "CHANGES_KEY", "FILTERS", "METRICS", "MIN_EFFECT", "MIN_SAMPLES", "MODES",
           "OPEN_STATUSES", "PARAMETERS_KEY", "STATUSES", "TESTS", "ExperimentError", "abandon",
           "active_experiments", "applied_parameters", "apply_change", "arm", "assign",
           "check_change", "collect", "experiment", "experiments", "judge", "observations",
           "parameter_changes", "propose", "propose_from", "significance", "start"]
