"""A valid job spec and small editors of it, shared by the spec validation tests."""

from __future__ import annotations

import base64
import hashlib

SHA_HEX = hashlib.sha256(b"hello").hexdigest()
SHA_B64 = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()


def base() -> dict:
    return {
        "Name": "ok",
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "busybox:1.37.0",
                        "Entrypoint": ["/bin/sh", "-c"],
                        "Parameters": ["ls /inputs"],
                    },
                },
                "InputSources": [
                    {
                        "Target": "/inputs",
                        "Source": {"Type": "s3", "Params": {"Bucket": "stage", "Key": "runs/r1/"}},
                    }
                ],
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Publisher": {
                    "Type": "s3",
                    "Params": {"Bucket": "results", "Key": "runs/{jobID}/{executionID}"},
                },
            }
        ],
    }


def with_(change) -> dict:
    spec = base()
    change(spec)
    return spec


def task(spec: dict) -> dict:
    return spec["Tasks"][0]


def src(spec: dict, i: int = 0) -> dict:
    return task(spec)["InputSources"][i]["Source"]["Params"]


def pub(spec: dict) -> dict:
    return task(spec)["Publisher"]["Params"]


def docker(spec: dict) -> dict:
    return task(spec)["Engine"]["Params"]


def add_input(spec: dict, target: str = "/more", params: dict | None = None) -> None:
    task(spec)["InputSources"].append(
        {"Target": target, "Source": {"Type": "s3", "Params": params or {"Bucket": "stage", "Key": "x/"}}}
    )


B = "Tasks[0].InputSources[0].Source.Params.Bucket"
P = "Tasks[0].Publisher.Params"
E = "Tasks[0].Engine.Params"
