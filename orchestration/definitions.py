"""The Dagster code location: every domain's definitions merged into one, with shared resources."""

from __future__ import annotations

import dagster as dg

from orchestration.domains import dbt, exports, learners, quality, question_bank, retention, warehouse
from orchestration.resources import SettingsResource, s3_resource
from speech_coach.settings import Settings

defs = dg.Definitions.merge(
    warehouse.defs,
    dbt.defs,
    exports.defs,
    question_bank.defs,
    learners.defs,
    quality.defs,
    retention.defs,
    dg.Definitions(resources={"settings": SettingsResource(), "s3": s3_resource(Settings())}),
)
