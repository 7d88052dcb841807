{# Like dbt_utils.unique_combination_of_columns, without the package (no downloads at run time). #}
{% test unique_combination(model, combination) %}
select {{ combination | join(', ') }}, count() as n
from {{ model }}
group by {{ combination | join(', ') }}
having n > 1
{% endtest %}
