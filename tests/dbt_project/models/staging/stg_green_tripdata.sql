-- Like the course's stg_green_tripdata: the TLC names, unquoted and in any case, cast to the
-- model's types with dbt's cross-database type macros (DuckDB, Postgres, BigQuery alike).
with source as (
    select * from {{ source('raw', 'green_tripdata') }}
),

renamed as (
    select
        cast(vendorid as {{ dbt.type_int() }}) as vendor_id,
        cast(ratecodeid as {{ dbt.type_int() }}) as rate_code_id,
        cast(pulocationid as {{ dbt.type_int() }}) as pickup_location_id,
        cast(dolocationid as {{ dbt.type_int() }}) as dropoff_location_id,
        cast(lpep_pickup_datetime as {{ dbt.type_timestamp() }}) as pickup_datetime,
        cast(lpep_dropoff_datetime as {{ dbt.type_timestamp() }}) as dropoff_datetime,
        cast(store_and_fwd_flag as {{ dbt.type_string() }}) as store_and_fwd_flag,
        cast(passenger_count as {{ dbt.type_int() }}) as passenger_count,
        cast(trip_distance as {{ dbt.type_numeric() }}) as trip_distance,
        cast(trip_type as {{ dbt.type_int() }}) as trip_type,
        cast(fare_amount as {{ dbt.type_numeric() }}) as fare_amount,
        cast(extra as {{ dbt.type_numeric() }}) as extra,
        cast(mta_tax as {{ dbt.type_numeric() }}) as mta_tax,
        cast(tip_amount as {{ dbt.type_numeric() }}) as tip_amount,
        cast(tolls_amount as {{ dbt.type_numeric() }}) as tolls_amount,
        cast(ehail_fee as {{ dbt.type_numeric() }}) as ehail_fee,
        cast(improvement_surcharge as {{ dbt.type_numeric() }}) as improvement_surcharge,
        cast(total_amount as {{ dbt.type_numeric() }}) as total_amount,
        cast(payment_type as {{ dbt.type_int() }}) as payment_type
    from source
    -- the course drops the rows without a vendor (the month-end rows with empty IDs)
    where vendorid is not null
)

select * from renamed
