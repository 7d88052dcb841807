"""dbt domain: every dbt model is an asset and every dbt test an asset check (dagster-dbt)."""

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import SettingsResource
from warehouse.dbt import MANIFEST_DIR, PROJECT_DIR, dbt_env, ensure_manifest

project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR, target_path=MANIFEST_DIR)


class Translator(DagsterDbtTranslator):
    """Sources map onto the warehouse assets that fill them; models group by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            table = dbt_resource_props["name"]
            return dg.AssetKey(["raw", table])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        path = dbt_resource_props.get("fqn", [])
        return f"dbt_{path[1]}" if len(path) > 2 else "dbt"


@dbt_assets(
    manifest=ensure_manifest(),
    project=project,
    dagster_dbt_translator=Translator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: SettingsResource) -> Iterator[Any]:
    import os

    os.environ.update(dbt_env(settings.get()))  # the profile reads the warehouse address from these
    yield from dbt.cli(["build"], context=context).stream()


defs = dg.Definitions(
    assets=[dbt_models],
    resources={
        "dbt": DbtCliResource(
            project_dir=project,
            profiles_dir=str(PROJECT_DIR),
            dbt_executable=str(Path(sys.executable).parent / "dbt"),  # the venv's dbt, PATH or not
        )
    },
)
