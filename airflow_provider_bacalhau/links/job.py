"""The "Bacalhau Job" extra link: from an Airflow task to its job in the Bacalhau Web UI."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

log = logging.getLogger(__name__)


class BacalhauJobLink(BaseOperatorLink):
    """Link to the task's Bacalhau job in the Web UI.

    The URL is computed on the worker (where the connection, and its ``webui_url`` extra, are
    available) and kept in XCom under :attr:`key` before the task waits. Airflow 2's webserver calls
    :meth:`get_link`, which reads that value. Airflow 3 shows the string stored under ``xcom_key``
    (written by the worker when the task ends, from :meth:`get_link`); :meth:`persist` writes it at
    once too, so the link is there while the task is deferred. No ``webui_url`` means no link, never
    an error.
    """

    name: ClassVar[str] = "Bacalhau Job"
    key: ClassVar[str] = "bacalhau_job_link"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            stored = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # the UI must render even when the XCom backend hiccups
            log.debug("could not read the Bacalhau job link", exc_info=True)
            return ""
        if isinstance(stored, dict):
            url = stored.get("url")
            return url if isinstance(url, str) else ""
        return ""

    @classmethod
    def persist(cls, context: Any, job_id: str, url: str | None) -> None:
        """Store the link of ``job_id`` for the running task instance (a no-op without a URL)."""
        if not url:
            return
        try:
            ti = context["ti"]
            ti.xcom_push(key=cls.key, value={"job_id": job_id, "url": url})
            ui_key = getattr(cls(), "xcom_key", None)  # Airflow 3 only: 2.x calls get_link instead
            if ui_key:
                ti.xcom_push(key=ui_key, value=url)
        except Exception:  # a link is a convenience: never fail the task over it
            log.warning("could not store the Bacalhau job link for %s", job_id, exc_info=True)
