"""Live metrics beyond the runs store: TensorBoard event files under the run folder, and MLflow when a
tracking URI is configured (``IMTS_MLFLOW_TRACKING_URI``).

Each exporter is a sink (``metrics``, ``event``) plus ``close(status)``; ``TeeSink`` hands every metric
and event a run reports to the store's sink and to the exporters. An exporter that fails (an MLflow
server gone away) is logged and dropped: metrics export never kills a training or evaluation run.
``imts.store.runs.begin`` builds the tee for every run, training and evaluation alike.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Protocol

from imts.core.settings import Settings

log = logging.getLogger(__name__)


class Sink(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None: ...
    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None: ...


class Exporter(Sink, Protocol):
    def close(self, status: str) -> None: ...


class TensorBoardSink:
    """Scalars per metric key (``loss``, ``lr``, ``val_loss`` ...) and events as text, in ``log_dir``."""

    def __init__(self, log_dir: Path, params: dict[str, Any] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=10)
        if params:
            self.writer.add_text("run_config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, float(value), step)

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.writer.add_text(f"events/{kind}", message, step or 0)

    def close(self, status: str) -> None:
        self.writer.add_text("events/status", status, 0)
        self.writer.close()


class MlflowSink:
    """One MLflow run per IMTS run: params (the flattened run spec), metrics by step, events as tags."""

    STATUS: ClassVar[dict[str, str]] = {"succeeded": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}

    def __init__(self, uri: str, experiment: str, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        run = self.client.create_run(exp_id, run_name=run_id, tags={"imts.run_id": run_id})
        self.mlflow_run_id = run.info.run_id
        for key, value in params.items():
            self.client.log_param(self.mlflow_run_id, key, str(value)[:6000])

    def metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.mlflow_run_id, metrics=batch)

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.client.set_tag(self.mlflow_run_id, f"imts.event.{kind}", f"step {step}: {message}"[:5000])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.mlflow_run_id, status=self.STATUS.get(status, "FAILED"))


class TeeSink:
    """The store's sink first (the record of truth), then every exporter; failing exporters are dropped."""

    def __init__(self, primary: Sink, exporters: list[Exporter]) -> None:
        self.primary, self.exporters = primary, list(exporters)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.primary.metrics(step, values)
        self._each("metrics", step, values)

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.primary.event(kind, message, step, data)
        self._each("event", kind, message, step, data)

    def export(self, step: int, values: dict[str, float]) -> None:
        """Metrics for the exporters only (a run's summary, which the store keeps on the run itself)."""
        self._each("metrics", step, values)

    def close(self, status: str) -> None:
        self._each("close", status)

    def _each(self, method: str, *args: Any) -> None:
        for exporter in list(self.exporters):
            try:
                getattr(exporter, method)(*args)
            except Exception as exc:
                log.warning("metrics exporter %s failed, dropped: %s", type(exporter).__name__, exc)
                self.exporters.remove(exporter)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"r": 8}}`` -> ``{"lora.r": 8}`` (run-spec params for MLflow and TensorBoard)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def exporters(settings: Settings, run_id: str, out_dir: Path, spec: dict[str, Any]) -> list[Exporter]:
    """TensorBoard event files in ``out_dir/tensorboard`` always; MLflow when a tracking URI is set."""
    params = flatten(spec)
    out: list[Exporter] = []
    try:
        out.append(TensorBoardSink(out_dir / "tensorboard", params))
    except Exception as exc:  # no tensorboard package or an unwritable folder must not stop the run
        log.warning("TensorBoard logging disabled: %s", exc)
    if settings.mlflow_tracking_uri:
        try:
            out.append(MlflowSink(settings.mlflow_tracking_uri, settings.mlflow_experiment, run_id, params))
        except Exception as exc:  # an unreachable tracking server must not stop the run
            log.warning("MLflow logging disabled: %s", exc)
    return out
