-- Revenue per service and pickup month, as the course's monthly revenue mart computes it.
with trips as (
    select 'Green' as service_type, * from {{ ref('stg_green_tripdata') }}
    union all
    select 'Yellow' as service_type, * from {{ ref('stg_yellow_tripdata') }}
)

select
    service_type,
    {{ dbt.date_trunc('month', 'pickup_datetime') }} as revenue_month,
    count(*) as total_trips,
    sum(fare_amount) as revenue_monthly_fare,
    sum(total_amount) as revenue_monthly_total_amount
from trips
group by 1, 2
