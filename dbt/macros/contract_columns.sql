{#
  The columns of a raw table that contract fields fill, passed through unchanged: every column of the table but
  ingestion's bookkeeping (`_topic`, `_offset`, ...), the envelope (`event_id`, `occurred_at`) and `except`.
  The raw tables hold exactly the contract's fields (tests/test_schema.py), so a field added to the contract and
  to a migration reaches the staging view without editing it. The model's YAML documents each column, generated
  from the contract: python -m control.reference dbt.
#}
{% macro contract_columns(table, except=[]) -%}
  {%- if execute -%}
    {%- set skip = ['event_id', 'occurred_at'] + except -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(source('raw', table)) -%}
      {%- if not column.name.startswith('_') and column.name not in skip -%}
        {%- do names.append(column.name) -%}
      {%- endif -%}
    {%- endfor -%}
    {{ names | join(',\n    ') }}
  {%- else -%}
    *
  {%- endif -%}
{%- endmacro %}
