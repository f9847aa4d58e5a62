"""The data plane: moving data between Airflow, S3 and Bacalhau jobs.

Above the hooks, below the operators. One module per behaviour:

- :mod:`.plane`: :class:`S3DataPlane`, the door operators and ``@task`` code use;
- :mod:`.staging`: uploading local files to a prefix (:class:`StagedInput`), with
  :mod:`.local_files` (finding and hashing them), :mod:`.objects` (listing, putting, deleting)
  and :mod:`.manifest` (what the last run stored);
- :mod:`.fetch`: downloading and verifying published results;
- :mod:`.restage`: archive results made plain-object prefixes, once per archive (:mod:`.alias`);
- :mod:`.archive`: checksums and safe extraction (plain Python);
- :mod:`.download`: HTTP downloads (s3managed and local-publisher URLs);
- :mod:`.inputs`: :func:`resolve_inputs`, every job input's way in.

Names are looked up on first use, so importing the package loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_bacalhau._lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_bacalhau.dataplane.inputs import parse_s3_uri, resolve_inputs
    from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
    from airflow_provider_bacalhau.dataplane.staging import StagedInput

__all__ = ["S3DataPlane", "StagedInput", "parse_s3_uri", "resolve_inputs"]

_HOMES = {
    "S3DataPlane": "airflow_provider_bacalhau.dataplane.plane",
    "StagedInput": "airflow_provider_bacalhau.dataplane.staging",
    "parse_s3_uri": "airflow_provider_bacalhau.dataplane.inputs",
    "resolve_inputs": "airflow_provider_bacalhau.dataplane.inputs",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
