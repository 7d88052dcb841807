{# Learners who asked for deletion: excluded everywhere downstream, even before ingestion erased their rows. #}
{% macro not_deleted(column='learner_id') -%}
  {{ column }} not in (select learner_id from {{ source('raw', 'raw_deletion_requests') }})
{%- endmacro %}
