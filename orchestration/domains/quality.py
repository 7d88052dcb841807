"""Data quality: great-expectations suites run as Dagster asset checks on raw and curated tables.

Each check reads a bounded sample (the most recent rows) into pandas and validates an expectation suite:
completeness, ranges, referential integrity, and no personal data in what feeds the exports.
"""

from typing import Any

import dagster as dg

from orchestration.resources import SettingsResource

SAMPLE_ROWS = 200_000
PSEUDONYM = r"^L[0-9a-f]{24}$"
TRACKS = ["toefl", "job_interview", "workplace"]


def _frame(settings: SettingsResource, sql: str) -> Any:
    import pandas as pd

    rows, columns = settings.clickhouse().execute(sql, with_column_types=True)
    return pd.DataFrame(rows, columns=[c[0] for c in columns])


def _validate(name: str, frame: Any, expectations: list[Any]) -> dg.AssetCheckResult:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("sample")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    result = batch.validate(suite)
    failed = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "unexpected_count": r.result.get("unexpected_count"),
        }
        for r in result.results
        if not r.success
    ]
    return dg.AssetCheckResult(
        passed=bool(result.success),
        metadata={
            "rows_checked": len(frame),
            "expectations": len(expectations),
            "failed": dg.MetadataValue.json(failed),
        },
    )


@dg.asset_check(asset=dg.AssetKey(["raw", "raw_answers"]), description="Completeness, ranges and tracks of answers.")
def raw_answers_expectations(settings: SettingsResource) -> dg.AssetCheckResult:
    import great_expectations as gx

    frame = _frame(
        settings,
        "SELECT answer_id, learner_id, question_id, track, duration_s, speaking_time_s FROM raw_answers FINAL "
        f"ORDER BY received_at DESC LIMIT {SAMPLE_ROWS}",
    )
    e = gx.expectations
    return _validate("raw_answers", frame, [
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in ("answer_id", "learner_id", "question_id")),
        e.ExpectColumnValuesToBeUnique(column="answer_id"),
        e.ExpectColumnValuesToBeInSet(column="track", value_set=TRACKS),
        e.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0, max_value=600),
        e.ExpectColumnValuesToBeBetween(column="speaking_time_s", min_value=1, max_value=600),
    ])  # fmt: skip


@dg.asset_check(asset=dg.AssetKey(["raw", "raw_feedback"]), description="Statuses, score ranges, engine recorded.")
def raw_feedback_expectations(settings: SettingsResource) -> dg.AssetCheckResult:
    import great_expectations as gx

    frame = _frame(
        settings,
        "SELECT answer_id, status, overall_score, feedback_engine, prompt_version FROM raw_feedback FINAL "
        f"ORDER BY answered_at DESC LIMIT {SAMPLE_ROWS}",
    )
    e = gx.expectations
    return _validate("raw_feedback", frame, [
        e.ExpectColumnValuesToNotBeNull(column="answer_id"),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "rejected"]),
        e.ExpectColumnValuesToBeBetween(column="overall_score", min_value=0, max_value=5),
        e.ExpectColumnValueLengthsToBeBetween(column="feedback_engine", min_value=1),
        e.ExpectColumnValueLengthsToBeBetween(column="prompt_version", min_value=1),
    ])  # fmt: skip


@dg.asset_check(
    asset=dg.AssetKey("research_answers"),
    description="What feeds the exports: pseudonyms only, no personal data, every question in the bank, sane scores.",
)
def research_answers_expectations(settings: SettingsResource) -> dg.AssetCheckResult:
    import great_expectations as gx

    from warehouse.exports import SOURCE_COLUMNS

    frame = _frame(settings, f"SELECT * FROM research_answers ORDER BY received_at DESC LIMIT {SAMPLE_ROWS}")
    questions = [q for (q,) in settings.clickhouse().execute("SELECT question_id FROM dim_questions FINAL")]
    e = gx.expectations
    return _validate("research_answers", frame, [
        # Exactly the documented columns: nothing identifying can slip in unnoticed.
        e.ExpectTableColumnsToMatchSet(
            column_set=[*SOURCE_COLUMNS, "answered_month", "received_at", "ingested_at"], exact_match=True
        ),
        e.ExpectColumnValuesToMatchRegex(column="learner_pseudonym", regex=PSEUDONYM),
        e.ExpectColumnValuesToBeInSet(column="question_id", value_set=questions),
        e.ExpectColumnValuesToBeBetween(column="normalized_score", min_value=0, max_value=1),
        e.ExpectColumnValuesToBeUnique(column="answer_id"),
    ])  # fmt: skip


defs = dg.Definitions(asset_checks=[raw_answers_expectations, raw_feedback_expectations, research_answers_expectations])
