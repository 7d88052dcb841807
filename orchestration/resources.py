"""Dagster resources. Configuration comes from the environment: the platform's one settings object
(SC_* variables, see .env.example) is read through `SettingsResource`; S3 through dagster-aws."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from speech_coach.settings import Settings

S3_SECRET = "SC_S3__SECRET_KEY"  # noqa: S105 - the variable's name, not its value


class SettingsResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The SC_* settings as Dagster sees them; `env_file` may point at a .env file (empty: none)."""

    env_file: str = ""

    def get(self) -> Settings:
        return Settings(_env_file=self.env_file or None)  # type: ignore[call-arg]

    def clickhouse(self) -> Any:
        from warehouse.client import connect

        return connect(self.get())


def s3_resource(settings: Settings) -> S3Resource:
    """dagster-aws's S3 resource on the settings' store. The secret goes in as an `EnvVar`, which Dagster resolves
    at run time and shows by its name only; a plain value would be shown in the UI's resource configuration."""
    # Settings may come from a .env file rather than the environment: the EnvVar must still resolve.
    os.environ.setdefault(S3_SECRET, settings.s3.secret_key.get_secret_value())
    return S3Resource(
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3.access_key,
        aws_secret_access_key=dg.EnvVar(S3_SECRET),
        region_name=settings.s3.region,
        use_ssl=settings.s3_endpoint.startswith("https"),
    )
