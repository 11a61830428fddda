"""A model's drift, evaluated once per new data version of its input (``retrain.on_drift``).

The reference is the table the current champion was trained on: its registered version
records the data version of its input (``slipway.upstream.<dataset>``), Dagster's record names
the runs that materialized that version, and the artifact store keeps every version it stored
(read back only if its content hash still matches). The current data is the input's latest
materialization. Each evaluation is:

- an observation on the model asset (``drift_score`` and friends, which the Dagster UI plots
  over time, a per-feature table and a link to the report);
- an MLflow run ``drift-<model>-<data version>`` in the pipeline's experiment, with the score
  and each feature's as metrics, the HTML report (:mod:`resources.drift_report`) as its
  artifact ``drift/drift_report.html`` and a description linking the model's Dagster asset
  (whose observations plot the score);
- an alert when the data drifted, linking the report and the model's Dagster asset;
- the verdict, kept in the instance (``slipway/retrain-drift/<model>``) so the next ticks do
  not load the data again.

The observation is written to the instance before the verdict is kept (not handed to the
daemon with the tick's result): a tick that fails or dies after the evaluation then either
loses nothing or evaluates again, never keeps a verdict whose record was lost.

A problem (no champion, its data no longer stored, a store that is down) is a verdict of its
own, "not evaluated: why", reported once per data version: drift then triggers nothing.
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from assets.automation.history import materialized_with, read_recorded
from assets.automation.retrain import STATE_PREFIX, DriftVerdict
from assets.spec.policy import Policy
from resources.alerts import Alert, Alerter
from resources.dagster_private import cursor_values, set_cursor_values
from resources.errors import ResourceError, SlipwayError
from resources.links import dagster_asset, markdown_link
from resources.redact import redact

REPORT = "drift/drift_report.html"


class DriftWatch:
    """Evaluates drift for the retrain sensor, with the stack's resources."""

    def __init__(self, instance: Any, resources: Any, log: Any) -> None:
        """Over the stack's resources (``io_manager``, ``model_registry``, ``experiment_tracker``, ...)."""
        self.instance = instance
        self.store = resources.io_manager
        self.registry = resources.model_registry
        self.tracker = resources.experiment_tracker
        self.detector = resources.drift_detector
        self.alerter: Alerter = resources.alerter
        self.log = log

    def __call__(self, policy: Policy, data_version: str) -> DriftVerdict:
        """The verdict for ``data_version`` of the model's input (evaluated and recorded once).

        With ``on_drift.served``, ``data_version`` is the served traffic's, and the verdict is
        also the champion's: a new champion is measured on what it answers.
        """
        drift = policy.retrain.on_drift
        if drift is not None and drift.served:
            try:
                champion = self.registry.aliases(policy.registered).get(policy.alias)
            except ResourceError as exc:
                self.log.warning(f"{policy.asset}: drift not evaluated now: {redact(str(exc).splitlines()[0])}")
                return DriftVerdict(data_version, False, False, "not evaluated: a store is down")
            data_version = f"{data_version} answered by v{champion}"
        name = STATE_PREFIX + policy.asset
        stored = cursor_values(self.instance, {name}).get(name)
        known = DriftVerdict.from_json(stored)
        if known is not None and known.data_version == data_version:
            return known
        started = time.perf_counter()
        alert = None
        try:
            verdict, metadata, alert = self._evaluate(policy, data_version)
        except ResourceError as exc:
            # A store that is down: asked again next tick (not kept, not recorded as an evaluation).
            self.log.warning(f"{policy.asset}: drift not evaluated now: {redact(str(exc).splitlines()[0])}")
            return DriftVerdict(data_version, False, False, "not evaluated: a store is down")
        except (SlipwayError, LookupError, OSError, ValueError) as exc:
            reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            verdict = DriftVerdict(data_version, False, False, f"not evaluated: {reason}")
            metadata = {"drift": verdict.summary, "data_version": data_version}
            self.log.warning(f"{policy.asset}: drift {verdict.summary}")
        metadata["evaluated_in"] = f"{time.perf_counter() - started:.2f} s"  # text: not a plot of its own
        observation = dg.AssetObservation(
            asset_key=dg.AssetKey.from_user_string(policy.asset), description=verdict.summary, metadata=metadata
        )
        self.instance.report_runless_asset_event(observation)
        set_cursor_values(self.instance, {name: verdict.to_json()})
        # Last: a tick that dies before this re-evaluates and alerts then; one that dies after has recorded all.
        if alert is not None:
            self.alerter.send(alert, self.log)
        return verdict

    def _evaluate(self, policy: Policy, data_version: str) -> tuple[DriftVerdict, dict[str, Any], Alert | None]:
        drift = policy.retrain.on_drift
        assert drift is not None
        champion = self.registry.aliases(policy.registered).get(policy.alias)
        if champion is None:
            raise LookupError(f"{policy.registered} has no {policy.alias} to compare with")
        tags = self.registry.version_tags(policy.registered, champion) or {}
        recorded = tags.get(f"slipway.upstream.{policy.dataset}")
        if recorded is None:
            raise LookupError(f"{policy.registered} v{champion} did not record the data it trained on")
        dataset = dg.AssetKey.from_user_string(policy.dataset)
        runs = materialized_with(self.instance, dataset, recorded)
        try:
            reference, _ = read_recorded(self.store, policy.dataset, runs, recorded)
        except LookupError as exc:
            raise LookupError(f"the data {policy.alias} v{champion} trained on is no longer stored: {exc}") from None
        if drift.served:
            current = self._served(policy, champion)
        else:
            current_runs = materialized_with(self.instance, dataset, data_version)
            current, _ = read_recorded(self.store, policy.dataset, current_runs[:1], data_version)
        features = policy.drift_features(current.columns)
        result = self.detector.compare(reference, current, drift.method, drift.threshold, features)
        report = self._report(policy, champion, recorded, data_version, result)
        verdict = DriftVerdict(data_version, True, result.drifted, result.summary(), result.score, report)
        table = dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "feature": f.feature,
                        "kind": f.kind,
                        "statistic": f.statistic,
                        "score": round(f.score, 4),
                        "drifted": f.drifted,
                    }
                )
                for f in sorted(result.features, key=lambda f: -f.score)
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("feature", "string"),
                    dg.TableColumn("kind", "string"),
                    dg.TableColumn("statistic", "string"),
                    dg.TableColumn("score", "float"),
                    dg.TableColumn("drifted", "bool"),
                ]
            ),
        )
        metadata: dict[str, Any] = {
            "drift_score": dg.MetadataValue.float(result.score),
            "drift_threshold": dg.MetadataValue.float(drift.threshold),
            "drifted": dg.MetadataValue.bool(result.drifted),
            "drift_method": drift.method,
            "worst_feature": result.worst or "",
            "features": table,
            "compared_with": f"{policy.registered} v{champion} ({policy.alias}), trained on {recorded}"
            + (f"; served rows: {len(current)}" if drift.served else ""),
            "data_version": data_version,
        }
        if report:
            metadata["drift_report"] = dg.MetadataValue.url(report)
        self.log.info(f"{policy.asset}: {result.summary()} (data {data_version} vs {policy.alias} v{champion})")
        alert = None
        if result.drifted:
            alert = Alert(
                "drift",
                f"{policy.asset}: drift detected",
                f"{policy.dataset} data {data_version} vs what {policy.alias} v{champion} trained on: "
                + result.summary(),
                asset=policy.asset,
                link=report,
                link_label="MLflow drift report",
                fields={"score": f"{result.score:.3f}", "threshold": str(drift.threshold), "worst": result.worst or ""},
            )
        return verdict, metadata, alert

    def _served(self, policy: Policy, champion: str) -> Any:
        """The rows the servers answered with ``champion`` since the model last trained (:mod:`assets.serve.traffic`).

        Only since then: a retraining that kept the champion is measured on what comes after it,
        not again on the traffic that triggered it.
        """
        from assets.serve.traffic import answered_since

        records = self.instance.fetch_materializations(dg.AssetKey.from_user_string(policy.asset), limit=1).records
        since = records[0].timestamp if records else 0.0
        answered = answered_since(self.store, policy.registered, champion, since)
        if answered.empty:
            raise LookupError(f"no served rows answered by {policy.alias} v{champion} since its last training")
        return answered

    def _report(self, policy: Policy, champion: str, recorded: str, data_version: str, result: Any) -> str | None:
        """Log the HTML report to MLflow; its run's link, or None when the tracker cannot be reached."""
        from resources.drift_report import render

        pipeline, model = policy.asset.split("/", 1)
        page = render(
            result,
            f"{policy.asset}: drift of {policy.dataset}",
            {
                "reference": f"data {recorded}, which {policy.registered} v{champion} ({policy.alias}) trained on",
                "current": f"data {data_version}, the newest of {policy.dataset}",
                "method": f"{result.method}, threshold {result.threshold}",
                "evaluated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            },
        )
        tags = {
            "slipway.kind": "drift",
            "slipway.asset_key": policy.asset,
            "slipway.pipeline": pipeline,
            "slipway.compared_with": f"{policy.registered}@{champion}",
            "slipway.reference_data_version": recorded,
            "slipway.current_data_version": data_version,
            "slipway.drifted": str(result.drifted).lower(),
            # MLflow's UI shows it as the run's description, rendered as markdown.
            "mlflow.note.content": (
                f"Drift of `{policy.dataset}` for {markdown_link(policy.asset, dagster_asset(policy.asset))}, "
                f"evaluated by the `slipway_retrain` sensor: data {data_version} against {recorded}, which "
                f"{policy.alias} v{champion} trained on. {result.summary()}"
            ),
        }
        run = None
        try:
            run = self.tracker.start_run(pipeline, f"drift-{model}-{data_version[:8]}", tags)
            metrics = {"drift_score": result.score, **{_metric(f"drift_{f.feature}"): f.score for f in result.features}}
            self.tracker.log(run, {"method": result.method, "threshold": result.threshold}, metrics, {})
            self.tracker.log_file(run, REPORT, page.encode())
            self.tracker.end_run(run, ok=True)
        except SlipwayError as exc:
            self.log.warning(f"{policy.asset}: the drift report was not logged: {exc}")
            if run is not None:
                try:
                    self.tracker.end_run(run, ok=False)
                except SlipwayError:
                    pass  # the tracker is down: its run stays open, as any run it could not close
            return None
        return self.tracker.artifact_url(run, REPORT)


def _metric(name: str) -> str:
    """An MLflow metric name: letters, digits and ``_-. /`` only."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)
