-- Glue table over rewind's capture objects (s3://acme-rewind/capture/table=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet).
-- rewind query --engine athena creates it through the Glue API; this DDL is the same table.
-- event_time is Parquet TIMESTAMP(MICROS, UTC); Athena reads it at millisecond precision.
-- sequence_number is a decimal string: order with CAST(sequence_number AS DECIMAL(38,0)).
-- keys, old_image and new_image are DynamoDB JSON; keys is canonical (attributes sorted, numbers normalized).
CREATE DATABASE IF NOT EXISTS rewind;

CREATE EXTERNAL TABLE IF NOT EXISTS rewind.changes (
  `event_id` string,
  `source_table` string,
  `region` string,
  `tenant` string,
  `action` string,
  `ttl_expiry` boolean,
  `event_time` timestamp,
  `sequence_number` string,
  `shard_id` string,
  `stream_view_type` string,
  `keys` string,
  `old_image` string,
  `new_image` string,
  `changed_attributes` array<string>,
  `size_bytes` bigint,
  `decode_error` string,
  `raw_record` string
)
PARTITIONED BY (`table` string, `dt` string, `hour` string)
STORED AS PARQUET
LOCATION 's3://acme-rewind/capture/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.table.type' = 'enum',
  'projection.table.values' = 'orders,users',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-11-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://acme-rewind/capture/table=${table}/dt=${dt}/hour=${hour}/'
);

-- The key set: one row per item; rewind sorts the rows by table and key.
WITH events AS (
  SELECT source_table, keys, tenant, action, event_time,
         row_number() OVER (PARTITION BY event_id ORDER BY sequence_number) AS copy
  FROM rewind.changes
  WHERE (dt > ? OR (dt = ? AND hour >= ?))
    AND event_time >= CAST(? AS timestamp)
    AND coalesce(decode_error, '') = ''
    AND coalesce(ttl_expiry, false)
)
SELECT source_table AS "table", keys AS "key", coalesce(max(nullif(tenant, '')), '') AS tenant,
       CAST(min(event_time) AS varchar) AS "first", CAST(max(event_time) AS varchar) AS "last",
       count(*) AS "count", count_if(action = 'INSERT') AS inserts,
       count_if(action = 'MODIFY') AS modifies, count_if(action = 'REMOVE') AS removes
FROM events
WHERE copy = 1
GROUP BY source_table, keys;
-- Execution parameters, in the order of the ? placeholders:
--   1: '2026-11-20'
--   2: '2026-11-20'
--   3: '10'
--   4: '2026-11-20 10:00:00.000000'
