"""Where compute nodes see S3: the Endpoint and Region the provider writes into job specs.

Airflow reaches S3 through its AWS connection; compute nodes reach it with their own address and
credentials (``pkg/s3/utils.go`` ``DefaultAWSConfig``: the node's AWS default chain), which may
differ: AWS itself (empty Endpoint), or a MinIO/SeaweedFS that Airflow sees at ``localhost`` and
the nodes at another name. So the compute-side view is configured on its own (the Bacalhau
connection's ``s3_endpoint``/``s3_region`` extras, or an operator's overrides) and never copied
from the AWS connection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ComputeS3View:
    """S3 as compute nodes reach it. Empty values mean "AWS, or the node's own default".

    :param endpoint: S3 endpoint URL as the nodes reach it (empty: AWS or the node's default).
    :param region: region for the nodes (empty: the node's default region).
    """

    endpoint: str = ""
    region: str = ""

    def __post_init__(self) -> None:
        for name in ("endpoint", "region"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, "")
            elif not isinstance(value, str):
                raise ValueError(f"s3_{name}: must be a string, got {type(value).__name__}")
            else:
                object.__setattr__(self, name, value.strip())
        if self.endpoint and "://" not in self.endpoint:
            raise ValueError(f"s3_endpoint: must be a URL such as http://minio:9000, got {self.endpoint!r}")

    def overridden(self, endpoint: str | None = None, region: str | None = None) -> ComputeS3View:
        """This view with per-operator overrides; None keeps a value, "" clears it."""
        changes: dict[str, Any] = {}
        if endpoint is not None:
            changes["endpoint"] = endpoint
        if region is not None:
            changes["region"] = region
        return replace(self, **changes) if changes else self

    def fill(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` of an S3 source/publisher the provider builds, with this view's location.

        Params that already name an Endpoint belong to the user and are kept as they are (their
        Region too: it goes with that endpoint); otherwise the view's Endpoint and, when the
        params give none, its Region are set. Empty view values add nothing.
        """
        out = dict(params)
        if any(str(k).lower() == "endpoint" and v for k, v in out.items()):
            return out
        if self.endpoint:
            out["Endpoint"] = self.endpoint
        if self.region and not any(str(k).lower() == "region" and v for k, v in out.items()):
            out["Region"] = self.region
        return out


def compute_s3_view_for(
    bacalhau_hook: Any, endpoint: str | None = None, region: str | None = None
) -> ComputeS3View:
    """A Bacalhau hook's view with overrides; the connection is not read when both overrides are
    given or ``bacalhau_hook`` is None."""
    if bacalhau_hook is not None and (endpoint is None or region is None):
        base = bacalhau_hook.compute_s3_view()
    else:
        base = ComputeS3View()
    return base.overridden(endpoint, region)


def warn_if_nodes_miss_airflows_store(
    view: ComputeS3View, airflow_endpoint: str, aws_conn_id: str | None, logger: Any, what: str = "S3 inputs"
) -> None:
    """Warn when specs go without an Endpoint while Airflow's AWS connection names one. Before the
    two views were split that endpoint went into job specs; now a node uses AWS or its default."""
    if view.endpoint or not airflow_endpoint:
        return
    logger.warning(
        "%s go to the compute nodes without an S3 Endpoint (AWS, or each node's default), "
        "while the AWS connection %r reaches S3 at %s. If the nodes reach that same store, "
        "set s3_endpoint in the Bacalhau connection's extra (or on the operator) to the "
        "address they reach it at.",
        what,
        aws_conn_id,
        airflow_endpoint,
    )
