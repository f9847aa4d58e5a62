"""Assets from what Bacalhau tasks read and wrote: Airflow's hook-lineage collector and outlet events.

The collector is the one ``S3Hook`` reports to (through common-compat, so Airflow 2.11's dataset
collector works too); without a lineage reader (e.g. no OpenLineage provider) it is a no-op. Asset
events are added only for the outlets a task declares: an ``AssetAlias`` gets one asset per
published result, with its real URI; a plain ``Asset`` gets the results in its event's extra.
Lineage never fails a task: every error here is logged and swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_bacalhau.lineage.names import DatasetName, result_dataset

log = logging.getLogger(__name__)

#: Keys of the asset event extra (a consumer reads the published result from there).
EXTRA_JOB_ID = "bacalhau_job_id"
EXTRA_RESULT = "bacalhau_result"
EXTRA_RESULTS = "bacalhau_results"


def _collector() -> Any:
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    return get_hook_lineage_collector()


def _readers_registered() -> bool | None:
    """Whether a plugin registers a hook-lineage reader: the test Airflow itself makes before it
    builds a real collector rather than a ``NoOpCollector``. ``None`` where this Airflow has neither
    way of asking."""
    try:  # Airflow 3.1+: the task SDK's plugins manager (a cached list)
        from airflow.sdk.plugins_manager import get_hook_lineage_readers_plugins
    except ImportError:
        pass
    else:
        return bool(get_hook_lineage_readers_plugins())
    try:  # Airflow 2.11 and 3.0
        from airflow import plugins_manager

        plugins_manager.initialize_hook_lineage_readers_plugins()
    except (ImportError, AttributeError):
        return None
    return bool(plugins_manager.hook_lineage_reader_classes)


def collector_is_active() -> bool:
    """Whether someone reads hook lineage (a reader plugin such as OpenLineage's is registered).

    Asks the plugins manager, not the collector: building even a ``NoOpCollector`` loads every
    provider's asset factories, which imports ``S3Hook`` and boto3 (0.2-0.5 s on each resume).
    """
    try:
        readers = _readers_registered()
        if readers is not None:
            return readers
        return type(_collector()).__name__ != "NoOpCollector"
    except Exception:  # an Airflow without the collector
        log.debug("no hook-lineage collector", exc_info=True)
        return False


def _add(collector: Any, method: str, context: Any, name: DatasetName) -> None:
    add = getattr(collector, method)
    if name.namespace.startswith("s3://"):  # as S3Hook does: the amazon provider's s3 factory
        bucket = name.namespace[len("s3://") :]
        key = "" if name.name == "/" else name.name
        add(context=context, scheme="s3", asset_kwargs={"bucket": bucket, "key": key})
    elif name.uri:
        add(context=context, uri=name.uri)


def record(
    context: Any,
    inputs: Iterable[DatasetName] = (),
    outputs: Iterable[DatasetName] = (),
) -> None:
    """Report ``inputs`` and ``outputs`` to the hook-lineage collector.

    :param context: the hook that did the I/O (the collector's ``LineageContext``).
    """
    try:
        collector = _collector()
        for name in inputs:
            _add(collector, "add_input_asset", context, name)
        for name in outputs:
            _add(collector, "add_output_asset", context, name)
    except Exception:
        log.warning("Could not record hook lineage", exc_info=True)


def emit_outlet_events(
    context: Mapping[str, Any],
    outlets: Iterable[Any],
    results: list[dict],
    job_id: str,
    orchestrator: str = "",
) -> list[str]:
    """Asset events for the task's declared outlets; returns the URIs added through aliases.

    :param context: the task's Airflow context (``outlet_events``).
    :param outlets: the task's outlets.
    :param results: the published results (``PublishedResult.to_dict()`` list).
    :param job_id: the Bacalhau job that published them.
    :param orchestrator: ``host:port`` of the orchestrator (names s3managed results).
    """
    outlets = list(outlets or [])
    added: list[str] = []
    if not outlets:
        return added
    try:
        from airflow.providers.common.compat.assets import Asset, AssetAlias

        events = context.get("outlet_events")
        if events is None:
            return added
        for outlet in outlets:
            if isinstance(outlet, AssetAlias):
                for result in results:
                    name = result_dataset(result, orchestrator)
                    if name is None or not name.uri:
                        continue
                    events[outlet].add(
                        Asset(name.uri),
                        extra={EXTRA_JOB_ID: job_id, EXTRA_RESULT: result},
                    )
                    added.append(name.uri)
            elif isinstance(outlet, Asset):
                events[outlet].extra.update({EXTRA_JOB_ID: job_id, EXTRA_RESULTS: results})
    except Exception:
        log.warning("Could not add asset events for Bacalhau job %s", job_id, exc_info=True)
    return added
